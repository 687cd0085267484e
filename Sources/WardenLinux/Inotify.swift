// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// An inotify instance: owns its descriptor and closes it on deinit.
///
/// - Important: Not thread-safe. The sensor confines each instance to its one reader thread.
public final class Inotify {
    public let descriptor: FileDescriptor
    private let buffer: UnsafeMutableRawBufferPointer

    /// The read buffer size; large enough to drain a busy queue in a few reads.
    public static let bufferSize = 256 * 1024

    /// Creates a non-blocking, close-on-exec instance (`inotify_init1`).
    public init() throws(SystemCallError) {
        descriptor = try sys_inotify_init1(flags: Int32(IN_NONBLOCK | IN_CLOEXEC))
        buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Self.bufferSize, alignment: MemoryLayout<inotify_event>.alignment)
    }

    deinit {
        sys_close(descriptor)
        buffer.deallocate()
    }

    /// Adds (or updates) a watch on `path`; returns its watch descriptor.
    ///
    /// - Throws: `SystemCallError` with `ENOSPC` when `fs.inotify.max_user_watches` is exhausted.
    public func addWatch(_ path: [UInt8], mask: InotifyMask) throws(SystemCallError) -> Int32 {
        try sys_inotify_add_watch(descriptor, path, mask: mask.rawValue)
    }

    public func removeWatch(_ watch: Int32) { sys_inotify_rm_watch(descriptor, watch) }

    /// Reads and decodes what is queued; an empty array when nothing is (never blocks).
    public func readRecords() throws(SystemCallError) -> [InotifyRecord] {
        guard let count = try sys_read(descriptor, into: buffer), count > 0 else { return [] }
        return InotifyRecordDecoder.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }
}

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
