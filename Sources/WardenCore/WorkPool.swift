// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A fixed number of threads that run blocking work for async callers, behind a bounded queue:
/// a flood of requests waits in the queue or is turned away (`Busy`), never starts a thread
/// each or piles up without end.
public final class WorkPool: Sendable {
    /// The queue is full: the caller should answer 503 with `Retry-After`.
    public struct Busy: Error, CustomStringConvertible {
        public var description: String { "busy: the work queue is full" }
    }

    private let queue: BlockingQueue<@Sendable () -> Void>

    /// - Parameters:
    ///   - threads: how many jobs run at once.
    ///   - queued: how many may wait beyond those.
    public init(name: String, threads: Int, queued: Int) {
        queue = BlockingQueue(capacity: max(1, queued))
        for index in 0..<max(1, threads) {
            DedicatedThread.detach(name: "\(name)-\(index)") { [queue] in
                while true {
                    let jobs = queue.takeAll(limit: 1)
                    if jobs.isEmpty && queue.isClosedAndEmpty { return }
                    for job in jobs { job() }
                }
            }
        }
    }

    /// Jobs waiting for a thread.
    public var waiting: Int { queue.count }

    /// Runs `body` on one of the pool's threads and returns what it returned (or threw).
    ///
    /// - Throws: `Busy` at once when the queue is full.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let queued = queue.offer { continuation.resume(with: Result { try body() }) }
            if !queued { continuation.resume(throwing: Busy()) }
        }
    }

    /// Lets the threads finish what is queued and end.
    public func close() { queue.close() }
}
