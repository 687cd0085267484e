// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import Synchronization
import WardenCore

/// The queue of events for the outputs, in the database: each event is a row inserted in the
/// transaction of the record that causes it, so an event exists exactly when its record does.
///
/// A row names its record (`ref`: a file, exec, action or alert row; `note`: a sandbox run's id)
/// with the event's type, priority and time; the JSON is made from the record when the forwarder
/// reads the row (`outboxEntries`), off the store writer's thread.
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
    /// The oldest row as last read: rows only ever leave from the head, so the real head is at
    /// or past it, and it is read again only when it says the table may be over its limit. (A
    /// batch rolled back after a read can leave it past the real head; the table may then hold
    /// more than `limit` rows until the next read, at most `limit` inserts later.)
    private let knownHead = Mutex<Int64?>(nil)

    public init(hostname: String, limit: Int, outputs: [String]) {
        self.hostname = hostname
        self.limit = max(1, limit)
        self.outputs = outputs
    }

    /// Events queued and dropped (full) since the agent started.
    public var queuedCount: Int { counters.withLock { $0.queued } }
    public var droppedCount: Int { counters.withLock { $0.dropped } }

    /// Inserts one event's row; if the table then holds more than `limit`, deletes the oldest.
    func enqueue(
        _ kind: OutboxEvents.Kind, time: Timestamp, ref: Int64?, note: String? = nil, in db: Database
    ) throws {
        let insert = StatementBinder(
            try db.cachedStatement(sql: "INSERT INTO outbox (type, priority, time, ref, note) VALUES (?, ?, ?, ?, ?)"))
        insert.bind(1, kind.type.rawValue)
        insert.bind(2, Int64(kind.priority.rawValue))
        insert.bind(3, time.nanosecondsSinceEpoch)
        insert.bind(4, ref)
        insert.bind(5, note)
        try insert.execute(in: db)
        let seq = db.lastInsertedRowID
        // Rows leave only from the head and AUTOINCREMENT never reuses a number, so the rows
        // held are exactly head…seq.
        var dropped = 0
        if seq - (knownHead.withLock { $0 } ?? 0) + 1 > Int64(limit) {
            let head =
                try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM outbox ORDER BY seq LIMIT 1")) ?? seq
            if seq - head + 1 > Int64(limit) {
                try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= ?").execute(arguments: [
                    seq - Int64(limit)
                ])
                dropped = db.changesCount
            }
            knownHead.withLock { $0 = max(head, seq - Int64(limit) + 1) }
        }
        counters.withLock {
            $0.queued += 1
            $0.dropped += dropped
        }
    }

    /// After a file record's insert (`id` set): its event now when its evidence is settled, or
    /// once the evidence copy is made or refused (`evidenceSettled`).
    func fileRecorded(_ file: FileRecord, in db: Database) throws {
        guard let id = file.id else { return }
        if let sha = file.sha256, file.hashStatus == .ok, try Self.settledEvidence(sha256: sha, in: db) == nil {
            try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO outbox_awaiting_evidence (fileId, sha256) VALUES (?, ?)"
            ).execute(arguments: [id, sha])
            return
        }
        try enqueue(OutboxEvents.Kind.file(capture: file.capture), time: file.firstSeen, ref: id, in: db)
    }

    /// The evidence copy of `sha256` is made (or refused): the events of the files waiting for it.
    func evidenceSettled(sha256: String, in db: Database) throws {
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT id, firstSeen, capture FROM file
                    WHERE id IN (SELECT fileId FROM outbox_awaiting_evidence WHERE sha256 = ?) ORDER BY id
                    """),
            arguments: [sha256])
        guard !rows.isEmpty else { return }
        for row in rows {
            let capture = (row["capture"] as String?).flatMap(EvidenceDatabase.decodeCapture)
            try enqueue(
                OutboxEvents.Kind.file(capture: capture), time: Timestamp(nanosecondsSinceEpoch: row["firstSeen"]),
                ref: row["id"], in: db)
        }
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
}

/// One queued event, as the forwarder reads it.
public struct OutboxEntry: Sendable, Hashable {
    public var seq: Int64
    public var id: String
    public var type: FleetEventType
    public var priority: FalcoPriority
    /// The event's JSON; nil when its record is gone (pruned by retention before delivery).
    public var body: String?
}

extension EvidenceDatabase {
    /// Turns the outbox on for this process's writes (nil: off). The agent also calls
    /// `prepareOutbox` once before its writer starts.
    public func setOutbox(_ outbox: Outbox?) { outboxSlot.withLock { $0 = outbox } }

    public var outbox: Outbox? { outboxSlot.withLock { $0 } }

    /// At the agent's start: a cursor for each configured output (a new one starts at the oldest
    /// event held), none for the others, and the events of files whose evidence copy a stopped
    /// agent never made.
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
            for sha in try String.fetchAll(db, sql: "SELECT DISTINCT sha256 FROM outbox_awaiting_evidence") {
                try outbox.evidenceSettled(sha256: sha, in: db)
            }
        }
    }

    /// Up to `limit` events after `seq`, oldest first, each made from its record now (its JSON
    /// naming `hostname`) when `wanted` says it goes anywhere; the others come without a body.
    public func outboxEntries(
        after seq: Int64, limit: Int, hostname: String,
        wanted: (FleetEventType, FalcoPriority) -> Bool = { _, _ in true }
    ) throws -> [OutboxEntry] {
        try dbWriter.read { db in
            let instance = try Self.outboxInstance(db)
            return try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT seq, type, priority, time, ref, note FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
                arguments: [seq, limit]
            ).map { row in
                let seq: Int64 = row["seq"]
                let type = FleetEventType(rawValue: row["type"]) ?? .test
                let priority = FalcoPriority(rawValue: Int(row["priority"] as Int64)) ?? .debug
                let id = OutboxEvents.eventID(instance: instance, seq: seq)
                guard wanted(type, priority) else {
                    return OutboxEntry(seq: seq, id: id, type: type, priority: priority, body: nil)
                }
                let event = try Self.outboxEvent(id: id, type: type, ref: row["ref"], note: row["note"], in: db)
                return OutboxEntry(
                    seq: seq, id: id, type: type, priority: priority, body: event?.json(hostname: hostname))
            }
        }
    }

    /// The event a row stands for, from its record (nil when the record is gone).
    static func outboxEvent(id: String, type: FleetEventType, ref: Int64?, note: String?, in db: Database) throws
        -> FleetEvent?
    {
        switch type {
        case .executable, .fileless:
            guard let ref,
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT \(fileColumns) FROM file WHERE id = ?"), arguments: [ref])
            else { return nil }
            let file = fileRecord(row)
            let evidence: OutboxEvents.Evidence
            if let sha = file.sha256, file.hashStatus == .ok {
                evidence =
                    try Outbox.settledEvidence(sha256: sha, in: db)
                    ?? .missing("none: the agent stopped before the copy was made")
            } else {
                evidence = .missing("not hashed (\(file.hashStatus.rawValue))")
            }
            return OutboxEvents.file(file, evidence: evidence, id: id)
        case .guard:
            guard let ref,
                let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM exec WHERE id = ?"), arguments: [ref])
            else { return nil }
            return OutboxEvents.exec(execRecord(row), id: id)
        case .action:
            guard let ref,
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM action WHERE id = ?"), arguments: [ref])
            else { return nil }
            let action = actionRecord(row)
            var file: (path: PathBytes, sha256: String?)?
            if let fileID = action.fileId,
                let fileRow = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT path, sha256 FROM file WHERE id = ?"), arguments: [fileID])
            {
                file = (PathBytes(Array(fileRow["path"] as Data)), fileRow["sha256"])
            }
            return OutboxEvents.action(action, file: file, id: id)
        case .sandbox:
            guard let note,
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM sandbox_run WHERE id = ?"), arguments: [note])
            else { return nil }
            return OutboxEvents.sandboxRun(sandboxRun(row), id: id)
        case .alert:
            guard let ref,
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM alert WHERE seq = ?"), arguments: [ref]),
                let record = try alertRecord(row, in: db), let best = record.correlations.first
            else { return nil }
            var evidence: OutboxEvents.Evidence?
            var verdict: String?
            if let sha = best.sha256 {
                evidence = try Outbox.settledEvidence(sha256: sha, in: db)
                verdict = try String.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT verdict FROM sandbox_run WHERE sha256 = ? ORDER BY time DESC LIMIT 1"),
                    arguments: [sha]
                ).map { $0.split(separator: "\n").joined(separator: " ") }
            }
            return OutboxEvents.enrichment(record, evidence: evidence, sandboxVerdict: verdict, id: id)
        case .yara:
            guard let note,
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM yara_scan WHERE sha256 = ?"), arguments: [note])
            else { return nil }
            let file = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, path FROM file WHERE sha256 = ? ORDER BY id DESC LIMIT 1"),
                arguments: [note]
            ).map { (id: $0["id"] as Int64, path: PathBytes(Array($0["path"] as Data))) }
            return OutboxEvents.yara(yaraVerdict(row), file: file, id: id)
        case .outbox, .test:
            return nil
        }
    }

    /// This database's random outbox instance: with an event's number, its id.
    static func outboxInstance(_ db: Database) throws -> UInt64 {
        UInt64(try String.fetchOne(db, sql: "SELECT id FROM outbox_instance") ?? "0", radix: 16) ?? 0
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

    /// The first and last event held (nil, nil when empty).
    public func outboxBounds() throws -> (head: Int64?, tail: Int64?) {
        try dbWriter.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT min(seq) AS head, max(seq) AS tail FROM outbox")
            return (row?["head"], row?["tail"])
        }
    }

    static func outboxDelivered(output: String, through seq: Int64, in db: Database) throws {
        try db.cachedStatement(sql: "UPDATE outbox_cursor SET seq = max(seq, ?) WHERE output = ?")
            .execute(arguments: [seq, output])
        try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= (SELECT min(seq) FROM outbox_cursor)").execute()
    }
}
