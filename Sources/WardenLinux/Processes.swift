// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Processes: pidfds (signals that cannot reach a reused pid), identities, process memory,
// descriptors of other processes, and the pid and net namespaces the sandbox uses.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// Raises the open-file soft limit to the hard limit; returns the new limit.
@discardableResult
public func sys_raiseOpenFileLimit() -> Int { Int(warden_raise_nofile_limit()) }

/// A pidfd for `pid`: it names that process and no other for as long as it is open.
public func sys_pidfdOpen(_ pid: Int32) throws(SystemCallError) -> FileDescriptor {
    let fd = try retryingInterrupts("pidfd_open") { warden_pidfd_open(pid) }
    return FileDescriptor(rawValue: fd)
}

/// Sends `signal` to the process behind `pidfd` (ESRCH once it has exited, even if its pid was reused).
public func sys_pidfdSendSignal(_ pidfd: FileDescriptor, _ signal: Int32) throws(SystemCallError) {
    _ = try retryingInterrupts("pidfd_send_signal") { warden_pidfd_send_signal(pidfd.rawValue, signal) }
}

/// Stops every process of the pid namespace open at `namespace` (/proc/PID/ns/pid) but its
/// init, at once (`warden_stop_pid_namespace`): none can fork unseen while they are listed.
public func sys_stopPidNamespace(_ namespace: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("kill(-1, SIGSTOP) in the pid namespace") {
        warden_stop_pid_namespace(namespace.rawValue)
    }
}

/// Moves the calling thread (only it) into the network namespace of process `pid`; `stillThat`
/// is asked once the namespace is open, and refuses (ESRCH) when `pid` may since name another
/// process.
public func sys_joinNetworkNamespace(ofProcess pid: Int32, stillThat: () -> Bool) throws(SystemCallError) {
    // A magic link: followed on purpose (no other link can stand in /proc/PID/ns).
    let namespace = try sys_open(Array("/proc/\(pid)/ns/net".utf8), flags: O_RDONLY, followingSymlinks: true)
    defer { sys_close(namespace) }
    guard stillThat() else { throw SystemCallError(syscall: "setns(CLONE_NEWNET)", errno: Errno(rawValue: ESRCH)) }
    _ = try retryingInterrupts("setns(CLONE_NEWNET)") { warden_join_net_namespace(namespace.rawValue) }
}

/// The status flags (`O_NONBLOCK`, …) and close-on-exec of descriptor `fd` of process `pid`, from
/// `/proc/PID/fdinfo/FD` (its `flags:` line, octal); nil when it cannot be read.
public func sys_descriptorFlags(_ fd: Int32, ofProcess pid: Int32) -> Int32? {
    guard let text = try? sys_readFile(Array("/proc/\(pid)/fdinfo/\(fd)".utf8)) else { return nil }
    for line in text.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("flags:".utf8)) {
        let digits = line.dropFirst(6).filter { $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: " ") }
        return Int32(String(decoding: digits, as: UTF8.self), radix: 8)
    }
    return nil
}

/// One datagram from `socket` without waiting, into `buffer`: its length and its sender's pid
/// (0 when unknown); nil when none is waiting.
/// A copy of descriptor `fd` of process `pid` in this process (`pidfd_getfd`), close-on-exec.
public func sys_descriptor(_ fd: Int32, ofProcess pid: Int32) throws(SystemCallError) -> FileDescriptor {
    let pidfd = try sys_pidfdOpen(pid)
    defer { sys_close(pidfd) }
    let copy = try retryingInterrupts("pidfd_getfd") { warden_pidfd_getfd(pidfd.rawValue, fd) }
    return FileDescriptor(rawValue: copy)
}

/// This process's id.
public func sys_getpid() -> Int32 { getpid() }

/// Sets the calling thread's nice value (lower runs sooner); root may go below 0.
public func sys_setThreadNice(_ nice: Int32) throws(SystemCallError) {
    _ = try retryingInterrupts("setpriority") { warden_set_thread_nice(nice) }
}

/// Who a process is, for exec records: its parent pid and effective uid (nil when gone).
public struct ProcessIdentity: Hashable, Sendable {
    public var ppid: Int32?
    public var uid: UInt32?

    public init(ppid: Int32?, uid: UInt32?) {
        self.ppid = ppid
        self.uid = uid
    }
}

/// The parent pid and effective uid of `pid`: one `PIDFD_GET_INFO` ioctl (Linux 6.13+, a few
/// µs), else `/proc/PID/stat` and the owner of `/proc/PID` (several times that, mostly the
/// kernel formatting the stat line; and a non-dumpable process's `/proc/PID` is root's).
public func sys_processIdentity(of pid: Int32) -> ProcessIdentity {
    var ppid: Int32 = 0
    var uid: UInt32 = 0
    switch warden_process_identity(pid, &ppid, &uid) {
    case 0: return ProcessIdentity(ppid: ppid, uid: uid)
    case -ENOTTY, -EINVAL, -ENOSYS: return ProcessIdentity(ppid: sys_parentPID(of: pid), uid: sys_processUID(of: pid))
    default: return ProcessIdentity(ppid: nil, uid: nil)
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat` (one small read; nil when it is gone).
public func sys_parentPID(of pid: Int32) -> Int32? {
    guard let fd = try? sys_open(Array("/proc/\(pid)/stat".utf8), flags: O_RDONLY, followingSymlinks: true) else {
        return nil
    }
    defer { sys_close(fd) }
    return withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 8) { buffer -> Int32? in
        guard let count = try? sys_pread(fd, into: buffer, at: 0), count > 0 else { return nil }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
        // "pid (comm) state ppid …": comm may hold anything, so parse after its last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 3)
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }
}

/// The effective uid of `pid`: the owner of `/proc/PID` (nil when it is gone).
public func sys_processUID(of pid: Int32) -> UInt32? {
    (try? sys_statFollowing(Array("/proc/\(pid)".utf8)))?.uid
}

/// Ends this process at once with SIGKILL: the crash tests' way to stop at a chosen step.
public func sys_killSelf() -> Never {
    kill(getpid(), SIGKILL)
    _exit(137)
}

/// The CLONE_NEW* flags: mnt, user, pid, net, ipc, uts, cgroup.
public func sys_namespaceFlags() -> [UInt64] {
    var flags: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    withUnsafeMutablePointer(to: &flags) {
        $0.withMemoryRebound(to: UInt64.self, capacity: 7) { warden_namespace_flags($0) }
    }
    return [flags.0, flags.1, flags.2, flags.3, flags.4, flags.5, flags.6]
}

/// Up to `length` bytes of `pid`'s memory at `address` (`process_vm_readv`); nil when unreadable.
public func sys_readProcessMemory(_ pid: Int32, address: UInt64, length: Int) -> [UInt8]? {
    guard address != 0, length > 0 else { return nil }
    let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
        initialized = max(0, warden_read_process_memory(pid, address, buffer.baseAddress, length))
    }
    return bytes.isEmpty ? nil : bytes
}

/// Writes `bytes` into `pid`'s memory at `address` (`process_vm_writev`), all of them or none
/// (a short write, into a mapping that ends, fails as EFAULT): a call's result where the call
/// had it written, while the call waits for its answer.
public func sys_writeProcessMemory(_ pid: Int32, address: UInt64, _ bytes: [UInt8]) throws(SystemCallError) {
    guard !bytes.isEmpty else { return }
    // Not `retryingInterrupts`: EFAULT is the sample's bad pointer here, not this process's bug.
    while true {
        let written = bytes.withUnsafeBytes { warden_write_process_memory(pid, address, $0.baseAddress, $0.count) }
        if written == bytes.count { return }
        let code = written < 0 ? Glibc.errno : EFAULT
        if code == EINTR { continue }
        throw SystemCallError(syscall: "process_vm_writev", errno: Errno(rawValue: code))
    }
}

/// A NUL-terminated string in `pid`'s memory (at most `limit` bytes), read page by page so a
/// string near the end of a mapping is still read.
public func sys_readProcessString(_ pid: Int32, address: UInt64, limit: Int = 4096) -> [UInt8]? {
    guard address != 0, limit > 0 else { return nil }
    // Most paths are short: a first read of 256 bytes (not past the page end, which may be the
    // end of the mapping) into a stack buffer, then one array of exactly the string (this runs
    // while a sandboxed call waits for its answer); longer strings go on page by page.
    var out: [UInt8] = []
    var unreadable = false
    let first = min(256, 4096 - Int(address % 4096), limit)
    let finished = withUnsafeTemporaryAllocation(byteCount: first, alignment: 1) { buffer -> Bool in
        let read = warden_read_process_memory(pid, address, buffer.baseAddress, first)
        guard read > 0 else {
            unreadable = true
            return true
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<Int(read)])
        if let end = bytes.firstIndex(of: 0) {
            out = Array(bytes[..<end])
            return true
        }
        out = Array(bytes)
        return false
    }
    if unreadable { return nil }
    if finished { return out }
    var cursor = address + UInt64(out.count)
    while out.count < limit {
        let toPageEnd = 4096 - Int(cursor % 4096)
        guard let chunk = sys_readProcessMemory(pid, address: cursor, length: min(toPageEnd, limit - out.count)) else {
            return out
        }
        if let end = chunk.firstIndex(of: 0) { return out + chunk[..<end] }
        out += chunk
        cursor += UInt64(chunk.count)
    }
    return out
}

/// A NULL-terminated array of string pointers in `pid`'s memory (an `argv`): at most `count`
/// strings of at most `stringLimit` bytes each. `complete` is false when the array went on past
/// `count`, or its end could not be read.
public func sys_readProcessStringArray(
    _ pid: Int32, address: UInt64, count: Int = 64, stringLimit: Int = 1024, pointerSize: Int = 8
) -> (strings: [[UInt8]], complete: Bool)? {
    // The pointers and the NULL after them, read up to each page's end (the array may end where
    // its mapping does): one read for the usual short argv. Pointers are 4 bytes for an i386
    // caller.
    var table: [UInt8] = []
    let wanted = (count + 1) * pointerSize
    while table.count < wanted {
        let cursor = address + UInt64(table.count)
        let length = min(4096 - Int(cursor % 4096), wanted - table.count)
        guard let chunk = sys_readProcessMemory(pid, address: cursor, length: length) else { break }
        table += chunk
        if chunk.count < length { break }
    }
    if table.count < pointerSize { return nil }
    var strings: [[UInt8]] = []
    for index in 0..<(table.count / pointerSize) {
        let pointer = table.withUnsafeBytes {
            pointerSize == 4
                ? UInt64(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
                : UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        }
        if pointer == 0 { return (strings, true) }
        if index == count { break }
        strings.append(sys_readProcessString(pid, address: pointer, limit: stringLimit) ?? [])
    }
    return (strings, false)
}

/// Waits for the child `pid` and returns its raw wait status.
@discardableResult
public func sys_waitpid(_ pid: Int32) throws(SystemCallError) -> Int32 {
    var status: Int32 = 0
    _ = try retryingInterrupts("waitpid") { waitpid(pid, &status, 0) }
    return status
}

/// The host's name (`uname -n`), as Falco writes it in `hostname`.
public func sys_hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
