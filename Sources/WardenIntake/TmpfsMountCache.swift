// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization
import WardenCore
import WardenLinux

/// The visible tmpfs mount points, re-read from `/proc/self/mountinfo` at most once a second:
/// correlation needs them per alert, and the table changes rarely.
public final class TmpfsMountCache: Sendable {
    private let cached = Mutex<(mounts: [PathBytes], readAt: Int64?)>(([], nil))
    private let extra: [PathBytes]

    /// - Parameter extra: roots to treat as tmpfs too (`--watch` paths).
    public init(extra: [PathBytes] = []) { self.extra = extra }

    public var mounts: [PathBytes] {
        let now = sys_monotonicNanoseconds()
        if let fresh = cached.withLock({ state in
            state.readAt.map { now - $0 < 1_000_000_000 } == true ? state.mounts : nil
        }) {
            return fresh
        }
        let entries = (try? MountTable.read()) ?? []
        let mounts = MountInfoParser.visible(entries).filter(\.isTmpfs).map { PathBytes($0.mountPoint) } + extra
        cached.withLock { $0 = (mounts, now) }
        return mounts
    }
}
