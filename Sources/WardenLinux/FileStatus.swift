// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenLinux
@preconcurrency import Glibc

/// The fields of `struct stat` that the sensor records, in Swift types.
public struct FileStatus: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    /// The full `st_mode`: type bits and permission bits.
    public var mode: UInt32
    public var linkCount: UInt64
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    public var modifiedSeconds: Int64
    public var modifiedNanoseconds: Int64
    public var changedSeconds: Int64
    public var changedNanoseconds: Int64
    public var accessedSeconds: Int64 = 0
    public var accessedNanoseconds: Int64 = 0

    init(_ raw: stat) {
        device = UInt64(raw.st_dev)
        inode = UInt64(raw.st_ino)
        mode = UInt32(raw.st_mode)
        linkCount = UInt64(raw.st_nlink)
        uid = UInt32(raw.st_uid)
        gid = UInt32(raw.st_gid)
        size = Int64(raw.st_size)
        modifiedSeconds = Int64(raw.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(raw.st_mtim.tv_nsec)
        changedSeconds = Int64(raw.st_ctim.tv_sec)
        changedNanoseconds = Int64(raw.st_ctim.tv_nsec)
        accessedSeconds = Int64(raw.st_atim.tv_sec)
        accessedNanoseconds = Int64(raw.st_atim.tv_nsec)
    }

    public init(
        device: UInt64, inode: UInt64, mode: UInt32, linkCount: UInt64, uid: UInt32, gid: UInt32, size: Int64,
        modifiedSeconds: Int64, modifiedNanoseconds: Int64, changedSeconds: Int64, changedNanoseconds: Int64
    ) {
        self.device = device
        self.inode = inode
        self.mode = mode
        self.linkCount = linkCount
        self.uid = uid
        self.gid = gid
        self.size = size
        self.modifiedSeconds = modifiedSeconds
        self.modifiedNanoseconds = modifiedNanoseconds
        self.changedSeconds = changedSeconds
        self.changedNanoseconds = changedNanoseconds
    }

    /// `S_ISREG`.
    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }
    /// `S_ISDIR`.
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    /// `S_ISLNK`.
    public var isSymlink: Bool { mode & 0o170000 == 0o120000 }
    /// Some exec bit is set.
    public var hasExecBit: Bool { mode & 0o111 != 0 }

    /// What changes when the content or its metadata changes: size, mtime and ctime.
    ///
    /// ctime cannot be set from user space, so a writer that restores mtime still changes it.
    public var contentVersion: ContentVersion {
        ContentVersion(
            device: device, inode: inode, size: size,
            modified: modifiedSeconds &* 1_000_000_000 &+ modifiedNanoseconds,
            changed: changedSeconds &* 1_000_000_000 &+ changedNanoseconds
        )
    }
}

/// The identity of one version of one file's bytes: (dev, inode, size, mtime, ctime).
public struct ContentVersion: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modified: Int64
    public var changed: Int64
}
