// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc

/// inotify event bits. A struct, not an enum, so bits this code does not name survive.
public struct InotifyMask: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The corresponding C constant is `IN_ACCESS`.
    public static let access = InotifyMask(rawValue: UInt32(IN_ACCESS))
    /// The corresponding C constant is `IN_MODIFY`.
    public static let modify = InotifyMask(rawValue: UInt32(IN_MODIFY))
    /// A `chmod`, `chown`, link count or timestamp change. The corresponding C constant is `IN_ATTRIB`.
    public static let attrib = InotifyMask(rawValue: UInt32(IN_ATTRIB))
    /// A file opened for writing was closed. The corresponding C constant is `IN_CLOSE_WRITE`.
    public static let closeWrite = InotifyMask(rawValue: UInt32(IN_CLOSE_WRITE))
    /// The corresponding C constant is `IN_OPEN`.
    public static let open = InotifyMask(rawValue: UInt32(IN_OPEN))
    /// The corresponding C constant is `IN_MOVED_FROM`.
    public static let movedFrom = InotifyMask(rawValue: UInt32(IN_MOVED_FROM))
    /// The corresponding C constant is `IN_MOVED_TO`.
    public static let movedTo = InotifyMask(rawValue: UInt32(IN_MOVED_TO))
    /// The corresponding C constant is `IN_CREATE`.
    public static let create = InotifyMask(rawValue: UInt32(IN_CREATE))
    /// The corresponding C constant is `IN_DELETE`.
    public static let delete = InotifyMask(rawValue: UInt32(IN_DELETE))
    /// The corresponding C constant is `IN_DELETE_SELF`.
    public static let deleteSelf = InotifyMask(rawValue: UInt32(IN_DELETE_SELF))
    /// The corresponding C constant is `IN_MOVE_SELF`.
    public static let moveSelf = InotifyMask(rawValue: UInt32(IN_MOVE_SELF))
    /// The filesystem holding the watched object was unmounted. The C constant is `IN_UNMOUNT`.
    public static let unmount = InotifyMask(rawValue: UInt32(IN_UNMOUNT))
    /// The kernel's event queue overflowed; events were lost. The C constant is `IN_Q_OVERFLOW`.
    public static let queueOverflow = InotifyMask(rawValue: UInt32(IN_Q_OVERFLOW))
    /// The watch was removed (explicitly, or because its object went away). C: `IN_IGNORED`.
    public static let ignored = InotifyMask(rawValue: UInt32(IN_IGNORED))
    /// The subject is a directory. The corresponding C constant is `IN_ISDIR`.
    public static let isDirectory = InotifyMask(rawValue: UInt32(IN_ISDIR))
    /// Watch only if the path is a directory. The corresponding C constant is `IN_ONLYDIR`.
    public static let onlyDirectory = InotifyMask(rawValue: UInt32(IN_ONLYDIR))
    /// Do not follow a symlink at the watched path. The corresponding C constant is `IN_DONT_FOLLOW`.
    public static let dontFollow = InotifyMask(rawValue: UInt32(IN_DONT_FOLLOW))
    /// Stop reporting on children once they are unlinked. The C constant is `IN_EXCL_UNLINK`.
    public static let excludeUnlinked = InotifyMask(rawValue: UInt32(IN_EXCL_UNLINK))

    /// What the sensor watches on every directory of a tmpfs.
    public static let sensorDirectory: InotifyMask = [
        .create, .closeWrite, .movedTo, .movedFrom, .attrib, .delete, .deleteSelf, .moveSelf,
        .onlyDirectory, .dontFollow,
    ]
}
