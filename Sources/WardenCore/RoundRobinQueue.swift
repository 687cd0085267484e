// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A bounded queue that serves its owners in turn: one owner's flood waits behind its own
/// items, never in front of another owner's.
///
/// Each owner has a FIFO of at most `perOwnerLimit` items, and all of them together at most
/// `totalLimit`; `next()` takes the oldest item of the owner whose turn it is.
public struct RoundRobinQueue<Owner: Hashable, Element> {
    public let perOwnerLimit: Int
    public let totalLimit: Int
    private var queues: [Owner: [Element]] = [:]
    /// Owners with items, in turn order.
    private var turns: [Owner] = []
    public private(set) var count = 0

    public init(perOwnerLimit: Int, totalLimit: Int) {
        self.perOwnerLimit = max(1, perOwnerLimit)
        self.totalLimit = max(1, totalLimit)
    }

    public var isEmpty: Bool { count == 0 }

    /// Queues `element` for `owner`; false when its owner's share or the whole queue is full.
    public mutating func append(_ element: Element, owner: Owner) -> Bool {
        guard count < totalLimit else { return false }
        let queued = queues[owner, default: []]
        guard queued.count < perOwnerLimit else { return false }
        if queued.isEmpty { turns.append(owner) }
        queues[owner, default: []].append(element)
        count += 1
        return true
    }

    /// The oldest item of the owner whose turn it is; that owner goes to the back of the line.
    public mutating func next() -> Element? {
        guard !turns.isEmpty else { return nil }
        let owner = turns.removeFirst()
        var queued = queues[owner] ?? []
        let element = queued.removeFirst()
        count -= 1
        if queued.isEmpty {
            queues.removeValue(forKey: owner)
        } else {
            queues[owner] = queued
            turns.append(owner)
        }
        return element
    }

    /// Everything queued, in no particular order, leaving the queue empty.
    public mutating func removeAll() -> [Element] {
        defer {
            queues.removeAll()
            turns.removeAll()
            count = 0
        }
        return queues.values.flatMap { $0 }
    }
}
