// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization

/// Runs blocking work on a thread of its own and lets async code await its end, so blocking
/// reads, hashing and SQLite never occupy the cooperative pool.
public enum DedicatedThread {
    /// Starts `body` on a new thread called `name`: what `top -H`, `ps -L` and perf show.
    ///
    /// Foundation passes a thread's name to the kernel only once `start()` has returned (a name
    /// set before stays Foundation's own, and one the new thread set for itself before that was
    /// lost in 4 of 41 test runs), so the thread waits for `start()` before it names itself.
    /// Linux refuses names longer than 15 bytes (the thread keeps its creator's): longer names
    /// are cut to fit.
    ///
    /// - Parameter stackSize: bytes, or nil for the system's default.
    public static func detach(name: String, stackSize: Int? = 1 << 20, _ body: @escaping @Sendable () -> Void) {
        var kernelName = Substring(name)
        while kernelName.utf8.count > 15 { kernelName.removeLast() }
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [kernelName] in
            started.wait()
            Thread.current.name = String(kernelName)
            body()
        }
        if let stackSize { thread.stackSize = stackSize }
        thread.start()
        started.signal()
    }

    public static func run(name: String, _ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            detach(name: name) {
                body()
                continuation.resume()
            }
        }
    }

    /// Runs `body` on a thread of its own and returns (or throws) what it did.
    public static func result<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            detach(name: name) { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Starts `body` on a thread of its own now; synchronous code collects what it returned (or
    /// threw) with `Pending.value()` when it needs it, having done other work meanwhile.
    public static func start<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) -> Pending<T> {
        let pending = Pending<T>()
        detach(name: name) {
            pending.outcome.withLock { $0 = Result { try body() } }
            pending.done.signal()
        }
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
