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

    /// Commits `batch` in one transaction, retrying with back-off (a busy or briefly failing disk
    /// can recover). If it still fails, the batch is split and each half committed on its own,
    /// down to single commands, so one command the database refuses cannot take the others down
    /// with it; a single command that still fails is reported as lost.
    private func commit(_ batch: [StoreCommand]) {
        for attempt in 0..<Self.maxAttempts {
            do {
                let written = try database.apply(batch)
                observer?(written, clock())
                return
            } catch {
                onError(error)
                if attempt + 1 < Self.maxAttempts {
                    Thread.sleep(forTimeInterval: 0.01 * Double(1 << attempt))
                }
            }
        }
        commitIsolating(batch[...])
    }

    private func commitIsolating(_ commands: ArraySlice<StoreCommand>) {
        do {
            let written = try database.apply(Array(commands))
            observer?(written, clock())
        } catch {
            guard commands.count > 1 else {
                onError(StoreWriterError.commandLost(String(describing: commands.first), underlying: error))
                return
            }
            let middle = commands.startIndex + commands.count / 2
            commitIsolating(commands[..<middle])
            commitIsolating(commands[middle...])
        }
    }

    /// Attempts for a whole batch before it is split (about 0.3 s of back-off in all).
    static let maxAttempts = 5
}

/// What the writer reports beyond the database's own errors.
public enum StoreWriterError: Error, CustomStringConvertible {
    /// A command failed alone, after retries: it is not in the database.
    case commandLost(String, underlying: any Error)

    public var description: String {
        switch self {
        case .commandLost(let command, let underlying): "store command lost after retries: \(underlying); \(command)"
        }
    }
}

extension DispatchTimeoutResult {
    fileprivate var isSuccess: Bool { self == .success }
}
