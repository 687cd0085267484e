// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// fanotify event bits. A struct, not an enum, so bits this code does not name survive.
public struct FanotifyMask: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    private static let c = warden_fanotify_constants()
    /// A file opened for writing was closed. The corresponding C constant is `FAN_CLOSE_WRITE`.
    public static let closeWrite = FanotifyMask(rawValue: c.close_write)
    /// A file was opened to be executed. The corresponding C constant is `FAN_OPEN_EXEC`.
    public static let openExec = FanotifyMask(rawValue: c.open_exec)
    /// Permission to execute is asked. The corresponding C constant is `FAN_OPEN_EXEC_PERM`.
    public static let openExecPermission = FanotifyMask(rawValue: c.open_exec_perm)
    /// Report events on a marked directory's children. The C constant is `FAN_EVENT_ON_CHILD`.
    public static let eventOnChild = FanotifyMask(rawValue: c.event_on_child)
    /// Events were lost. The corresponding C constant is `FAN_Q_OVERFLOW`.
    public static let queueOverflow = FanotifyMask(rawValue: c.q_overflow)
}

/// One fanotify event in fd mode: the kernel opened the file for us when the event happened.
public struct FanotifyEvent: Sendable {
    public var mask: FanotifyMask
    /// The file, opened by the kernel at event time; nil for queue-wide events (`FAN_NOFD`).
    /// The receiver owns it and must close it.
    public var descriptor: FileDescriptor?
    /// The process that caused the event.
    public var pid: Int32
}

/// Decodes the bytes of a fanotify `read(2)`: `struct fanotify_event_metadata` records
/// (`event_len` u32, `vers` u8, reserved u8, `metadata_len` u16, `mask` u64, `fd` s32, `pid` s32),
/// walked by `event_len`. Pure: tests feed it hand-built buffers.
public enum FanotifyEventDecoder {
    public static let metadataSize = 24
    /// FANOTIFY_METADATA_VERSION, as the headers we were built against say.
    public static var metadataVersion: UInt8 { version }
    static let noDescriptor = warden_fanotify_constants().nofd
    static let version = UInt8(truncatingIfNeeded: warden_fanotify_constants().metadata_version)

    public struct Record: Hashable, Sendable {
        public var mask: UInt64
        public var fd: Int32
        public var pid: Int32
    }

    /// Decodes every complete record; stops at a record whose version or length is wrong.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> [Record] {
        var records: [Record] = []
        var offset = 0
        while offset + metadataSize <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let recordVersion = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt8.self)
            guard length >= metadataSize, offset + length <= bytes.count, recordVersion == version else { break }
            records.append(
                Record(
                    mask: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self),
                    fd: bytes.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self),
                    pid: bytes.loadUnaligned(fromByteOffset: offset + 20, as: Int32.self)))
            offset += length
        }
        return records
    }
}

/// A fanotify group in fd mode (notification class, or content class for permission events):
/// owns its descriptor, closes it on deinit.
///
/// Unlike inotify, each event carries a descriptor the kernel opened when the event happened, so
/// a file that is closed and unlinked within microseconds is still readable by us.
///
/// - Important: Needs `CAP_SYS_ADMIN`. Not thread-safe: confine it to one reader thread.
public final class Fanotify {
    public let descriptor: FileDescriptor
    private let buffer: UnsafeMutableRawBufferPointer
    private static let c = warden_fanotify_constants()

    /// `fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC)`;
    /// with `permissionEvents`, `FAN_CLASS_CONTENT`: the group may answer permission events.
    /// A permission group's queue and marks are unlimited (`FAN_UNLIMITED_QUEUE |
    /// FAN_UNLIMITED_MARKS`): when a bounded queue is full the kernel drops a permission event
    /// and lets the access through, so a flood of other events must never fill it.
    public init(permissionEvents: Bool = false) throws(SystemCallError) {
        let flags =
            permissionEvents
            ? Self.c.class_content | Self.c.unlimited_queue | Self.c.unlimited_marks : Self.c.class_notif
        let fd = try retryingInterrupts("fanotify_init") {
            warden_fanotify_init(flags | Self.c.cloexec | Self.c.nonblock, Self.c.event_f_flags)
        }
        descriptor = FileDescriptor(rawValue: fd)
        buffer = .allocate(byteCount: 64 * 1024, alignment: 8)
    }

    deinit {
        sys_close(descriptor)
        buffer.deallocate()
    }

    /// Marks the directory at `path` for `mask` on its children (`FAN_EVENT_ON_CHILD`).
    public func markDirectory(_ path: [UInt8], mask: FanotifyMask) throws(SystemCallError) {
        try withCPath(path) { (cPath) throws(SystemCallError) in
            _ = try retryingInterrupts("fanotify_mark", path: path) {
                warden_fanotify_mark(descriptor.rawValue, Self.c.mark_add, mask.union(.eventOnChild).rawValue, cPath)
            }
        }
    }

    /// Marks the whole filesystem holding `path` (`FAN_MARK_FILESYSTEM`) for `mask`: every mount
    /// of it in every mount namespace, so an agent in its own namespace (systemd sandboxing, a
    /// container) still sees what the host does there. A `FAN_MARK_MOUNT` would only see its
    /// own copy of the mount.
    public func markFilesystem(_ path: [UInt8], mask: FanotifyMask) throws(SystemCallError) {
        try mark(path, flags: Self.c.mark_add | Self.c.mark_filesystem, mask: mask)
    }

    /// Removes a mark made by `markFilesystem` or `markDirectory`.
    public func unmark(_ path: [UInt8], filesystem: Bool, mask: FanotifyMask) throws(SystemCallError) {
        try mark(
            path, flags: Self.c.mark_remove | (filesystem ? Self.c.mark_filesystem : 0),
            mask: filesystem ? mask : mask.union(.eventOnChild))
    }

    private func mark(_ path: [UInt8], flags: UInt32, mask: FanotifyMask) throws(SystemCallError) {
        try withCPath(path) { (cPath) throws(SystemCallError) in
            _ = try retryingInterrupts("fanotify_mark", path: path) {
                warden_fanotify_mark(descriptor.rawValue, flags, mask.rawValue, cPath)
            }
        }
    }

    /// Tells the kernel to stop reporting `mask` for the file `fd` is open on (an inode mark with
    /// `FAN_MARK_IGNORED_MASK`), until the file is next modified: without
    /// `FAN_MARK_IGNORED_SURV_MODIFY`, the kernel clears the ignore mask on the file's first
    /// write, truncate or fallocate. The kernel drops the mark when the inode goes away.
    public func ignoreUntilModified(_ mask: FanotifyMask, fileOf fd: FileDescriptor) throws(SystemCallError) {
        _ = try retryingInterrupts("fanotify_mark") {
            warden_fanotify_mark_descriptor(
                descriptor.rawValue, Self.c.mark_add | Self.c.mark_ignored_mask, mask.rawValue, fd.rawValue)
        }
    }

    /// Removes what `ignoreUntilModified` added.
    public func stopIgnoring(_ mask: FanotifyMask, fileOf fd: FileDescriptor) throws(SystemCallError) {
        _ = try retryingInterrupts("fanotify_mark") {
            warden_fanotify_mark_descriptor(
                descriptor.rawValue, Self.c.mark_remove | Self.c.mark_ignored_mask, mask.rawValue, fd.rawValue)
        }
    }

    /// Answers a permission event (`struct fanotify_response`): allow or deny the access that
    /// `event` (the event's descriptor) stands for. The caller still owns and closes `event`.
    public func respond(to event: FileDescriptor, allow: Bool) throws(SystemCallError) {
        var response: (Int32, UInt32) = (event.rawValue, allow ? Self.c.allow : Self.c.deny)
        try withUnsafeBytes(of: &response) { (bytes) throws(SystemCallError) in
            try sys_writeAll(descriptor, UnsafeRawBufferPointer(rebasing: bytes[0..<8]))
        }
    }

    /// Reads what is queued (never blocks); empty when nothing is.
    public func readEvents() throws(SystemCallError) -> [FanotifyEvent] {
        guard let count = try sys_read(descriptor, into: buffer), count > 0 else { return [] }
        return FanotifyEventDecoder.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<count])).map { record in
            FanotifyEvent(
                mask: FanotifyMask(rawValue: record.mask),
                descriptor: record.fd == FanotifyEventDecoder.noDescriptor || record.fd < 0
                    ? nil : FileDescriptor(rawValue: record.fd),
                pid: record.pid)
        }
    }
}

/// The path a descriptor refers to now (`/proc/self/fd/N`), and its status.
///
/// The kernel appends ` (deleted)` to an unlinked file's path. The link is read *before* the
/// `fstat`, so if the file was unlinked in between, the name read has no suffix and is right as
/// it is; the suffix is stripped only when it is there and `fstat` confirms no links are left.
/// (A file really named `… (deleted)` and then unlinked loses that suffix: a known ambiguity of
/// `/proc/self/fd`.)
public func sys_descriptorPath(_ fd: FileDescriptor) -> (path: [UInt8], status: FileStatus)? {
    guard let target = try? sys_readlink(Array("/proc/self/fd/\(fd.rawValue)".utf8)),
        let status = try? sys_fstat(fd)
    else { return nil }
    return (strippingDeletedSuffix(target, status: status), status)
}

/// The path `fd` refers to, given its `status` from an earlier `fstat` (the exec guard has one):
/// as `sys_descriptorPath`, except that a file unlinked between the two calls keeps the suffix.
public func sys_descriptorTarget(_ fd: FileDescriptor, status: FileStatus) -> [UInt8]? {
    guard let target = try? sys_readlink(Array("/proc/self/fd/\(fd.rawValue)".utf8)) else { return nil }
    return strippingDeletedSuffix(target, status: status)
}

private func strippingDeletedSuffix(_ target: [UInt8], status: FileStatus) -> [UInt8] {
    let suffix = Array(" (deleted)".utf8)
    guard status.linkCount == 0, target.count > suffix.count, Array(target.suffix(suffix.count)) == suffix else {
        return target
    }
    return Array(target.dropLast(suffix.count))
}
