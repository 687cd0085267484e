// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Every system call shmwarden makes passes through this file, in a function named `sys_<name>`
// (the swift-system `system_*` pattern). One helper runs them all: it retries EINTR, hands
// EAGAIN back as a value where the caller asked for non-blocking I/O, traps on EBADF and EFAULT
// (a corrupt descriptor table is a bug, not a condition to carry on through), and throws the rest
// as `SystemCallError`.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// Runs `body` until it stops failing with EINTR; returns its result or throws its errno.
@inline(__always)
func retryingInterrupts<T: FixedWidthInteger>(
    _ name: String, path: [UInt8]? = nil, _ body: () -> T
) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(name): \(code == EBADF ? "EBADF" : "EFAULT")")
        throw SystemCallError(syscall: name, path: path, errno: Errno(rawValue: code))
    }
}

/// Calls `body` with a NUL-terminated copy of `path`.
@inline(__always)
func withCPath<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws(SystemCallError) -> T)
    throws(SystemCallError) -> T
{
    var terminated = path
    terminated.append(0)
    return try terminated.withUnsafeBufferPointer { (buffer) throws(SystemCallError) -> T in
        // Non-NUL interior bytes only: a path with an embedded NUL cannot name a file.
        guard !path.contains(0), let base = buffer.baseAddress else {
            throw SystemCallError(syscall: "path", path: path, errno: .invalidArgument)
        }
        return try base.withMemoryRebound(to: CChar.self, capacity: terminated.count) {
            (pointer) throws(SystemCallError) -> T in try body(pointer)
        }
    }
}

// MARK: - Files

/// Opens `path` refusing symlinks on every component (openat2 `RESOLVE_NO_SYMLINKS`), always
/// `O_CLOEXEC`. Pass `followingSymlinks` only for trusted kernel paths such as `/proc/self/…`.
public func sys_open(_ path: [UInt8], flags: Int32, followingSymlinks: Bool = false)
    throws(SystemCallError) -> FileDescriptor
{
    try withCPath(path) { (cPath) throws(SystemCallError) -> FileDescriptor in
        let fd = try retryingInterrupts(followingSymlinks ? "open" : "openat2", path: path) {
            followingSymlinks
                ? Glibc.open(cPath, flags | O_CLOEXEC) : warden_open_nosymlinks(AT_FDCWD, cPath, flags | O_CLOEXEC)
        }
        return FileDescriptor(rawValue: fd)
    }
}

/// Creates `path` (`O_CREAT|O_EXCL`, no symlink following) with `permissions`.
public func sys_create(_ path: [UInt8], flags: Int32, permissions: mode_t) throws(SystemCallError) -> FileDescriptor {
    try withCPath(path) { (cPath) throws(SystemCallError) -> FileDescriptor in
        let fd = try retryingInterrupts("open", path: path) {
            open(cPath, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
        }
        return FileDescriptor(rawValue: fd)
    }
}

public func sys_close(_ fd: FileDescriptor) {
    // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
    _ = Glibc.close(fd.rawValue)
}

/// Waits for an exclusive advisory lock on `fd`'s open file (flock(2)); closing `fd` releases
/// it. Locks of separate opens exclude each other, within one process as across processes.
public func sys_lockExclusive(_ fd: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("flock") { flock(fd.rawValue, LOCK_EX) }
}

public func sys_fstat(_ fd: FileDescriptor) throws(SystemCallError) -> FileStatus {
    var raw = stat()
    _ = try retryingInterrupts("fstat") { fstat(fd.rawValue, &raw) }
    return FileStatus(raw)
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)`: the status of the name itself, never of a symlink's target.
public func sys_lstat(_ path: [UInt8]) throws(SystemCallError) -> FileStatus {
    var raw = stat()
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("fstatat", path: path) { fstatat(AT_FDCWD, cPath, &raw, AT_SYMLINK_NOFOLLOW) }
    }
    return FileStatus(raw)
}

/// `pread(2)` into `buffer`; returns the byte count (0 at end of file).
public func sys_pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
{
    try retryingInterrupts("pread") { pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
}

/// `read(2)`; nil when a non-blocking descriptor has nothing (EAGAIN).
public func sys_read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer)
    throws(SystemCallError) -> Int?
{
    do throws(SystemCallError) {
        return try retryingInterrupts("read") { Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }
    } catch  where error.errno == .resourceTemporarilyUnavailable {
        return nil
    }
}

/// Writes all of `buffer`, looping over short writes.
public func sys_writeAll(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(SystemCallError) {
    var done = 0
    while done < buffer.count {
        let remaining = UnsafeRawBufferPointer(rebasing: buffer[done...])
        done += try retryingInterrupts("write") { Glibc.write(fd.rawValue, remaining.baseAddress, remaining.count) }
    }
}

/// `sendfile(2)` from `input` at `offset` to `output`; returns the bytes moved (0 at end of file).
public func sys_sendfile(to output: FileDescriptor, from input: FileDescriptor, offset: inout Int64, count: Int)
    throws(SystemCallError) -> Int
{
    var position = off_t(offset)
    let moved = try retryingInterrupts("sendfile") { sendfile(output.rawValue, input.rawValue, &position, count) }
    offset = Int64(position)
    return moved
}

public func sys_fsync(_ fd: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("fsync") { fsync(fd.rawValue) }
}

/// `fdatasync(2)`: `fd`'s data, and the metadata needed to read it back, on disk.
public func sys_fdatasync(_ fd: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("fdatasync") { fdatasync(fd.rawValue) }
}

/// `syncfs(2)`: one journal commit for everything dirty on `fd`'s filesystem.
public func sys_syncfs(_ fd: FileDescriptor) throws(SystemCallError) {
    _ = try retryingInterrupts("syncfs") { warden_syncfs(fd.rawValue) }
}

public func sys_fchmod(_ fd: FileDescriptor, _ permissions: mode_t) throws(SystemCallError) {
    _ = try retryingInterrupts("fchmod") { fchmod(fd.rawValue, permissions) }
}

public func sys_readlink(_ path: [UInt8]) throws(SystemCallError) -> [UInt8] {
    try withCPath(path) { (cPath) throws(SystemCallError) -> [UInt8] in
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = try buffer.withUnsafeMutableBufferPointer { (b) throws(SystemCallError) -> Int in
            try retryingInterrupts("readlink", path: path) { readlink(cPath, b.baseAddress!, b.count - 1) }
        }
        return buffer[0..<count].map { UInt8(bitPattern: $0) }
    }
}

/// `mkdir(2)`; an existing directory is not an error.
public func sys_mkdir(_ path: [UInt8], permissions: mode_t) throws(SystemCallError) {
    try withCPath(path) { (cPath) throws(SystemCallError) in
        do throws(SystemCallError) {
            _ = try retryingInterrupts("mkdir", path: path) { mkdir(cPath, permissions) }
        } catch  where error.errno == .fileExists {
            return
        }
    }
}

public func sys_chmod(_ path: [UInt8], _ permissions: mode_t) throws(SystemCallError) {
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("chmod", path: path) { chmod(cPath, permissions) }
    }
}

public func sys_rename(_ from: [UInt8], _ to: [UInt8]) throws(SystemCallError) {
    try withCPath(from) { (cFrom) throws(SystemCallError) in
        try withCPath(to) { (cTo) throws(SystemCallError) in
            _ = try retryingInterrupts("rename", path: to) { rename(cFrom, cTo) }
        }
    }
}

public func sys_unlink(_ path: [UInt8]) throws(SystemCallError) {
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("unlink", path: path) { unlink(cPath) }
    }
}

/// The filesystem magic (`statfs.f_type`) of the filesystem holding `fd`.
public func sys_fstatfsType(_ fd: FileDescriptor) throws(SystemCallError) -> Int64 {
    var type: Int64 = 0
    _ = try retryingInterrupts("fstatfs") { warden_fstatfs_type(fd.rawValue, &type) }
    return type
}

/// The size of the file system holding `path` and the bytes an unprivileged writer may still
/// use there (`statvfs`: `f_blocks` and `f_bavail` times `f_frsize`); nil when it cannot be asked.
public func sys_fileSystemSpace(_ path: [UInt8]) -> (size: Int64, available: Int64)? {
    var info = statvfs()
    let result = (path + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { statvfs($0.baseAddress!, &info) }
    }
    guard result == 0 else { return nil }
    let unit = Int64(info.f_frsize)
    return (Int64(info.f_blocks) &* unit, Int64(info.f_bavail) &* unit)
}

/// TMPFS_MAGIC, for comparing with `sys_fstatfsType`.
public let tmpfsMagic: Int64 = warden_tmpfs_magic()

/// Raises the open-file soft limit to the hard limit; returns the new limit.
@discardableResult
public func sys_raiseOpenFileLimit() -> Int { Int(warden_raise_nofile_limit()) }

/// This process's resident set size in bytes.
public func sys_residentSetSize() -> Int { Int(warden_rss_bytes()) }

/// CLOCK_MONOTONIC in nanoseconds.
public func sys_monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// CLOCK_REALTIME as (seconds, nanoseconds).
public func sys_realtime() -> (seconds: Int64, nanoseconds: Int64) {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return (Int64(now.tv_sec), Int64(now.tv_nsec))
}

// MARK: - Polling and wake-ups

/// `poll(2)` over `fds`; returns how many have events. `timeout` in milliseconds, -1 for none.
public func sys_poll(_ fds: inout [pollfd], timeout: Int32) throws(SystemCallError) -> Int {
    let count = fds.count
    return Int(
        try fds.withUnsafeMutableBufferPointer { (b) throws(SystemCallError) -> Int32 in
            try retryingInterrupts("poll") { poll(b.baseAddress, nfds_t(count), timeout) }
        })
}

public func sys_eventfd() throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("eventfd") { warden_eventfd() })
}

/// A second descriptor for the same open file (`fcntl(F_DUPFD_CLOEXEC)`): another thread may
/// `pread` it and close it on its own schedule.
public func sys_duplicate(_ fd: FileDescriptor) throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("fcntl") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) })
}

public func sys_lseek(_ fd: FileDescriptor, to offset: Int64) throws(SystemCallError) {
    _ = try retryingInterrupts("lseek") { lseek(fd.rawValue, off_t(offset), SEEK_SET) }
}

// MARK: - inotify

public func sys_inotify_init1(flags: Int32) throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("inotify_init1") { inotify_init1(flags) })
}

public func sys_inotify_add_watch(_ fd: FileDescriptor, _ path: [UInt8], mask: UInt32)
    throws(SystemCallError) -> Int32
{
    #if DEBUG
        if let injected = SyscallFaults.injectedError(for: "inotify_add_watch", path: path) {
            throw SystemCallError(syscall: "inotify_add_watch", path: path, errno: injected)
        }
    #endif
    return try withCPath(path) { (cPath) throws(SystemCallError) -> Int32 in
        try retryingInterrupts("inotify_add_watch", path: path) { inotify_add_watch(fd.rawValue, cPath, mask) }
    }
}

public func sys_inotify_rm_watch(_ fd: FileDescriptor, _ wd: Int32) {
    // EINVAL here means the kernel already dropped the watch (IN_IGNORED raced us): nothing to do.
    _ = inotify_rm_watch(fd.rawValue, wd)
}

// MARK: - Directories

/// The entries of the directory `fd` refers to, as (name bytes, `d_type`), without `.` and `..`.
///
/// Reads through a duplicate so the caller's descriptor and offset stay untouched.
public func sys_readDirectory(_ fd: FileDescriptor) throws(SystemCallError) -> [(name: [UInt8], type: UInt8)] {
    let copy = try retryingInterrupts("fcntl") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) }
    guard let stream = fdopendir(copy) else {
        let code = Glibc.errno
        _ = Glibc.close(copy)
        throw SystemCallError(syscall: "fdopendir", errno: Errno(rawValue: code))
    }
    defer { closedir(stream) }
    rewinddir(stream)
    var entries: [(name: [UInt8], type: UInt8)] = []
    while true {
        Glibc.errno = 0
        guard let entry = readdir(stream) else {
            if Glibc.errno != 0 { throw SystemCallError(syscall: "readdir", errno: Errno(rawValue: Glibc.errno)) }
            break
        }
        let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
            Array(raw.prefix(while: { $0 != 0 }))
        }
        if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
        entries.append((name, entry.pointee.d_type))
    }
    return entries
}
