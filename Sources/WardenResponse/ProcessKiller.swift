// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// Signals a process only while it is still the one an alert named.
///
/// A pidfd is taken first: from then on it names that process and no other. The executable is
/// then checked through `/proc/PID/exe` (inode and device, or the path), and the signal goes
/// through the pidfd, which fails with ESRCH rather than reach a process that reused the pid.
public enum ProcessKiller {
    /// What the process must be running for the kill to go ahead.
    public struct Expectation: Sendable, Equatable {
        /// The executable's device and inode (from the file evidence), when known.
        public var file: (device: UInt64, inode: UInt64)?
        /// `proc.exe_ino` from the alert, when present.
        public var inode: UInt64?
        /// `proc.exepath` from the alert: compared only when neither inode is known.
        public var path: PathBytes?

        public init(file: (device: UInt64, inode: UInt64)? = nil, inode: UInt64? = nil, path: PathBytes? = nil) {
            self.file = file
            self.inode = inode
            self.path = path
        }

        public static func == (lhs: Expectation, rhs: Expectation) -> Bool {
            lhs.file?.device == rhs.file?.device && lhs.file?.inode == rhs.file?.inode && lhs.inode == rhs.inode
                && lhs.path == rhs.path
        }
    }

    public enum Outcome: Sendable, Equatable {
        case signalled(String)
        /// Not signalled, and why (gone, a different executable, ourselves, nothing to compare).
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

    public static func kill(pid: Int32, expecting expectation: Expectation, signal: KillSignal) -> Outcome {
        guard pid > 1 else { return .refused("pid \(pid) is never signalled") }
        guard pid != sys_getpid() else { return .refused("pid \(pid) is shmwarden itself") }
        let pidfd: FileDescriptor
        do {
            pidfd = try sys_pidfdOpen(pid)
        } catch {
            if error.errno == .noSuchProcess { return .refused("process \(pid) has already exited") }
            return .failed("pidfd_open(\(pid)): \(error)", errno: error.errno.rawValue)
        }
        defer { sys_close(pidfd) }
        let exe = Array("/proc/\(pid)/exe".utf8)
        let status: FileStatus
        do {
            status = try sys_statFollowing(exe)
        } catch {
            return .refused("process \(pid) has no executable to check (\(error.errno)); not signalled")
        }
        let running = (try? sys_readlink(exe)).map(PathBytes.init)
        let runningText = running?.displayString ?? "?"
        if let file = expectation.file {
            guard status.device == file.device && status.inode == file.inode else {
                return .refused(
                    "process \(pid) runs \(runningText) (inode \(status.inode)), not the evidence file (inode "
                        + "\(file.inode)): the pid was reused or the alert is about another process; not signalled")
            }
        } else if let inode = expectation.inode {
            guard status.inode == inode else {
                return .refused(
                    "process \(pid) runs inode \(status.inode), not proc.exe_ino \(inode); not signalled")
            }
        } else if let path = expectation.path {
            let deleted = PathBytes(path.bytes + Array(" (deleted)".utf8))
            guard running == path || running == deleted else {
                return .refused("process \(pid) runs \(runningText), not \(path); not signalled")
            }
        } else {
            return .refused("nothing to check process \(pid) against (no evidence, proc.exe_ino or proc.exepath)")
        }
        do {
            try sys_pidfdSendSignal(pidfd, signalNumber(signal))
        } catch {
            if error.errno == .noSuchProcess { return .refused("process \(pid) exited before the signal") }
            return .failed("pidfd_send_signal(\(pid)): \(error)", errno: error.errno.rawValue)
        }
        return .signalled("sent SIG\(signal.rawValue) to process \(pid) running \(runningText)")
    }
}
