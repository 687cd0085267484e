// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import Synchronization
import WardenCore

/// The queue of events for the outputs, in the database: each event is inserted in the
/// transaction of the record that caused it, so an event exists exactly when its record does.
///
/// Bounded: past `limit` events the oldest are deleted and counted as dropped; an output whose
/// delivery cursor was before them is told how many it missed (`OutboxEvents.overflow`). Events
/// leave the table once every configured output's cursor is past them.
public final class Outbox: Sendable {
    public let hostname: String
    public let limit: Int
    /// The configured outputs' names: the cursors that hold events in the table.
    public let outputs: [String]
    private let counters = Mutex<(queued: Int, dropped: Int)>((0, 0))

    public init(hostname: String, limit: Int, outputs: [String]) {
        self.hostname = hostname
        self.limit = max(1, limit)
        self.outputs = outputs
    }

    /// Events queued and dropped (full) since the agent started.
    public var queuedCount: Int { counters.withLock { $0.queued } }
    public var droppedCount: Int { counters.withLock { $0.dropped } }

    /// Inserts `event`; if the table then holds more than `limit`, deletes the oldest.
    func enqueue(_ event: FleetEvent, in db: Database) throws {
        let insert = StatementBinder(
            try db.cachedStatement(sql: "INSERT INTO outbox (id, type, priority, time, body) VALUES (?, ?, ?, ?, ?)"))
        insert.bind(1, event.id)
        insert.bind(2, event.type.rawValue)
        insert.bind(3, Int64(event.priority.rawValue))
        insert.bind(4, event.time.nanosecondsSinceEpoch)
        insert.bind(5, event.json(hostname: hostname))
        try insert.execute(in: db)
        let seq = db.lastInsertedRowID
        // Rows leave only from the head and AUTOINCREMENT never reuses a number, so the rows
        // held are exactly head…seq.
        let head = try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM outbox ORDER BY seq LIMIT 1")) ?? seq
        var dropped = 0
        if seq - head + 1 > Int64(limit) {
            try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= ?").execute(arguments: [seq - Int64(limit)])
            dropped = db.changesCount
        }
        counters.withLock {
            $0.queued += 1
            $0.dropped += dropped
        }
    }

    /// After a file record's commit: its event now when its evidence is settled, or once the
    /// evidence copy is made or refused (`evidenceSettled`).
    func fileRecorded(_ file: FileRecord, in db: Database) throws {
        guard let id = file.id else { return }
        guard let sha = file.sha256, file.hashStatus == .ok else {
            try enqueue(
                OutboxEvents.file(file, evidence: .missing("not hashed (\(file.hashStatus.rawValue))")), in: db)
            return
        }
        if let evidence = try Self.settledEvidence(sha256: sha, in: db) {
            try enqueue(OutboxEvents.file(file, evidence: evidence), in: db)
            return
        }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO outbox_awaiting_evidence (fileId, sha256) VALUES (?, ?)")
            .execute(arguments: [id, sha])
    }

    /// The evidence copy of `sha256` is made (or refused): the events of the files waiting for it.
    func evidenceSettled(sha256: String, _ evidence: OutboxEvents.Evidence, in db: Database) throws {
        let files = try Array(
            ColumnCursor(
                db.cachedStatement(
                    sql: """
                        SELECT \(EvidenceDatabase.fileColumns) FROM file
                        WHERE id IN (SELECT fileId FROM outbox_awaiting_evidence WHERE sha256 = ?) ORDER BY id
                        """),
                arguments: [sha256], read: EvidenceDatabase.fileRecord))
        guard !files.isEmpty else { return }
        for file in files { try enqueue(OutboxEvents.file(file, evidence: evidence), in: db) }
        try db.cachedStatement(sql: "DELETE FROM outbox_awaiting_evidence WHERE sha256 = ?").execute(arguments: [sha256]
        )
    }

    /// The evidence of `sha256` as the blob row states it, or nil while its copy is pending.
    static func settledEvidence(sha256: String, in db: Database) throws -> OutboxEvents.Evidence? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT evidencePath, evidenceSkipped FROM blob WHERE sha256 = ?"),
                arguments: [sha256])
        else { return nil }
        if let path: String = row["evidencePath"] { return .kept(path) }
        if let reason: String = row["evidenceSkipped"] { return .missing(reason) }
        return nil
    }

    /// A correlated alert's event, with the evidence and latest sandbox verdict of its file.
    func alertStored(_ record: AlertRecord, in db: Database) throws {
        guard let best = record.correlations.first else { return }
        var evidence: OutboxEvents.Evidence?
        var verdict: String?
        if let sha = best.sha256 {
            evidence = try Self.settledEvidence(sha256: sha, in: db)
            verdict = try String.fetchOne(
                db.cachedStatement(sql: "SELECT verdict FROM sandbox_run WHERE sha256 = ? ORDER BY time DESC LIMIT 1"),
                arguments: [sha]
            ).map { $0.split(separator: "\n").joined(separator: " ") }
        }
        guard let event = OutboxEvents.enrichment(record, evidence: evidence, sandboxVerdict: verdict) else { return }
        try enqueue(event, in: db)
    }

    /// An action's event, with the path and hash of the file it concerns.
    func actionRecorded(_ action: ActionRecord, in db: Database) throws {
        var file: (path: PathBytes, sha256: String?)?
        if let id = action.fileId,
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT path, sha256 FROM file WHERE id = ?"), arguments: [id])
        {
            file = (PathBytes(Array(row["path"] as Data)), row["sha256"])
        }
        try enqueue(OutboxEvents.action(action, file: file), in: db)
    }
}

/// One queued event, as the forwarder reads it.
public struct OutboxEntry: Sendable, Hashable {
    public var seq: Int64
    public var id: String
    public var type: FleetEventType
    public var priority: FalcoPriority
    public var body: String
}

extension EvidenceDatabase {
    /// Turns the outbox on for this process's writes (nil: off). The agent also calls
    /// `prepareOutbox` once before its writer starts.
    public func setOutbox(_ outbox: Outbox?) { outboxSlot.withLock { $0 = outbox } }

    public var outbox: Outbox? { outboxSlot.withLock { $0 } }

    /// At the agent's start: a cursor for each configured output (a new one starts at the oldest
    /// event held), none for the others, and the events of files whose evidence copy a stopped
    /// agent never made, with what is known of it now.
    public func prepareOutbox() throws {
        guard let outbox else { return }
        try dbWriter.write { db in
            let names = outbox.outputs
            let placeholders = Array(repeating: "?", count: names.count).joined(separator: ",")
            try db.execute(
                sql: "DELETE FROM outbox_cursor WHERE output NOT IN (\(placeholders))",
                arguments: StatementArguments(names))
            for name in names {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO outbox_cursor (output, seq) VALUES (?, COALESCE(
                            (SELECT min(seq) - 1 FROM outbox),
                            (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))
                        """, arguments: [name])
            }
            let waiting = try Row.fetchAll(db, sql: "SELECT DISTINCT sha256 FROM outbox_awaiting_evidence")
            for row in waiting {
                let sha: String = row["sha256"]
                let evidence =
                    try Outbox.settledEvidence(sha256: sha, in: db)
                    ?? .missing("none: the agent stopped before the copy was made")
                try outbox.evidenceSettled(sha256: sha, evidence, in: db)
            }
        }
    }

    /// Up to `limit` events after `seq`, oldest first.
    public func outboxEntries(after seq: Int64, limit: Int) throws -> [OutboxEntry] {
        try dbWriter.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT seq, id, type, priority, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
                arguments: [seq, limit]
            ).map { row in
                OutboxEntry(
                    seq: row["seq"], id: row["id"], type: FleetEventType(rawValue: row["type"]) ?? .test,
                    priority: FalcoPriority(rawValue: Int(row["priority"] as Int64)) ?? .debug, body: row["body"])
            }
        }
    }

    /// Each output's cursor: the last event it was sent (or skipped by its filter).
    public func outboxCursors() throws -> [String: Int64] {
        try dbWriter.read { db in
            Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT output, seq FROM outbox_cursor").map {
                    ($0["output"] as String, $0["seq"] as Int64)
                })
        }
    }

    /// The first and last event held (nil, nil when empty), and the last number ever given.
    public func outboxBounds() throws -> (head: Int64?, tail: Int64?, lastGiven: Int64) {
        try dbWriter.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT min(seq) AS head, max(seq) AS tail FROM outbox")
            let given = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") ?? 0
            return (row?["head"], row?["tail"], given)
        }
    }

    static func outboxDelivered(output: String, through seq: Int64, in db: Database) throws {
        try db.cachedStatement(sql: "UPDATE outbox_cursor SET seq = max(seq, ?) WHERE output = ?")
            .execute(arguments: [seq, output])
        try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= (SELECT min(seq) FROM outbox_cursor)").execute()
    }
}
