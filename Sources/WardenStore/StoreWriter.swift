// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Dispatch
import Foundation
import WardenCore

/// The one thread that writes to the database, with group commit.
///
/// It waits for the first command, then takes everything queued behind it (up to `batchLimit`)
/// and applies it in one transaction. Under light load every file commits on its own within
/// microseconds; under a burst, commands share transactions and the sensor never waits on a
/// commit per file. Nothing handed to `submit` is dropped: `submit` waits for room when the
/// queue is full, and `finish` commits what is queued before it returns.
public final class StoreWriter: Sendable {
    public typealias CommitObserver = @Sendable (_ written: [PathBytes], _ monotonicNanos: Int64) -> Void

    private let database: EvidenceDatabase
    private let queue: BlockingQueue<StoreCommand>
    private let batchLimit: Int
    private let observer: CommitObserver?
    private let onError: @Sendable (any Error) -> Void
    private let done = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let clock: @Sendable () -> Int64

    public init(
        database: EvidenceDatabase, capacity: Int = 65_536, batchLimit: Int = 4096,
        clock: @escaping @Sendable () -> Int64, observer: CommitObserver? = nil,
        onError: @escaping @Sendable (any Error) -> Void
    ) {
        self.database = database
        self.queue = BlockingQueue(capacity: capacity)
        self.batchLimit = batchLimit
        self.observer = observer
        self.onError = onError
        self.clock = clock
    }

    /// Starts the writer thread and the checkpoint thread.
    public func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "shmwarden-store"
        thread.start()
        let checkpointer = Thread { [self] in self.checkpointLoop() }
        checkpointer.name = "shmwarden-checkpoint"
        checkpointer.start()
    }

    /// Checkpoints the WAL every second until the writer stops, off the commit path.
    private func checkpointLoop() {
        while !stopped.wait(timeout: .now() + .seconds(1)).isSuccess {
            do { try database.checkpoint() } catch { onError(error) }
        }
    }

    /// Queues `command` (waits for room when the queue is full; never drops).
    public func submit(_ command: StoreCommand) { queue.put(command) }

    /// Commands waiting to be committed.
    public var depth: Int { queue.count }

    /// Commits everything queued, then stops the thread.
    public func finish() {
        queue.close()
        done.wait()
        stopped.signal()
        do { try database.checkpoint(truncate: true) } catch { onError(error) }
    }

    private func loop() {
        while true {
            let batch = queue.takeAll(limit: batchLimit)
            if batch.isEmpty {
                if queue.isClosedAndEmpty { break }
                continue
            }
            commit(batch)
        }
        done.signal()
    }

    /// Commits `batch` in one transaction. If that fails, commits the commands one by one, so
    /// one command the database refuses cannot take the others down with it; a command that
    /// fails on its own is retried with back-off (a full or busy disk can recover) and reported.
    private func commit(_ batch: [StoreCommand]) {
        do {
            let written = try database.apply(batch)
            observer?(written, clock())
            return
        } catch {
            onError(error)
        }
        for command in batch {
            var attempt = 0
            while true {
                do {
                    let written = try database.apply([command])
                    observer?(written, clock())
                    break
                } catch {
                    attempt += 1
                    onError(error)
                    if attempt >= Self.maxAttempts { break }
                    Thread.sleep(forTimeInterval: min(1.0, 0.01 * Double(1 << min(attempt, 7))))
                }
            }
        }
    }

    /// Attempts for one command before it is reported as lost (about 10 s of back-off).
    static let maxAttempts = 16
}

extension DispatchTimeoutResult {
    fileprivate var isSuccess: Bool { self == .success }
}
