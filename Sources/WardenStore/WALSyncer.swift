// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux

/// Makes the store writer's commits durable on a thread of its own, so the writer goes on with
/// the next batch while the disk syncs the last one.
///
/// With `synchronous=FULL`, SQLite fsyncs the WAL inside each commit, and the writer thread sat
/// in that fdatasync (p50 0.09-0.14 ms on this VM's idle disk, 0.29 ms under the agent's load,
/// now and then 100-200 ms) with the next batch of alerts queued behind it and the CPUs idle. Instead the writer commits at `NORMAL` (the WAL frames are
/// written, not synced) and hands the batch's waiters here; this thread fdatasyncs the WAL file
/// once for everything handed over since its last sync and only then tells the waiters. The
/// guarantee is FULL's: a waiter hears `.committed` only once the frames of its commit are on
/// disk (an fdatasync of the file covers every write made to it before the call, whichever
/// descriptor made them). After a crash, SQLite's recovery replays the WAL's frames up to the
/// first one whose checksum fails, so a commit that was never synced can only be lost together
/// with everything after it, never leave a hole before a commit that was acknowledged.
///
/// The WAL file keeps its inode for the agent's life (the connections persist it, and a
/// restarted or size-limited WAL is overwritten and truncated in place), so one descriptor,
/// opened read-only, serves every sync.
final class WALSyncer: Sendable {
    /// A waiter of a committed batch and what it is to hear once the commit is durable (or
    /// `.failed` if the sync fails).
    typealias Waiter = (committed: @Sendable (StoreWriter.CommitOutcome) -> Void, outcome: StoreWriter.CommitOutcome)

    typealias Sync = @Sendable () throws -> Void

    private let queue = BlockingQueue<[Waiter]>(capacity: 1 << 20)
    private let sync: Sync
    private let release: @Sendable () -> Void
    private let onError: @Sendable (any Error) -> Void
    private let stopped = DispatchSemaphore(value: 0)
    private let waiting = Atomic<Int>(0)

    /// Waiters handed over and not yet told (`/metrics`).
    var waitingCount: Int { waiting.load(ordering: .relaxed) }

    /// `sync` makes every write to the WAL made before it was called durable (an fdatasync of
    /// the WAL file; tests pass their own); `release` runs once the thread has ended.
    init(
        sync: @escaping Sync, release: @escaping @Sendable () -> Void = {},
        onError: @escaping @Sendable (any Error) -> Void
    ) {
        self.sync = sync
        self.release = release
        self.onError = onError
        DedicatedThread.detach(name: "warden-walsync", stackSize: nil) { [self] in loop() }
    }

    /// Hands over a committed batch's waiters (none for a batch nobody waits on: it is synced
    /// all the same): they hear of it after the next sync.
    func enqueue(_ waiters: [Waiter]) {
        // Never full in practice (a million batches); put waits rather than lose a waiter.
        waiting.add(waiters.count, ordering: .relaxed)
        queue.put(waiters)
    }

    /// Syncs and tells what was handed over, then ends the thread.
    func stop() {
        queue.close()
        stopped.wait()
        release()
    }

    private func loop() {
        while true {
            let batches = queue.takeAll()
            if batches.isEmpty {
                if queue.isClosedAndEmpty { break }
                continue
            }
            do {
                try sync()
                for waiters in batches {
                    waiting.subtract(waiters.count, ordering: .relaxed)
                    for waiter in waiters { waiter.committed(waiter.outcome) }
                }
            } catch {
                // Linux may drop the dirty pages of a failed fdatasync: these commits are
                // visible but perhaps not on disk, and their senders hear that they failed.
                onError(WALSyncError.syncFailed(underlying: error))
                for waiters in batches {
                    waiting.subtract(waiters.count, ordering: .relaxed)
                    for waiter in waiters { waiter.committed(.failed) }
                }
            }
        }
        stopped.signal()
    }
}

/// A sync of the WAL failed: the commits waiting for it were answered as failed.
public enum WALSyncError: Error, CustomStringConvertible {
    case syncFailed(underlying: any Error)

    public var description: String {
        switch self {
        case .syncFailed(let underlying):
            "fdatasync of the WAL failed (its commits were answered as failed): \(underlying)"
        }
    }
}

extension EvidenceDatabase {
    /// A syncer for the agent's pool; `nil` for a command's single connection (its few durable
    /// commits sync inside themselves) or when the WAL cannot be opened (the writer then
    /// commits at FULL).
    /// `sync` replaces the fdatasync (tests).
    func makeWALSyncer(sync: WALSyncer.Sync? = nil, onError: @escaping @Sendable (any Error) -> Void) -> WALSyncer? {
        guard connections == .pool else { return nil }
        if let sync { return WALSyncer(sync: sync, onError: onError) }
        guard let wal = try? sys_open(Array((path + "-wal").utf8), flags: O_RDONLY, followingSymlinks: true)
        else { return nil }
        return WALSyncer(sync: { try sys_fdatasync(wal) }, release: { sys_close(wal) }, onError: onError)
    }
}
