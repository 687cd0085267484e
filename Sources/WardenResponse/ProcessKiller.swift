// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// Signals a process only when the kernel itself says it runs a dropped executable.
///
/// An alert names a pid, and everything else in it is text its sender chose. So the pid is
/// pinned with a pidfd first (from then on it names that process and no other), and the
/// process's executable is judged by what the kernel says of `/proc/PID/exe`: its device and
/// inode must be a file the sensor captured on a watched tmpfs, or the file must have no name
/// left (a memfd, or a deleted file: link count 0). An inode or path from the alert is never
/// enough. pid 1, kernel threads, shmwarden, its parent and protected programs are never
/// signalled. The signal goes through the pidfd, which fails with ESRCH rather than reach a
/// process that reused the pid.
public enum ProcessKiller {
    /// What the process must be running, beyond the kernel's own facts.
    public struct Expectation: Sendable, Equatable {
        /// The device and inode of the evidence file correlated by kernel facts, when known.
        public var file: (device: UInt64, inode: UInt64)?

        public init(file: (device: UInt64, inode: UInt64)? = nil) {
            self.file = file
        }

        public static func == (lhs: Expectation, rhs: Expectation) -> Bool {
            lhs.file?.device == rhs.file?.device && lhs.file?.inode == rhs.file?.inode
        }
    }

    public enum Outcome: Sendable, Equatable {
        case signalled(String)
        /// Not signalled, and why (gone, not a dropped executable, protected, ourselves).
        case refused(String)
        case failed(String, errno: Int32)
    }

    public static func signalNumber(_ signal: KillSignal) -> Int32 {
        switch signal {
        case .kill: SIGKILL
        case .term: SIGTERM
        case .stop: SIGSTOP
        }
    }

    /// - Parameters:
    ///   - isCaptured: whether the sensor recorded a file with this device and inode on a
    ///     watched tmpfs (the store's answer).
    ///   - protected: executable names (globs) never signalled; `Policy.protectedProcesses`.
    public static func kill(
        pid: Int32, expecting expectation: Expectation, signal: KillSignal,
        isCaptured: (_ device: UInt64, _ inode: UInt64) -> Bool, protected: [String] = Policy.defaultProtectedProcesses
    ) -> Outcome {
        guard pid > 1 else { return .refused("pid \(pid) is never signalled") }
        guard pid != sys_getpid() else { return .refused("pid \(pid) is shmwarden itself") }
        guard pid != getppid() else { return .refused("pid \(pid) is shmwarden's parent") }
        let pidfd: FileDescriptor
        do {
            pidfd = try sys_pidfdOpen(pid)
        } catch {
            if error.errno == .noSuchProcess { return .refused("process \(pid) has already exited") }
            return .failed("pidfd_open(\(pid)): \(error)", errno: error.errno.rawValue)
        }
        defer { sys_close(pidfd) }
        // Read after the pidfd is taken: if the process exits and its pid is reused meanwhile,
        // these describe the newcomer, and the signal through the pidfd then fails with ESRCH.
        let exe = Array("/proc/\(pid)/exe".utf8)
        let status: FileStatus
        let link: [UInt8]
        do {
            status = try sys_statFollowing(exe)
            link = try sys_readlink(exe)
        } catch {
            return .refused("process \(pid) has no executable to check (a kernel thread, or gone: \(error.errno))")
        }
        let running = PathBytes(link)
        let verdict = judge(
            running: running, status: status, expectation: expectation, isCaptured: isCaptured, protected: protected)
        guard case .success(let basis) = verdict else {
            if case .failure(let refusal) = verdict {
                return .refused("process \(pid) runs \(running): \(refusal.reason); not signalled")
            }
            return .refused("process \(pid): not signalled")
        }
        do {
            try sys_pidfdSendSignal(pidfd, signalNumber(signal))
        } catch {
            if error.errno == .noSuchProcess { return .refused("process \(pid) exited before the signal") }
            return .failed("pidfd_send_signal(\(pid)): \(error)", errno: error.errno.rawValue)
        }
        return .signalled("sent SIG\(signal.rawValue) to process \(pid) running \(running) (\(basis))")
    }

    struct Refusal: Error {
        var reason: String
    }

    /// Decides from the kernel's facts about a process's executable whether it may be
    /// signalled; on success, the fact that allowed it.
    static func judge(
        running: PathBytes, status: FileStatus, expectation: Expectation,
        isCaptured: (_ device: UInt64, _ inode: UInt64) -> Bool, protected: [String]
    ) -> Result<String, Refusal> {
        let deletedSuffix = Array(" (deleted)".utf8)
        var name = running.bytes
        if name.count > deletedSuffix.count, name.suffix(deletedSuffix.count).elementsEqual(deletedSuffix) {
            name.removeLast(deletedSuffix.count)
        }
        let base = PathBytes(Array(name.split(separator: UInt8(ascii: "/")).last ?? []))
        if let pattern = protected.first(where: { PathGlob($0).matches(base) }) {
            return .failure(Refusal(reason: "\(base) is protected (\(pattern))"))
        }
        if let file = expectation.file, status.device != file.device || status.inode != file.inode {
            return .failure(
                Refusal(
                    reason: "its executable (device \(status.device), inode \(status.inode)) is not the evidence file "
                        + "(device \(file.device), inode \(file.inode)): the pid was reused or the alert is about another process"
                ))
        }
        if status.linkCount == 0 {
            let memfd = running.bytes.starts(with: Array("/memfd:".utf8))
            return .success(memfd ? "its executable is a memfd" : "its executable was deleted")
        }
        if isCaptured(status.device, status.inode) {
            return .success("its executable is a file shmwarden captured on a watched tmpfs")
        }
        return .failure(
            Refusal(
                reason:
                    "its executable (device \(status.device), inode \(status.inode)) is not a file shmwarden captured "
                    + "on a watched tmpfs, nor memfd-backed or deleted"))
    }
}
