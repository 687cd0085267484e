// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The system calls the responses make: directory-relative file operations for the quarantine
// (no path is resolved twice), pidfds for signalling, and mount(2) for remounts. Same rules as
// Syscalls.swift.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

// MARK: - Directory-relative files

/// Opens `name` in `directory` without following a symlink there (`O_NOFOLLOW`), `O_CLOEXEC`.
public func sys_openAt(_ directory: FileDescriptor, _ name: [UInt8], flags: Int32) throws(SystemCallError)
    -> FileDescriptor
{
    try withCPath(name) { (cName) throws(SystemCallError) -> FileDescriptor in
        let fd = try retryingInterrupts("openat", path: name) {
            openat(directory.rawValue, cName, flags | O_NOFOLLOW | O_CLOEXEC)
        }
        return FileDescriptor(rawValue: fd)
    }
}

/// Creates `name` in `directory` (`O_CREAT|O_EXCL|O_NOFOLLOW`): never opens what is already there.
public func sys_createAt(_ directory: FileDescriptor, _ name: [UInt8], flags: Int32, permissions: mode_t)
    throws(SystemCallError) -> FileDescriptor
{
    try withCPath(name) { (cName) throws(SystemCallError) -> FileDescriptor in
        let fd = try retryingInterrupts("openat", path: name) {
            openat(directory.rawValue, cName, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
        }
        return FileDescriptor(rawValue: fd)
    }
}

/// The status of `name` in `directory` itself (`AT_SYMLINK_NOFOLLOW`).
public func sys_statAt(_ directory: FileDescriptor, _ name: [UInt8]) throws(SystemCallError) -> FileStatus {
    var raw = stat()
    try withCPath(name) { (cName) throws(SystemCallError) in
        _ = try retryingInterrupts("fstatat", path: name) {
            fstatat(directory.rawValue, cName, &raw, AT_SYMLINK_NOFOLLOW)
        }
    }
    return FileStatus(raw)
}

/// The status of what `path` finally names, following links: only for kernel paths such as
/// `/proc/PID/exe`, whose link is the executable itself.
public func sys_statFollowing(_ path: [UInt8]) throws(SystemCallError) -> FileStatus {
    var raw = stat()
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("stat", path: path) { stat(cPath, &raw) }
    }
    return FileStatus(raw)
}

/// `renameat2(RENAME_NOREPLACE)` within or across directories of one filesystem.
public func sys_renameNoReplace(
    _ fromDirectory: FileDescriptor, _ from: [UInt8], _ toDirectory: FileDescriptor, _ to: [UInt8]
) throws(SystemCallError) {
    try withCPath(from) { (cFrom) throws(SystemCallError) in
        try withCPath(to) { (cTo) throws(SystemCallError) in
            _ = try retryingInterrupts("renameat2", path: to) {
                warden_rename_noreplace(fromDirectory.rawValue, cFrom, toDirectory.rawValue, cTo)
            }
        }
    }
}

/// Removes the name `name` from `directory` (a file, not a directory).
public func sys_unlinkAt(_ directory: FileDescriptor, _ name: [UInt8]) throws(SystemCallError) {
    try withCPath(name) { (cName) throws(SystemCallError) in
        _ = try retryingInterrupts("unlinkat", path: name) { unlinkat(directory.rawValue, cName, 0) }
    }
}

public func sys_fchown(_ fd: FileDescriptor, uid: UInt32, gid: UInt32) throws(SystemCallError) {
    _ = try retryingInterrupts("fchown") { fchown(fd.rawValue, uid, gid) }
}

/// Sets access and modification times on an open file.
public func sys_futimens(
    _ fd: FileDescriptor, accessed: (seconds: Int64, nanoseconds: Int64), modified: (seconds: Int64, nanoseconds: Int64)
) throws(SystemCallError) {
    var times = [
        timespec(tv_sec: Int(accessed.seconds), tv_nsec: Int(accessed.nanoseconds)),
        timespec(tv_sec: Int(modified.seconds), tv_nsec: Int(modified.nanoseconds)),
    ]
    _ = try retryingInterrupts("futimens") { futimens(fd.rawValue, &times) }
}

// MARK: - Processes

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

/// A unix socket of `type`, close-on-exec, autobound unless told otherwise
/// (`warden_unix_stand_in`).
public func sys_unixStandInSocket(type: Int32, nonBlocking: Bool, autobind: Bool = true) throws(SystemCallError)
    -> FileDescriptor
{
    FileDescriptor(
        rawValue: try retryingInterrupts("socket(AF_UNIX)") {
            warden_unix_stand_in(type, nonBlocking ? 1 : 0, autobind ? 1 : 0)
        })
}

/// Puts a copy of `fd` at descriptor `target` of the process waiting on seccomp notification
/// `id`, in place of what was there (dup2's way), without answering the call.
public func sys_seccompReplaceDescriptor(
    _ listener: FileDescriptor, id: UInt64, with fd: FileDescriptor, at target: Int32, closeOnExec: Bool
) throws(SystemCallError) {
    _ = try retryingInterrupts("SECCOMP_IOCTL_NOTIF_ADDFD") {
        warden_seccomp_replace_fd(listener.rawValue, id, fd.rawValue, target, closeOnExec ? 1 : 0)
    }
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

/// A connected pair of unix sockets of `type` (`warden_unix_stand_in_pair`): the sample's end,
/// and the supervisor's, non-blocking and passing each sender's credentials.
public func sys_unixStandInPair(type: Int32, nonBlocking: Bool) throws(SystemCallError) -> (
    sample: FileDescriptor, supervisor: FileDescriptor
) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("socketpair(AF_UNIX)") { warden_unix_stand_in_pair(type, nonBlocking ? 1 : 0, &fds) }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
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

/// Sends `bytes` on unix socket `socket` as one message without waiting (`MSG_DONTWAIT`, no
/// SIGPIPE), as process `pid` (its credentials, for a receiver that asks: needs CAP_SYS_ADMIN):
/// the count sent, or nil when it would have had to wait.
public func sys_sendNow(_ socket: FileDescriptor, _ bytes: [UInt8], asProcess pid: Int32) throws(SystemCallError)
    -> Int?
{
    while true {
        let sent = bytes.withUnsafeBytes { warden_send_now_as(socket.rawValue, $0.baseAddress, $0.count, pid) }
        if sent >= 0 { return sent }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "send", errno: Errno(rawValue: code))
    }
}

/// Receives one message waiting on `socket`, up to `limit` bytes, without waiting
/// (`MSG_DONTWAIT`; `peek` leaves it queued): nil when none waits.
public func sys_receiveNow(_ socket: FileDescriptor, limit: Int, peek: Bool = false) throws(SystemCallError) -> [UInt8]?
{
    var buffer = [UInt8](repeating: 0, count: limit)
    while true {
        let got = buffer.withUnsafeMutableBytes {
            recv(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | (peek ? Int32(MSG_PEEK) : 0))
        }
        if got >= 0 { return Array(buffer.prefix(got)) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "recv", errno: Errno(rawValue: code))
    }
}

public func sys_receiveDatagram(_ socket: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer)
    throws(SystemCallError) -> (count: Int, senderPID: Int32)?
{
    var pid: Int32 = 0
    while true {
        let count = warden_receive_datagram(socket.rawValue, buffer.baseAddress, buffer.count, &pid)
        if count >= 0 { return (Int(count), pid) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "recvmsg", errno: Errno(rawValue: code))
    }
}

/// Answers seccomp notification `id` on `listener` by installing a copy of `fd` in the waiting
/// process, as what its call returns; the new descriptor's number there.
public func sys_seccompAnswer(
    _ listener: FileDescriptor, id: UInt64, installing fd: FileDescriptor, closeOnExec: Bool
) throws(SystemCallError) -> Int32 {
    try retryingInterrupts("SECCOMP_IOCTL_NOTIF_ADDFD") {
        warden_seccomp_add_fd_and_answer(listener.rawValue, id, fd.rawValue, closeOnExec ? 1 : 0)
    }
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

// MARK: - Mounts

/// The per-mount flags of mount(2), by their mountinfo names.
public enum MountFlag {
    public static let byOption: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
        "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME), "relatime": UInt(MS_RELATIME),
        "strictatime": UInt(MS_STRICTATIME), "nosymfollow": UInt(256),
    ]
}

/// Changes only the per-mount flags of the mount at `target` (`MS_REMOUNT|MS_BIND`): the
/// filesystem's own options (size, mode, …) are not touched. `flags` is the complete new set.
/// With `namespace` (an open `/proc/1/ns/mnt`), the mount changed is that namespace's.
public func sys_remountFlags(_ target: [UInt8], flags: UInt, namespace: FileDescriptor? = nil)
    throws(SystemCallError)
{
    try withCPath(target) { (cTarget) throws(SystemCallError) in
        _ = try retryingInterrupts("mount", path: target) {
            warden_remount_in_namespace(namespace?.rawValue ?? -1, cTarget, flags)
        }
    }
}

/// Where this process stands against the host's (pid 1's) mount namespace.
public enum HostMountNamespace {
    /// Ours is the host's.
    case same
    /// Ours is another one (systemd sandboxing, a container sharing the host's pids): an open
    /// `/proc/1/ns/mnt`, which the caller closes.
    case other(FileDescriptor)
    /// pid 1's namespace cannot be read (a container without the host's pids).
    case unknown
}

public func sys_hostMountNamespace() -> HostMountNamespace {
    guard let ours = try? sys_statFollowing(Array("/proc/self/ns/mnt".utf8)),
        let host = try? sys_statFollowing(Array("/proc/1/ns/mnt".utf8))
    else { return .unknown }
    if ours.inode == host.inode && ours.device == host.device { return .same }
    guard let fd = try? sys_open(Array("/proc/1/ns/mnt".utf8), flags: O_RDONLY, followingSymlinks: true) else {
        return .unknown
    }
    return .other(fd)
}

// MARK: - Small files

/// The whole content of the regular file at `path` (no symlink followed anywhere on the way,
/// unless `followingSymlinks` for trusted kernel paths such as `/proc/PID/status`).
public func sys_readFile(_ path: [UInt8], followingSymlinks: Bool = false) throws(SystemCallError) -> [UInt8] {
    let fd = try sys_open(path, flags: O_RDONLY, followingSymlinks: followingSymlinks)
    defer { sys_close(fd) }
    do {
        return try MountTable.readAll(fd)
    } catch let error as SystemCallError {
        throw error
    } catch {
        throw SystemCallError(syscall: "read", path: path, errno: .ioError)
    }
}

/// Writes `bytes` to `path` so that after a crash the file is either the old one or all of the
/// new one: a temporary file, fsync, rename over, fsync of the directory.
public func sys_writeFileDurably(_ path: [UInt8], _ bytes: [UInt8], permissions: mode_t) throws(SystemCallError) {
    let temporary = path + Array(".tmp".utf8)
    if (try? sys_lstat(temporary)) != nil { try sys_unlink(temporary) }
    let fd = try sys_create(temporary, flags: O_WRONLY, permissions: permissions)
    defer { sys_close(fd) }
    try bytes.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
        try sys_writeAll(fd, UnsafeRawBufferPointer(buffer))
    }
    try sys_fsync(fd)
    try sys_rename(temporary, path)
    try sys_fsyncDirectory(containing: path)
}

/// fsyncs the directory that holds `path`, so a create, rename or unlink in it is durable.
public func sys_fsyncDirectory(containing path: [UInt8]) throws(SystemCallError) {
    let parent =
        path.lastIndex(of: UInt8(ascii: "/")).map { $0 == 0 ? [UInt8(ascii: "/")] : Array(path[..<$0]) }
        ?? [UInt8(ascii: ".")]
    let fd = try sys_open(parent, flags: O_RDONLY | O_DIRECTORY)
    defer { sys_close(fd) }
    try sys_fsync(fd)
}

/// Ends this process at once with SIGKILL: the crash tests' way to stop at a chosen step.
public func sys_killSelf() -> Never {
    kill(getpid(), SIGKILL)
    _exit(137)
}

// MARK: - Sandbox

/// The CLONE_NEW* flags: mnt, user, pid, net, ipc, uts, cgroup.
public func sys_namespaceFlags() -> [UInt64] {
    var flags: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    withUnsafeMutablePointer(to: &flags) {
        $0.withMemoryRebound(to: UInt64.self, capacity: 7) { warden_namespace_flags($0) }
    }
    return [flags.0, flags.1, flags.2, flags.3, flags.4, flags.5, flags.6]
}

/// An anonymous memory file (`memfd_create(MFD_CLOEXEC)`).
public func sys_memfd(_ name: String) throws(SystemCallError) -> FileDescriptor {
    let fd = try retryingInterrupts("memfd_create") { name.withCString { warden_memfd($0) } }
    return FileDescriptor(rawValue: fd)
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

/// Mounts a fresh tmpfs at `path` with `options` (`size=64m,mode=0755`) and `flags` (MS_*).
public func sys_mountTmpfs(_ path: [UInt8], options: String, flags: UInt) throws(SystemCallError) {
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("mount", path: path) { mount("tmpfs", cPath, "tmpfs", flags, options) }
    }
}

/// Moves the calling thread into a mount namespace of its own: what it mounts from then on is
/// invisible to the host and is unmounted by the kernel when the thread and every process it
/// started into the namespace are gone, even if the process is killed
/// (`warden_private_mount_namespace`: unshare, then slave propagation).
public func sys_privateMountNamespace() throws(SystemCallError) {
    _ = try retryingInterrupts("unshare(CLONE_NEWNS)+mount(MS_SLAVE)") { warden_private_mount_namespace() }
}

/// Detaches the mount at `path` (`MNT_DETACH`).
public func sys_unmount(_ path: [UInt8]) {
    _ = try? withCPath(path) { (cPath) throws(SystemCallError) in _ = umount2(cPath, Int32(MNT_DETACH)) }
}

public func sys_symlink(_ target: [UInt8], at path: [UInt8]) throws(SystemCallError) {
    try withCPath(target) { (cTarget) throws(SystemCallError) in
        try withCPath(path) { (cPath) throws(SystemCallError) in
            _ = try retryingInterrupts("symlink", path: path) { symlink(cTarget, cPath) }
        }
    }
}

/// A pipe, both ends `O_CLOEXEC`: (read, write).
public func sys_pipe() throws(SystemCallError) -> (FileDescriptor, FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("pipe2") { warden_pipe_cloexec(&fds) }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// A connected pair of unix datagram-ordered sockets (`SOCK_SEQPACKET|SOCK_CLOEXEC`).
public func sys_socketPair() throws(SystemCallError) -> (FileDescriptor, FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("socketpair") {
        socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// A unix datagram socket bound to the abstract name `name` (no leading NUL: it is added): a
/// claim on the name across the whole host (its network namespace) that the kernel drops when
/// the socket is closed or its process dies. `EADDRINUSE` when another socket holds the name.
public func sys_bindAbstractSocket(_ name: [UInt8]) throws(SystemCallError) -> FileDescriptor {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let length = withUnsafeMutableBytes(of: &address.sun_path) { path -> Int in
        // sun_path[0] stays 0 (abstract); the name follows, not NUL-terminated.
        let count = min(name.count, path.count - 1)
        for index in 0..<count { path[index + 1] = name[index] }
        return MemoryLayout<sa_family_t>.size + 1 + count
    }
    let fd = try retryingInterrupts("socket") {
        socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
    }
    if bound != 0 {
        let code = Glibc.errno
        close(fd)
        throw SystemCallError(syscall: "bind", path: [UInt8]("@".utf8) + name, errno: Errno(rawValue: code))
    }
    return FileDescriptor(rawValue: fd)
}

/// A listening unix stream socket (non-blocking, close-on-exec) at `name` inside `directory`,
/// bound through `/proc/self/fd` so that a directory of any path length works (a socket path is
/// at most 107 bytes).
public func sys_listenUnixStream(in directory: FileDescriptor, name: [UInt8], backlog: Int32 = 64)
    throws(SystemCallError) -> FileDescriptor
{
    let path = Array("/proc/self/fd/\(directory.rawValue)/".utf8) + name
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let fits = withUnsafeMutableBytes(of: &address.sun_path) { sunPath -> Bool in
        guard path.count < sunPath.count else { return false }
        for (index, byte) in path.enumerated() { sunPath[index] = byte }
        return true
    }
    guard fits else { throw SystemCallError(syscall: "bind", path: path, errno: .fileNameTooLong) }
    let fd = try retryingInterrupts("socket") {
        socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + 1)
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    if bound != 0 || listen(fd, backlog) != 0 {
        let code = Glibc.errno
        close(fd)
        throw SystemCallError(syscall: bound != 0 ? "bind" : "listen", path: path, errno: Errno(rawValue: code))
    }
    return FileDescriptor(rawValue: fd)
}

/// The next connection on a non-blocking listener (close-on-exec, blocking, reads giving up
/// after `receiveTimeoutMilliseconds`), and the pid of the process that connected (in this
/// process's pid namespace); nil when none is waiting.
public func sys_accept(_ listener: FileDescriptor, receiveTimeoutMilliseconds: Int)
    throws(SystemCallError) -> (connection: FileDescriptor, peerPID: Int32)?
{
    var peer: Int32 = 0
    let fd = warden_accept_cloexec(listener.rawValue, &peer)
    if fd < 0 {
        let code = Glibc.errno
        if code == EAGAIN || code == EINTR || code == ECONNABORTED { return nil }
        throw SystemCallError(syscall: "accept4", errno: Errno(rawValue: code))
    }
    var timeout = timeval(
        tv_sec: receiveTimeoutMilliseconds / 1000, tv_usec: (receiveTimeoutMilliseconds % 1000) * 1000)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return (FileDescriptor(rawValue: fd), peer)
}

/// Sends all of `bytes` on a connected socket without raising SIGPIPE when the peer is gone;
/// false when it could not.
public func sys_sendAll(_ socket: FileDescriptor, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let sent = bytes.withUnsafeBytes { buffer in
            send(socket.rawValue, buffer.baseAddress! + done, buffer.count - done, Int32(MSG_NOSIGNAL))
        }
        if sent < 0 && Glibc.errno == EINTR { continue }
        if sent <= 0 { return false }
        done += sent
    }
    return true
}

/// One descriptor received with SCM_RIGHTS.
public func sys_receiveDescriptor(_ socket: FileDescriptor) throws(SystemCallError) -> FileDescriptor {
    let fd = try retryingInterrupts("recvmsg") { warden_receive_fd(socket.rawValue) }
    return FileDescriptor(rawValue: fd)
}

/// Waits for the child `pid` and returns its raw wait status.
@discardableResult
public func sys_waitpid(_ pid: Int32) throws(SystemCallError) -> Int32 {
    var status: Int32 = 0
    _ = try retryingInterrupts("waitpid") { waitpid(pid, &status, 0) }
    return status
}

/// Reads `fd` (a pipe or a file, from its current offset) until end of file.
public func sys_readToEnd(_ fd: FileDescriptor) throws(SystemCallError) -> [UInt8] {
    var out: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    defer { chunk.deallocate() }
    while true {
        let count = try sys_read(fd, into: chunk) ?? 0
        if count == 0 { return out }
        out += chunk[0..<count]
    }
}

/// Moves `fd`'s offset to its end (for /dev/kmsg: only records from now on).
public func sys_seekToEnd(_ fd: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("lseek") { lseek(fd.rawValue, 0, SEEK_END) }
}

/// Removes the empty directory at `path` (errors ignored: best effort clean-up).
public func sys_rmdir(_ path: [UInt8]) {
    _ = try? withCPath(path) { (cPath) throws(SystemCallError) in _ = rmdir(cPath) }
}

// MARK: - CPU affinity

/// A thread's CPU affinity mask, to put back after a temporary pin.
public struct CPUAffinity: Sendable {
    fileprivate var mask: warden_cpu_mask
}

/// The CPU the calling thread runs on now (nil if the kernel will not say).
public func sys_currentCPU() -> Int32? {
    let cpu = warden_current_cpu()
    return cpu >= 0 ? cpu : nil
}

/// The calling thread's affinity mask.
public func sys_threadAffinity() -> CPUAffinity? {
    var mask = warden_cpu_mask()
    return warden_thread_affinity_get(&mask) == 0 ? CPUAffinity(mask: mask) : nil
}

/// Puts back a mask read by `sys_threadAffinity`.
public func sys_setThreadAffinity(_ affinity: CPUAffinity) throws(SystemCallError) {
    var mask = affinity.mask
    _ = try retryingInterrupts("sched_setaffinity") { warden_thread_affinity_set(&mask) }
}

/// Confines the calling thread to `cpu`; threads and processes it creates inherit that.
public func sys_pinThread(toCPU cpu: Int32) throws(SystemCallError) {
    _ = try retryingInterrupts("sched_setaffinity") { warden_pin_thread(cpu) }
}
