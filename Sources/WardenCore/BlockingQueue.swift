// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// A bounded FIFO between dedicated threads (never the cooperative pool).
///
/// Producers choose: `offer` never blocks and says `false` when full (the inotify reader uses it:
/// it must never stall, and a refusal becomes a rescan), `put` waits for room. Consumers take
/// everything queued at once with `takeAll`, which is how the writers batch.
///
/// - Important: `@unchecked Sendable` is sound because every stored property is read and written
///   only while `condition` is locked.
public final class BlockingQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Queued and not yet taken.
    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count - head
    }

    /// Adds `element` if there is room; never blocks. `false` when full or closed.
    @discardableResult
    public func offer(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, items.count - head < capacity else { return false }
        items.append(element)
        condition.broadcast()
        return true
    }

    /// Adds `element`, waiting for room. `false` only when the queue is closed.
    @discardableResult
    public func put(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !closed && items.count - head >= capacity { condition.wait() }
        guard !closed else { return false }
        items.append(element)
        condition.broadcast()
        return true
    }

    /// Waits until something is queued (or the queue is closed, or `timeout` passes) and takes
    /// up to `limit` elements. An empty result with `isClosedAndEmpty` true means: stop.
    public func takeAll(limit: Int = .max, timeout: TimeInterval? = nil) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        while items.count == head && !closed {
            if let deadline {
                if !condition.wait(until: deadline) { break }
            } else {
                condition.wait()
            }
        }
        let end = limit >= items.count - head ? items.count : head + limit
        let taken = Array(items[head..<end])
        head = end
        if head == items.count {
            items.removeAll(keepingCapacity: items.capacity <= 4 * capacity)
            head = 0
        } else if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return taken
    }

    /// Refuses new elements and wakes every waiter; what is queued can still be taken.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// `true` once closed (what is queued can still be taken).
    public var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }

    /// `true` once closed and drained.
    public var isClosedAndEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed && items.count == head
    }
}
