// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import WardenCore
import WardenLinux

/// Decides which directories are watched roots: the discovered tmpfs mounts and `--watch` paths.
enum WatchRoots {
    struct Facts: Hashable {
        var device: UInt64
        var discovered: Bool
    }

    /// The roots for `configuration` given the mount table `mounts` (stacked mounts count once:
    /// only the visible one). Paths that are not directories are skipped (and logged when
    /// `logger` is given).
    static func wanted(configuration: SensorConfiguration, mounts: [MountInfoEntry], logger: Logger?)
        -> [PathBytes: Facts]
    {
        var wanted: [PathBytes: Facts] = [:]
        if configuration.discovery != .none {
            for entry in MountInfoParser.visible(mounts) where entry.isTmpfs {
                let point = PathBytes(entry.mountPoint)
                if case .under(let prefix) = configuration.discovery, !point.isWithin(prefix) { continue }
                if configuration.excludedPaths.contains(where: { point.isWithin($0) }) { continue }
                guard let status = try? sys_lstat(point.bytes), status.isDirectory else { continue }
                wanted[point] = Facts(device: status.device, discovered: true)
            }
        }
        for path in configuration.watchPaths where wanted[path] == nil {
            if let status = try? sys_lstat(path.bytes), status.isDirectory {
                wanted[path] = Facts(device: status.device, discovered: false)
            } else {
                logger?.warning("watch path is not a directory; skipped", metadata: ["file.path": "\(path)"])
            }
        }
        return wanted
    }
}

extension WatchRoots {
    /// The watched roots by device (the shortest path per device: a --watch path below a
    /// discovered mount names the same device).
    static func byDevice(configuration: SensorConfiguration, mounts: [MountInfoEntry]) -> [UInt64: PathBytes] {
        var roots: [UInt64: PathBytes] = [:]
        for (path, facts) in wanted(configuration: configuration, mounts: mounts, logger: nil)
        where roots[facts.device].map({ path.bytes.count < $0.bytes.count }) ?? true {
            roots[facts.device] = path
        }
        return roots
    }
}
