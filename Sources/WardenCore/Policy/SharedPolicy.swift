// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization

/// The policy in force, shared by the responder and the exec guard, swapped whole on a reload.
/// `generation` lets a reader with a cache notice a swap with one atomic load.
public final class SharedPolicy: Sendable {
    private let state: Mutex<Policy>
    private let counter = Atomic<Int>(0)

    public init(_ policy: Policy) { state = Mutex(policy) }

    public var current: Policy { state.withLock { $0 } }

    /// Bumped by every `replace`.
    public var generation: Int { counter.load(ordering: .acquiring) }

    public func replace(_ policy: Policy) {
        state.withLock { $0 = policy }
        counter.add(1, ordering: .releasing)
    }
}
