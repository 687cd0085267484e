// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The directories above a file, up to the root of the mount that holds it.
public enum DirectoryChain {
    /// The status of each directory from the mount's root down to `path`'s own directory: the
    /// walk goes up by name until the device changes (the mount's root is the last directory on
    /// `device`) or `/` is reached; with `device` nil, always up to `/`. Nil when a directory
    /// cannot be read or is not one.
    ///
    /// `path` should be kernel-resolved (from a descriptor or `/proc`): it then holds no
    /// symbolic links.
    public static func statuses(above path: [UInt8], device: UInt64?) -> [FileStatus]? {
        var chain: [FileStatus] = []
        var current = path
        while let cut = current.lastIndex(of: UInt8(ascii: "/")) {
            current = cut == 0 ? [UInt8(ascii: "/")] : Array(current[..<cut])
            guard let status = try? sys_lstat(current), status.isDirectory else { return nil }
            if let device, status.device != device { break }
            chain.append(status)
            if current == [UInt8(ascii: "/")] { break }
        }
        guard !chain.isEmpty else { return nil }
        return chain.reversed()
    }
}
