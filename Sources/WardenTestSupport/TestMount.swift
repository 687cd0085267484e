// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Shared by the test targets only: real tmpfs mounts and state directories for one test each.

import Foundation
@preconcurrency import Glibc

public enum TestEnvironment {
    /// Mounting tmpfs, sysctls, remounts and the overflow tests need root (CI runs as root).
    public static let isRoot = getuid() == 0
}

/// A private tmpfs for one test (root), or a plain directory under /dev/shm (not root), removed
/// (and unmounted) by `remove()`.
public final class TestMount: Sendable {
    public let path: String
    public let isTmpfs: Bool

    public init(size: String = "64m", options: String = "") throws {
        if TestEnvironment.isRoot {
            path = "/tmp/shmwarden-test-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            let flags = options.split(separator: ",").reduce(UInt(0)) { flags, option in
                switch option {
                case "noexec": flags | UInt(MS_NOEXEC)
                case "nosuid": flags | UInt(MS_NOSUID)
                case "nodev": flags | UInt(MS_NODEV)
                default: flags
                }
            }
            guard Glibc.mount("tmpfs", path, "tmpfs", flags, "size=\(size),mode=0755") == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM)
            }
            isTmpfs = true
        } else {
            path = "/dev/shm/shmwarden-test-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            isTmpfs = false
        }
    }

    public func remove() {
        if isTmpfs { _ = umount2(path, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: path)
    }

    public func child(_ name: String) -> String { path + "/" + name }
}

/// A state directory on disk (never on the watched tmpfs).
public func makeStateDirectory() -> String {
    NSTemporaryDirectory() + "shmwarden-state-\(UUID().uuidString.prefix(8))"
}
