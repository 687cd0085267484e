// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import WardenCore
import WardenLinux

/// The jail's processes still running when its time is up, listed just before they are killed.
///
/// What a dropper leaves behind when it exits (a daemon in a session of its own, a miner) is
/// often the point of it, and it dies with the pid namespace: this is the only moment it can
/// be named.
enum SandboxSurvivors {
    /// At most this many are listed (the jail's process limit is 64).
    static let limit = 64
    /// Each command line is cut here.
    static let commandLineLimit = 1024

    /// The processes sharing `initPID`'s pid namespace, the init itself left out, by host pid.
    /// They are stopped first, all at once (`sys_stopPidNamespace`): listed while running, a
    /// process that forks a child and exits, over and over, was gone by the time it was read
    /// and its child not yet there when /proc was, and the list missed it. Stopped, none forks,
    /// execs or exits before the kill that follows, so the list names what that kill ends.
    static func list(initPID: Int32) -> [SandboxReport.Survivor] {
        let namespacePath = Array("/proc/\(initPID)/ns/pid".utf8)
        // (A magic link: /proc's name for the namespace, not a path to resolve.)
        if let namespaceFD = try? sys_open(namespacePath, flags: O_RDONLY, followingSymlinks: true) {
            try? sys_stopPidNamespace(namespaceFD)
            sys_close(namespaceFD)
        }
        guard let namespace = try? sys_readlink(namespacePath),
            let proc = try? sys_open(Array("/proc".utf8), flags: O_RDONLY | O_DIRECTORY)
        else { return [] }
        let entries = (try? sys_readDirectory(proc)) ?? []
        sys_close(proc)
        var survivors: [SandboxReport.Survivor] = []
        // A SIGSTOP takes effect when its process next leaves the kernel: one in an exec then
        // has no command line yet. Each is read once stopped (or gone), within this budget.
        let stoppedBy = sys_monotonicNanoseconds() + 100_000_000
        for entry in entries {
            guard survivors.count < limit, let pid = Int32(String(decoding: entry.name, as: UTF8.self)),
                pid != initPID, (try? sys_readlink(Array("/proc/\(pid)/ns/pid".utf8))) == namespace
            else { continue }
            var status = stat(of: pid)
            while let state = status?.state, !"TtZX".utf8.contains(state), sys_monotonicNanoseconds() < stoppedBy {
                usleep(200)
                status = stat(of: pid)
            }
            guard let (name, _, session) = status else { continue }
            let arguments = commandLine(of: pid)
            survivors.append(
                SandboxReport.Survivor(
                    pid: pid, commandLine: arguments.map { ShellQuote.quote($0) }.joined(separator: " "),
                    ownSession: session != initPID, name: shownName(name, arguments.first)))
        }
        return survivors.sorted { $0.pid < $1.pid }
    }

    /// The name (`comm`), state and session id fields of `/proc/PID/stat` (the session in the
    /// host's pid numbers, as /proc is the host's).
    private static func stat(of pid: Int32) -> (name: [UInt8], state: UInt8, session: Int32)? {
        guard let bytes = try? sys_readFile(Array("/proc/\(pid)/stat".utf8), followingSymlinks: true),
            let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
            open < close
        else { return nil }
        // "pid (comm) state ppid pgrp session …": comm may hold anything, so count after its last ')'.
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 5)
        guard fields.count > 3, let state = fields[0].first,
            let session = Int32(String(decoding: fields[3], as: UTF8.self))
        else { return nil }
        return (Array(bytes[(open + 1)..<close]), state, session)
    }

    /// The name, unless it is the first 15 bytes of argv[0]'s last component (what the kernel
    /// names a program run by path, as it is usually called).
    private static func shownName(_ name: [UInt8], _ zeroth: String?) -> String? {
        let program = zeroth.map { Array($0.utf8.split(separator: UInt8(ascii: "/")).last ?? []) } ?? []
        return name.elementsEqual(program.prefix(15)) ? nil : String(decoding: name, as: UTF8.self)
    }

    /// Its argument vector, cut at `commandLineLimit` bytes (a kernel thread's is empty).
    private static func commandLine(of pid: Int32) -> [String] {
        guard let bytes = try? sys_readFile(Array("/proc/\(pid)/cmdline".utf8), followingSymlinks: true) else {
            return []
        }
        return bytes.prefix(commandLineLimit).split(separator: 0, omittingEmptySubsequences: false)
            .dropLast(bytes.last == 0 ? 1 : 0).map { String(decoding: $0, as: UTF8.self) }
    }
}
