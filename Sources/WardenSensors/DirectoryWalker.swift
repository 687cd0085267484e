// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// Walks one watched root, never leaving its filesystem and never following a symlink.
enum DirectoryWalker {
    /// Visits every directory below (and including) `start` that is on `device`, calling
    /// `beforeListing` on each before its entries are read (the sensor adds the inotify watch
    /// there, so nothing can land unseen between the listing and the watch), and returns every
    /// non-directory entry found.
    static func walk(
        _ start: PathBytes, device: UInt64, excluded: [PathBytes],
        beforeListing: (PathBytes) -> Void = { _ in }
    ) -> [PathBytes] {
        var files: [PathBytes] = []
        var pending: [PathBytes] = [start]
        while let directory = pending.popLast() {
            if excluded.contains(where: { directory.isWithin($0) }) { continue }
            beforeListing(directory)
            guard let fd = try? sys_open(directory.bytes, flags: O_RDONLY | O_DIRECTORY | O_NONBLOCK) else { continue }
            let entries = (try? sys_readDirectory(fd)) ?? []
            sys_close(fd)
            for entry in entries {
                let path = directory.appending(entry.name)
                var isDirectory = entry.type == UInt8(DT_DIR)
                if entry.type == UInt8(DT_UNKNOWN) || isDirectory {
                    guard let status = try? sys_lstat(path.bytes) else { continue }
                    isDirectory = status.isDirectory
                    // Another mount below this root is its own root (or not ours at all).
                    if isDirectory && status.device != device { continue }
                }
                if isDirectory {
                    pending.append(path)
                } else if !excluded.contains(where: { path.isWithin($0) }) {
                    files.append(path)
                }
            }
        }
        return files
    }
}
