// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import GRDB
import WardenCore

/// What the store writer's correlation lookups found, kept while the rows they read are
/// unchanged.
///
/// An alert storm names the same few files again and again (a dropped miner that runs every
/// few seconds, a rule that fires on each of its opens), and every alert repeated the same
/// lookups: they were the largest share of the writer's own work per alert. An answer stays
/// here only while nothing could have changed it. The memo forgets everything
/// - when a file or exec row changes on the writer's connection (it observes its transactions:
///   the writer's own commands, retention, anything else that writes there);
/// - when a transaction rolls back, since what was read inside it may never have been;
/// - when another connection committed since the last batch (SQLite's `data_version`: the
///   command line writes on connections of its own).
///
/// Used on the writer connection's queue only (GRDB calls the observer there, and the store
/// writer's batches run there).
public final class LookupMemo: TransactionObserver, @unchecked Sendable {
    private var filesAtPath: [PathBytes: [FileRecord]] = [:]
    private var filesWithInode: [UInt64: [FileRecord]] = [:]
    private var filesWithSHA256: [String: [FileRecord]] = [:]
    /// Pids with no exec record at all (the usual answer where the exec guard is off).
    private var pidsWithoutExecs: Set<Int32> = []
    private var dataVersion: Int64?
    private var observing = false
    /// Answers kept per kind before the memo starts over: bounded memory under alerts about
    /// ever new paths.
    let capacity: Int

    public init(capacity: Int = 4096) { self.capacity = capacity }

    /// Answers held, all kinds together (tests).
    public var count: Int { filesAtPath.count + filesWithInode.count + filesWithSHA256.count + pidsWithoutExecs.count }

    /// At the start of a batch, on the writer connection: starts observing it (once), and forgets
    /// every answer if another connection committed since the previous batch.
    func beginBatch(_ db: Database) throws {
        if !observing {
            db.add(transactionObserver: self, extent: .observerLifetime)
            observing = true
        }
        let version = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version"))
        if version != dataVersion { forget() }
        dataVersion = version
    }

    func forget() {
        filesAtPath.removeAll(keepingCapacity: true)
        filesWithInode.removeAll(keepingCapacity: true)
        filesWithSHA256.removeAll(keepingCapacity: true)
        pidsWithoutExecs.removeAll(keepingCapacity: true)
    }

    func files(atPath path: PathBytes, lookup: () throws -> [FileRecord]) rethrows -> [FileRecord] {
        try Self.remembered(path, in: &filesAtPath, capacity: capacity, lookup: lookup)
    }

    func files(inode: UInt64, lookup: () throws -> [FileRecord]) rethrows -> [FileRecord] {
        try Self.remembered(inode, in: &filesWithInode, capacity: capacity, lookup: lookup)
    }

    func files(sha256: String, lookup: () throws -> [FileRecord]) rethrows -> [FileRecord] {
        try Self.remembered(sha256, in: &filesWithSHA256, capacity: capacity, lookup: lookup)
    }

    /// Notes that `pid` has no exec record at any time.
    func noteNoExecs(pid: Int32) {
        if pidsWithoutExecs.count >= capacity { pidsWithoutExecs.removeAll(keepingCapacity: true) }
        pidsWithoutExecs.insert(pid)
    }

    func knowsNoExecs(pid: Int32) -> Bool { pidsWithoutExecs.contains(pid) }

    private static func remembered<Key: Hashable>(
        _ key: Key, in table: inout [Key: [FileRecord]], capacity: Int, lookup: () throws -> [FileRecord]
    ) rethrows -> [FileRecord] {
        if let known = table[key] { return known }
        let found = try lookup()
        if table.count >= capacity { table.removeAll(keepingCapacity: true) }
        table[key] = found
        return found
    }

    // MARK: TransactionObserver

    public func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        eventKind.tableName == "file" || eventKind.tableName == "exec"
    }

    public func databaseDidChange(with event: DatabaseEvent) { if count > 0 { forget() } }

    public func databaseDidCommit(_ db: Database) {}

    public func databaseDidRollback(_ db: Database) { forget() }
}
