// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Dispatch
import Foundation
import Synchronization
import WardenCore

/// The one thread that writes to the database, with group commit.
///
/// It waits for the first command, then takes everything queued behind it (up to `batchLimit`)
/// and applies it in one transaction. Under light load every file commits on its own within
/// microseconds; under a burst, commands share transactions and the sensor never waits on a
/// commit per file. Nothing handed to `submit` is dropped: `submit` waits for room when the
/// queue is full, and `finish` commits what is queued before it returns.
///
/// Nothing is held back to fill a batch: alerts that arrive while one commit is being synced
/// share the next one, and waiting for company would add its wait to every alert's latency
/// below saturation while gaining nothing above it.
///
/// Durable batches (alerts, actions) are synced by a `WALSyncer` on its own thread: this thread
/// commits without the fsync and goes on with the next batch, and the waiters hear of their
/// commit once the WAL is on disk.
///
/// Checkpoints take two steps. A `WALCheckpointer` on its own thread and connection copies the
/// bulk of the WAL beside the commits; then this thread, between batches, copies what was
/// committed meanwhile, which completes the checkpoint so the next commit restarts the WAL. A
/// checkpoint run only beside a busy writer never catches up with it, so the WAL never restarts
/// and grows without bound (1 GB in 10 s of alert intake, every write into fresh pages and every
/// read searching a bigger WAL index); one run only on this thread held every commit for ~2 ms
/// every 20 ms.
public final class StoreWriter: Sendable {
    public typealias CommitObserver = @Sendable (_ written: [PathBytes], _ monotonicNanos: Int64) -> Void

    private let database: EvidenceDatabase
    /// A command and who waits for its commit (the HTTP intake answers 200 only then).
    struct Submission {
        var command: StoreCommand
        var committed: (@Sendable (CommitOutcome) -> Void)?
    }

    private let queue: BlockingQueue<Submission>
    private let batchLimit: Int
    private let observer: CommitObserver?
    private let onError: @Sendable (any Error) -> Void
    private let done = DispatchSemaphore(value: 0)
    private let clock: @Sendable () -> Int64
    /// How often the writer checkpoints while commits keep coming: often enough that each
    /// checkpoint is short (a commit waiting behind one waits little), seldom enough that their
    /// fsyncs cost little.
    private let checkpointIntervalNanoseconds: Int64
    private let evidenceCommits = Atomic<UInt64>(0)
    private let appliedCount = Atomic<UInt64>(0)
    /// How long the writer waits idle before it checkpoints what the last commits left.
    private static let idleCheckpointSeconds = 0.05
    /// Replaces the fdatasync of the WAL that makes durable commits durable (tests).
    private let syncWAL: WALSyncer.Sync?
    /// The writer thread's syncer, once it has one (read by `awaitingSync`).
    private let syncer = Mutex<WALSyncer?>(nil)

    /// `syncWAL` is for tests: it replaces the fdatasync of the WAL after durable commits.
    public init(
        database: EvidenceDatabase, capacity: Int = 65_536, batchLimit: Int = 4096,
        checkpointIntervalNanoseconds: Int64 = 20_000_000, clock: @escaping @Sendable () -> Int64,
        observer: CommitObserver? = nil, onError: @escaping @Sendable (any Error) -> Void,
        syncWAL: (@Sendable () throws -> Void)? = nil
    ) {
        self.syncWAL = syncWAL
        self.checkpointIntervalNanoseconds = checkpointIntervalNanoseconds
        self.database = database
        self.queue = BlockingQueue(capacity: capacity)
        self.batchLimit = batchLimit
        self.observer = observer
        self.onError = onError
        self.clock = clock
    }

    /// Starts the writer thread.
    public func start() {
        DedicatedThread.detach(name: "warden-store", stackSize: nil) { [self] in self.loop() }
    }

    /// Queues `command` (waits for room when the queue is full; never drops).
    public func submit(_ command: StoreCommand) { queue.put(Submission(command: command, committed: nil)) }

    /// Queues `command` if there is room, without waiting; `committed` is called once it is
    /// committed (`.committed`) or could not be (`.failed`). Returns `false` when the queue is
    /// full: the caller answers "try again later" rather than block.
    public func offer(_ command: StoreCommand, committed: @escaping @Sendable (CommitOutcome) -> Void) -> Bool {
        queue.offer(Submission(command: command, committed: committed))
    }

    /// What `commit` got.
    public enum CommitOutcome: Sendable {
        /// Committed; for `correlateAndStore`, what became of the alert.
        case committed(StoredAlert?)
        /// The queue was full; nothing was queued.
        case busy
        /// Queued, but the database refused it (the error went to `onError`).
        case failed
    }

    /// Queues `command` without waiting for room and waits (asynchronously) for its commit.
    public func commit(_ command: StoreCommand) async -> CommitOutcome {
        await withCheckedContinuation { continuation in
            let queued = offer(command) { outcome in continuation.resume(returning: outcome) }
            if !queued { continuation.resume(returning: .busy) }
        }
    }

    /// Commands waiting to be committed.
    public var depth: Int { queue.count }

    /// Committed commands whose senders wait for the WAL sync that makes them durable.
    public var awaitingSync: Int { syncer.withLock { $0 }?.waitingCount ?? 0 }

    /// Counts the commits that added evidence an alert can be correlated with (file records and
    /// exec records). A lookup that found nothing need not be repeated while this is unchanged.
    public var evidenceGeneration: UInt64 { evidenceCommits.load(ordering: .acquiring) }

    /// Commands committed since the writer started: how busy the agent is.
    public var appliedCommands: UInt64 { appliedCount.load(ordering: .relaxed) }

    /// Commits everything queued, then stops the thread.
    public func finish() {
        queue.close()
        done.wait()
        do { try database.checkpoint(truncate: true) } catch { onError(error) }
    }

    private func loop() {
        let memo = LookupMemo()
        // Without one (a command's single connection), this thread does whole checkpoints.
        let beside: WALCheckpointer?
        do {
            beside = try database.makeWALCheckpointer(onError: onError)
        } catch {
            onError(error)
            beside = nil
        }
        // Without one (a command's single connection), durable commits sync inside themselves.
        let syncer = database.makeWALSyncer(sync: syncWAL, onError: onError)
        self.syncer.withLock { $0 = syncer }
        var lastCheckpoint = clock()
        var uncheckpointed = false
        func checkpoint() {
            do { try database.checkpoint() } catch { onError(error) }
            lastCheckpoint = clock()
            uncheckpointed = false
        }
        while true {
            let batch = queue.takeAll(limit: batchLimit, timeout: uncheckpointed ? Self.idleCheckpointSeconds : nil)
            if batch.isEmpty {
                if queue.isClosedAndEmpty { break }
                // Idle: nobody waits on this one.
                if uncheckpointed && beside?.current != .running {
                    checkpoint()
                    beside?.acknowledge()
                }
                continue
            }
            commit(batch, memo: memo, syncer: syncer)
            uncheckpointed = true
            guard let beside else {
                if clock() - lastCheckpoint >= checkpointIntervalNanoseconds { checkpoint() }
                continue
            }
            switch beside.current {
            case .idle where clock() - lastCheckpoint >= checkpointIntervalNanoseconds: beside.start()
            case .finished:
                checkpoint()  // the frames committed while it copied: a few, not ~20 ms of commits
                beside.acknowledge()
            default: break
            }
        }
        beside?.stop()
        syncer?.stop()
        done.signal()
    }

    /// Commits `batch` in one transaction, retrying with back-off (a busy or briefly failing disk
    /// can recover). If it still fails, the batch is split and each half committed on its own,
    /// down to single commands, so one command the database refuses cannot take the others down
    /// with it; a single command that still fails is reported as lost.
    ///
    /// With a `syncer`, a batch that must be durable commits without syncing the WAL and its
    /// waiters hear of it from the syncer, after the sync, while this thread goes on with the
    /// next batch.
    private func commit(_ batch: [Submission], memo: LookupMemo, syncer: WALSyncer?) {
        for attempt in 0..<Self.maxAttempts {
            do {
                let applied = try database.applyBatch(batch.map(\.command), memo: memo, syncing: syncer == nil)
                noteEvidence(batch[...])
                observer?(applied.written, clock())
                if applied.needsSync, let syncer {
                    var waiters: [WALSyncer.Waiter] = []
                    waiters.reserveCapacity(batch.count)
                    for (index, submission) in batch.enumerated() {
                        if let committed = submission.committed {
                            waiters.append((committed, .committed(applied.alerts[index])))
                        }
                    }
                    syncer.enqueue(waiters)
                    return
                }
                for (index, submission) in batch.enumerated() {
                    submission.committed?(.committed(applied.alerts[index]))
                }
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

    /// Bumps `evidenceGeneration` after a commit that holds new evidence (before anyone waiting
    /// on it hears of the commit).
    private func noteEvidence(_ submissions: ArraySlice<Submission>) {
        appliedCount.add(UInt64(submissions.count), ordering: .relaxed)
        let evidence = submissions.contains {
            switch $0.command {
            case .record, .exec: true
            default: false
            }
        }
        if evidence { evidenceCommits.add(1, ordering: .releasing) }
    }

    private func commitIsolating(_ submissions: ArraySlice<Submission>) {
        do {
            let applied = try database.applyBatch(submissions.map(\.command))
            noteEvidence(submissions)
            observer?(applied.written, clock())
            for (index, submission) in submissions.enumerated() {
                submission.committed?(.committed(applied.alerts[index]))
            }
        } catch {
            guard submissions.count > 1 else {
                if let lost = submissions.first {
                    onError(StoreWriterError.commandLost(String(describing: lost.command), underlying: error))
                    lost.committed?(.failed)
                }
                return
            }
            let middle = submissions.startIndex + submissions.count / 2
            commitIsolating(submissions[..<middle])
            commitIsolating(submissions[middle...])
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
