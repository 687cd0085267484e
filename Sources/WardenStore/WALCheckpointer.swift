// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Dispatch
import GRDB
import Synchronization
import WardenCore

/// Copies the WAL into the database file on a connection and thread of its own, beside the
/// store writer.
///
/// A checkpoint on the writer's thread held every commit for its whole length: about 2 ms every
/// 20 ms under alert intake (the pages of ~400 alerts written back, and two fsyncs), while every
/// waiting HTTP request waited with it. This one is PASSIVE: it never takes the write lock, so
/// commits go on while it copies. It cannot finish the job alone, since the frames committed
/// meanwhile are past what it copied, and the WAL restarts from its beginning only once every
/// frame is in the database; the writer then checkpoints those few frames itself (`StoreWriter`).
///
/// Its connection syncs like the others (`synchronous=NORMAL`): the WAL before copying, the
/// database after, so no frame is ever overwritten before its page is on disk.
final class WALCheckpointer: Sendable {
    enum State: Int {
        case idle, running, finished
    }

    private let queue: DatabaseQueue
    private let state = Atomic<Int>(State.idle.rawValue)
    private let requests = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let closing = Atomic<Bool>(false)
    private let onError: @Sendable (any Error) -> Void

    init(queue: DatabaseQueue, onError: @escaping @Sendable (any Error) -> Void) {
        self.queue = queue
        self.onError = onError
        DedicatedThread.detach(name: "warden-checkpoint", stackSize: nil) { [self] in loop() }
    }

    /// Where the last `start` is: `.finished` until the writer calls `acknowledge`.
    var current: State { State(rawValue: state.load(ordering: .acquiring)) ?? .idle }

    /// Starts a checkpoint (`current` must be `.idle`).
    func start() {
        state.store(State.running.rawValue, ordering: .releasing)
        requests.signal()
    }

    /// The writer has seen `.finished` (and checkpointed the rest itself).
    func acknowledge() { state.store(State.idle.rawValue, ordering: .releasing) }

    /// Ends the thread after the checkpoint under way, if any.
    func stop() {
        closing.store(true, ordering: .releasing)
        requests.signal()
        stopped.wait()
    }

    /// Passes at most per `start`, and the frames left over that end them early.
    static let passes = 3
    static let framesLeftToWriter = 32

    private func loop() {
        while true {
            requests.wait()
            if closing.load(ordering: .acquiring) { break }
            do {
                // Again while commits came in meanwhile: each pass is shorter than the last, and
                // what is left when this hands over is what the writer waits for.
                for _ in 0..<Self.passes {
                    let left = try queue.writeWithoutTransaction { db in
                        let (frames, copied) = try db.checkpoint(.passive)
                        return frames - copied
                    }
                    if left <= Self.framesLeftToWriter { break }
                }
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                // Another checkpoint held the checkpoint lock: the writer's next one does it.
            } catch {
                onError(error)
            }
            state.store(State.finished.rawValue, ordering: .releasing)
        }
        stopped.signal()
    }
}

extension EvidenceDatabase {
    /// A checkpointer beside the writer, on a connection of its own; `nil` for a command's single
    /// connection, where nothing commits beside the writer.
    func makeWALCheckpointer(onError: @escaping @Sendable (any Error) -> Void) throws -> WALCheckpointer? {
        guard connections == .pool else { return nil }
        return WALCheckpointer(
            queue: try DatabaseQueue(path: path, configuration: Self.configuration(.single)), onError: onError)
    }
}
