// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization
import WardenCore
import WardenLinux

/// The visible tmpfs mount points, re-read from `/proc/self/mountinfo` at most once a second:
/// correlation needs them per alert, and the table changes rarely.
public final class TmpfsMountCache: Sendable {
    private let cached = Mutex<(mounts: [PathBytes], readAt: Int64?, version: UInt64)>(([], nil, 0))
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
        cached.withLock { state in
            if state.mounts != mounts { state.version += 1 }
            state.mounts = mounts
            state.readAt = now
        }
        return mounts
    }

    /// Counts the changes `mounts` has seen: a lookup that found nothing may find something
    /// once the table changed (a container's shm mount, mapped from its path in the alert).
    public var version: UInt64 { cached.withLock { $0.version } }
}
