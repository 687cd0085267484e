// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization

/// Runs blocking work on a thread of its own and lets async code await its end, so blocking
/// reads, hashing and SQLite never occupy the cooperative pool.
public enum DedicatedThread {
    public static func run(name: String, _ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                body()
                continuation.resume()
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body` on a thread of its own and returns (or throws) what it did.
    public static func result<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Starts `body` on a thread of its own now; synchronous code collects what it returned (or
    /// threw) with `Pending.value()` when it needs it, having done other work meanwhile.
    public static func start<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) -> Pending<T> {
        let pending = Pending<T>()
        let thread = Thread {
            pending.outcome.withLock { $0 = Result { try body() } }
            pending.done.signal()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
        return pending
    }

    /// The outcome of `start`, once its thread has finished.
    public final class Pending<T: Sendable>: Sendable {
        fileprivate let outcome = Mutex<Result<T, any Error>?>(nil)
        fileprivate let done = DispatchSemaphore(value: 0)

        /// Waits for the thread, then returns what it returned or throws what it threw.
        public func value() throws -> T {
            done.wait()
            done.signal()  // for the next caller
            // The thread sets the outcome before it signals.
            guard let result = outcome.withLock({ $0 }) else { preconditionFailure("signalled without an outcome") }
            return try result.get()
        }
    }
}
