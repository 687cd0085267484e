// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import Synchronization
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

/// The watched roots by device, re-read from the mount table at most once a second: the exec
/// monitor asks per exec whether a program is on a watched tmpfs.
final class WatchedDevices: Sendable {
    private let configuration: SensorConfiguration
    private let cached = Mutex<(roots: [UInt64: PathBytes], readAt: Int64?)>(([:], nil))

    init(configuration: SensorConfiguration) { self.configuration = configuration }

    var current: [UInt64: PathBytes] {
        let now = sys_monotonicNanoseconds()
        if let fresh = cached.withLock({ state in
            state.readAt.map { now - $0 < 1_000_000_000 } == true ? state.roots : nil
        }) {
            return fresh
        }
        let wanted = WatchRoots.wanted(
            configuration: configuration, mounts: (try? MountTable.read()) ?? [], logger: nil)
        var roots: [UInt64: PathBytes] = [:]
        // The shortest path per device: a --watch path below a discovered mount names the same device.
        for (path, facts) in wanted where roots[facts.device].map({ path.bytes.count < $0.bytes.count }) ?? true {
            roots[facts.device] = path
        }
        cached.withLock { $0 = (roots, now) }
        return roots
    }
}
