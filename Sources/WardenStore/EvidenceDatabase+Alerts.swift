// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import WardenCore

extension EvidenceDatabase {
    /// Stored alerts, oldest first (the newest `limit` when set), with their correlations.
    public func alerts(limit: Int? = nil) throws -> [AlertRecord] {
        try dbWriter.read { db in
            let rows: [Row]
            if let limit {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM (SELECT * FROM alert ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                    arguments: [limit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM alert ORDER BY seq")
            }
            return try rows.compactMap { try Self.alertRecord($0, in: db) }
        }
    }

    /// One stored alert by id.
    public func alert(id: String) throws -> AlertRecord? {
        try dbWriter.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM alert WHERE id = ?", arguments: [id]).flatMap {
                try Self.alertRecord($0, in: db)
            }
        }
    }

    /// How many alerts are stored.
    public func alertCount() throws -> Int {
        try dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alert") ?? 0 }
    }

    static func alertRecord(_ row: Row, in db: Database) throws -> AlertRecord? {
        let raw: String = row["raw"]
        guard let alert = try? FalcoAlert.decode(Data(raw.utf8), acceptingAnyTime: true) else { return nil }
        let id: String = row["id"]
        let seq: Int64 = row["seq"]
        let correlations = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM correlation WHERE alertSeq = ? ORDER BY confidence DESC, fileId"),
            arguments: [seq]
        ).map { row in
            Correlation(
                fileID: row["fileId"], sha256: row["sha256"], path: PathBytes(Array(row["path"] as Data)),
                matchedBy: row["matchedBy"], confidence: row["confidence"])
        }
        var record = AlertRecord(
            id: id, alert: alert, receivedAt: Timestamp(nanosecondsSinceEpoch: row["receivedAt"]),
            correlations: correlations,
            noEvidenceReason: (row["noEvidenceReason"] as String?).flatMap(NoEvidenceReason.init(rawValue:)))
        if let via: String = row["sender"] {
            record.sender = AlertSender(authenticated: row["authenticated"] ?? true, via: via)
        }
        record.actions = try Self.actions(alertID: id, in: db)
        if !alert.isInternal {
            record.eventDropNearby =
                try Bool.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT EXISTS (SELECT 1 FROM alert WHERE internal = 1 AND rule LIKE '%event drop%'
                                AND time BETWEEN ? AND ? AND hostname IS ?)
                            """),
                    arguments: [
                        alert.time.adding(nanoseconds: -AlertRecord.eventDropWindow).nanosecondsSinceEpoch,
                        alert.time.adding(nanoseconds: AlertRecord.eventDropWindow).nanosecondsSinceEpoch,
                        alert.hostname,
                    ])
                ?? false
        }
        return record
    }
}

extension EvidenceDatabase {
    /// Audit rows, oldest first: for one alert, or the newest `limit` of all.
    public func actions(alertID: String? = nil, limit: Int? = nil) throws -> [ActionRecord] {
        try dbWriter.read { db in
            if let alertID { return try Self.actions(alertID: alertID, in: db) }
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM (SELECT * FROM action ORDER BY id DESC LIMIT ?) ORDER BY id",
                arguments: [limit ?? Int.max])
            return rows.map(Self.actionRecord)
        }
    }

    static func actions(alertID: String, in db: Database) throws -> [ActionRecord] {
        try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM action WHERE alertId = ? ORDER BY id"), arguments: [alertID]
        ).map(Self.actionRecord)
    }

    static func actionRecord(_ row: Row) -> ActionRecord {
        ActionRecord(
            id: row["id"], time: Timestamp(nanosecondsSinceEpoch: row["time"]), alertId: row["alertId"],
            fileId: row["fileId"], rule: row["rule"], action: row["action"],
            mode: PolicyMode(rawValue: row["mode"]) ?? .monitor,
            outcome: ActionRecord.Outcome(rawValue: row["outcome"]) ?? .failed, target: row["target"],
            detail: row["detail"], errno: row["errno"])
    }

    /// Exec records from the guard, oldest first (the newest `limit`).
    public func execs(limit: Int? = nil) throws -> [ExecRecord] {
        try dbWriter.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM (SELECT * FROM exec ORDER BY id DESC LIMIT ?) ORDER BY id",
                arguments: [limit ?? Int.max]
            ).map(Self.execRecord)
        }
    }

    static func execRecord(_ row: Row) -> ExecRecord {
        ExecRecord(
            id: row["id"], time: Timestamp(nanosecondsSinceEpoch: row["time"]), pid: row["pid"], ppid: row["ppid"],
            uid: (row["uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
            path: PathBytes(Array(row["path"] as Data)),
            sha256: row["sha256"], device: UInt64(bitPattern: row["device"]), inode: UInt64(bitPattern: row["inode"]),
            verdict: GuardDecision.Verdict(rawValue: row["verdict"]) ?? .allow,
            wouldBe: GuardDecision.Verdict(rawValue: row["wouldBe"]) ?? .allow,
            mode: GuardPolicy.Mode(rawValue: row["mode"]) ?? .monitor, rule: row["rule"], reason: row["reason"],
            cached: row["cached"], held: row["held"], decisionNanoseconds: row["decisionNanoseconds"])
    }

    /// Sandbox runs of these hashes, oldest first.
    public func sandboxRuns(sha256: [String]) throws -> [SandboxRunRecord] {
        guard !sha256.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: sha256.count).joined(separator: ",")
        return try dbWriter.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sandbox_run WHERE sha256 IN (\(marks)) ORDER BY time",
                arguments: StatementArguments(sha256)
            ).map(Self.sandboxRun)
        }
    }

    /// The latest `limit` sandbox runs, newest first.
    public func latestSandboxRuns(limit: Int) throws -> [SandboxRunRecord] {
        try dbWriter.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sandbox_run ORDER BY time DESC LIMIT ?", arguments: [limit])
                .map(Self.sandboxRun)
        }
    }

    /// The sandbox run with this id, if there is one.
    public func sandboxRun(id: String) throws -> SandboxRunRecord? {
        try dbWriter.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sandbox_run WHERE id = ?", arguments: [id]).map(Self.sandboxRun)
        }
    }

    static func sandboxRun(_ row: Row) -> SandboxRunRecord {
        SandboxRunRecord(
            id: row["id"], time: Timestamp(nanosecondsSinceEpoch: row["time"]), sha256: row["sha256"],
            fileId: row["fileId"], alertId: row["alertId"],
            verdict: (row["verdict"] as String).split(separator: "\n").map(String.init),
            reportJSON: row["report"])
    }

    /// The file observations with these row ids (those that exist), in id order.
    public func files(ids: [Int64]) throws -> [FileRecord] {
        guard !ids.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        return try dbWriter.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.fileWithBlobColumns)
                    FROM file LEFT JOIN blob ON blob.sha256 = file.sha256 WHERE file.id IN (\(marks)) ORDER BY file.id
                    """, arguments: StatementArguments(ids))
        }.map { Self.fileRecord($0) }
    }
}

extension EvidenceDatabase {
    /// Lookups in one read transaction: they share one snapshot and one WAL read lock (worth it
    /// for a run of lookups, such as a pass over alerts waiting for their files).
    public func inReadTransaction<T>(_ body: (SnapshotLookup) throws -> T) throws -> T {
        try dbWriter.read { db in try body(SnapshotLookup(db: db)) }
    }
}

/// `EvidenceLookup` on one connection: a read transaction (`EvidenceDatabase.inReadTransaction`) or
/// the store writer's own transaction (with its `LookupMemo`).
public struct SnapshotLookup: EvidenceLookup {
    let db: Database
    var memo: LookupMemo?

    init(db: Database, memo: LookupMemo? = nil) {
        self.db = db
        self.memo = memo
    }

    public func files(atPath path: PathBytes) throws -> [FileRecord] {
        guard let memo else { return try fileRecords(Self.filesAtPath, [Data(path.bytes)]) }
        return try memo.files(atPath: path) { try fileRecords(Self.filesAtPath, [Data(path.bytes)]) }
    }

    public func files(inode: UInt64) throws -> [FileRecord] {
        let arguments: StatementArguments = [Int64(bitPattern: inode)]
        guard let memo else { return try fileRecords(Self.filesWithInode, arguments) }
        return try memo.files(inode: inode) { try fileRecords(Self.filesWithInode, arguments) }
    }

    public func files(sha256: String) throws -> [FileRecord] {
        guard let memo else { return try fileRecords(Self.filesWithSHA256, [sha256]) }
        return try memo.files(sha256: sha256) { try fileRecords(Self.filesWithSHA256, [sha256]) }
    }

    public func execs(pid: Int32, from: Timestamp, to: Timestamp) throws -> [ExecFact] {
        if let memo, memo.knowsNoExecs(pid: pid) { return [] }
        let statement = try db.cachedStatement(
            sql: "SELECT path, device, inode, sha256 FROM exec WHERE pid = ? AND time BETWEEN ? AND ?")
        let arguments: StatementArguments = [pid, from.nanosecondsSinceEpoch, to.nanosecondsSinceEpoch]
        let found = try Array(
            ColumnCursor(statement, arguments: arguments) { columns in
                ExecFact(
                    path: PathBytes(columns.bytes(0)), device: UInt64(bitPattern: columns.int64(1)),
                    inode: UInt64(bitPattern: columns.int64(2)), sha256: columns.optionalText(3))
            })
        if let memo, found.isEmpty,
            try
                !(Bool.fetchOne(
                    db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM exec WHERE pid = ?)"), arguments: [pid])
                ?? false)
        {
            memo.noteNoExecs(pid: pid)
        }
        return found
    }

    public func capturedFiles(pid: Int32) throws -> [FileRecord] {
        try fileRecords(Self.filesCapturedFrom, [pid])
    }

    /// How SQLite will run the lookup `condition` over file rows (`EXPLAIN QUERY PLAN` details):
    /// tests check that correlation lookups use an index.
    public func filePlan(where condition: String) throws -> [String] {
        try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT id FROM file WHERE \(condition)").map { $0["detail"] }
    }

    /// Unordered: an ORDER BY that no index serves made SQLite build a sorter for every lookup,
    /// most of them for one row or none; `fileRecords` orders the few rows by id itself.
    private static func fileLookup(where condition: String) -> String {
        "SELECT \(EvidenceDatabase.fileColumns) FROM file WHERE \(condition)"
    }
    // Built once: the statement cache is keyed by the SQL text.
    private static let filesAtPath = fileLookup(where: "path = ?")
    private static let filesCapturedFrom = fileLookup(where: "capturePid = ?")
    private static let filesWithInode = fileLookup(where: "inode = ?")
    private static let filesWithSHA256 = fileLookup(where: "sha256 = ?")

    /// The file rows alone: correlation needs no blob facts, and decoding their JSON for every
    /// alert was a large share of the intake's time.
    private func fileRecords(_ sql: String, _ arguments: StatementArguments) throws -> [FileRecord] {
        var records = try Array(
            ColumnCursor(db.cachedStatement(sql: sql), arguments: arguments, read: EvidenceDatabase.fileRecord))
        if records.count > 1 { records.sort { ($0.id ?? 0) < ($1.id ?? 0) } }
        return records
    }
}
