// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Files, directories and file systems: path and directory-relative operations (the quarantine
// resolves no path twice), reads bounded by their callers, durable writes, statfs.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

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

/// A location-only descriptor (`O_PATH`) of the directory a trusted kernel link names (such as
/// `/proc/PID/root` or `/proc/PID/cwd`): no file system's open runs for it, so it cannot wait
/// on one. Glibc's module does not import `O_PATH`; its value is the same on every Linux ABI.
public func sys_openDirectoryLocation(_ path: [UInt8]) throws(SystemCallError) -> FileDescriptor {
    let locationOnly: Int32 = 0o10_000_000
    return try sys_open(path, flags: locationOnly | O_DIRECTORY, followingSymlinks: true)
}

/// Opens `path` relative to `directory` visiting only the path's own components: no symlink or
/// magic link followed, and either `directory` taken as the root (`inRoot`, for a path another
/// process named in its own root) or no mount crossed (for a path relative to its working
/// directory). Always `O_CLOEXEC`.
public func sys_openConfined(_ path: [UInt8], from directory: FileDescriptor, flags: Int32, inRoot: Bool)
    throws(SystemCallError) -> FileDescriptor
{
    try withCPath(path) { (cPath) throws(SystemCallError) -> FileDescriptor in
        let fd = try retryingInterrupts("openat2", path: path) {
            warden_open_confined(directory.rawValue, cPath, flags | O_CLOEXEC, inRoot ? 1 : 0)
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
        let capacity = buffer.count - 1
        let count = try retryingInterrupts("readlink", path: path) { readlink(cPath, &buffer, capacity) }
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
    guard (try? withCPath(path, { statvfs($0, &info) })) == 0 else { return nil }
    let unit = Int64(info.f_frsize)
    return (Int64(info.f_blocks) &* unit, Int64(info.f_bavail) &* unit)
}

/// TMPFS_MAGIC, for comparing with `sys_fstatfsType`.
public let tmpfsMagic: Int64 = warden_tmpfs_magic()

/// A second descriptor for the same open file (`fcntl(F_DUPFD_CLOEXEC)`): another thread may
/// `pread` it and close it on its own schedule.
public func sys_duplicate(_ fd: FileDescriptor) throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("fcntl") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) })
}

public func sys_lseek(_ fd: FileDescriptor, to offset: Int64) throws(SystemCallError) {
    _ = try retryingInterrupts("lseek") { lseek(fd.rawValue, off_t(offset), SEEK_SET) }
}

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

/// At most `limit` bytes of the file at `path` (a `/proc` file whose size a process chooses,
/// such as its command line), following symlinks (`/proc/PID/…` are magic links).
public func sys_readFile(_ path: [UInt8], limit: Int) throws(SystemCallError) -> [UInt8] {
    let fd = try sys_open(path, flags: O_RDONLY, followingSymlinks: true)
    defer { sys_close(fd) }
    var out: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    defer { chunk.deallocate() }
    while out.count < limit {
        let count =
            try sys_read(fd, into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(4096, limit - out.count)]))
            ?? 0
        if count == 0 { break }
        out += chunk[0..<count]
    }
    return out
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

/// An anonymous memory file (`memfd_create(MFD_CLOEXEC)`).
public func sys_memfd(_ name: String) throws(SystemCallError) -> FileDescriptor {
    let fd = try retryingInterrupts("memfd_create") { name.withCString { warden_memfd($0) } }
    return FileDescriptor(rawValue: fd)
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
