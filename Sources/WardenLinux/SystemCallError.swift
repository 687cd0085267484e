// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import SystemPackage

/// A system call that failed: which call, on which path (when there is one), and the errno.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The C function's name, e.g. `inotify_add_watch`.
    public var syscall: String
    /// The path bytes the call was about, if any.
    public var path: [UInt8]?
    public var errno: Errno

    public init(syscall: String, path: [UInt8]? = nil, errno: Errno) {
        self.syscall = syscall
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let where_ = path.map { " on \(String(decoding: $0, as: UTF8.self).debugDescription)" } ?? ""
        return "\(syscall)\(where_) failed: \(errno) (errno \(errno.rawValue))"
    }
}
