// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import WardenCore

extension EvidenceDatabase {
    /// Applies `commands` in order, in one transaction.
    ///
    /// - Returns: the paths of the file records written, in order (the sensor's commit hook).
    @discardableResult
    public func apply(_ commands: [StoreCommand]) throws -> [PathBytes] { try applyBatch(commands).written }

    /// Applies `commands` in order, in one transaction, and says what each alert command found.
    /// Correlation lookups reuse what `memo` remembers (the store writer keeps one).
    ///
    /// A batch with a command that must survive a power loss once acknowledged (an alert, an
    /// action, a sandbox run) commits at `synchronous=FULL`: SQLite syncs the WAL inside the
    /// commit. With `syncing: false` the caller syncs the WAL itself before it tells anyone (the
    /// store writer's `WALSyncer`), and `AppliedBatch.needsSync` says whether it must. File
    /// records keep NORMAL, where a commit survives a crash of the process but not of the
    /// machine.
    public func applyBatch(_ commands: [StoreCommand], memo: LookupMemo? = nil, syncing: Bool = true) throws
        -> AppliedBatch
    {
        let durable = commands.contains {
            switch $0 {
            case .alert, .correlateAndStore, .action, .quarantined, .sandboxRun: true
            default: false
            }
        }
        let full = durable && syncing
        let outbox = self.outbox
        return try dbWriter.writeWithoutTransaction { db in
            // Cached: parsing the two pragmas anew for every group commit cost more than the
            // inserts of a small group.
            if full { try db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute() }
            defer { if full { try? db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute() } }
            var applied = AppliedBatch()
            try db.inTransaction {
                // Inside the transaction: the version read is that of the snapshot the lookups see.
                try memo?.beginBatch(db)
                applied = try Self.apply(commands, in: db, memo: memo, outbox: outbox)
                return .commit
            }
            applied.needsSync = durable && !syncing
            return applied
        }
    }

    /// With an `outbox`, each record that makes an event queues it in the same transaction.
    static func apply(_ commands: [StoreCommand], in db: Database, memo: LookupMemo? = nil, outbox: Outbox? = nil)
        throws -> AppliedBatch
    {
        var applied = AppliedBatch()
        for (index, command) in commands.enumerated() {
            switch command {
            case .record(let file, let blob):
                if let blob {
                    try Self.upsert(blob, in: db)
                } else if let sha = file.sha256 {
                    // Keep the foreign key whole even when the caller had no blob facts.
                    try Self.upsert(
                        BlobRecord(
                            sha256: sha, size: file.size, kind: file.kind, elf: file.elf, script: file.script,
                            evidencePath: file.evidencePath, firstSeen: file.firstSeen),
                        in: db)
                }
                let inserted = try Self.upsert(file, in: db)
                if let outbox, let inserted, file.isExecutable {
                    var recorded = file
                    recorded.id = inserted
                    try outbox.fileRecorded(recorded, in: db)
                }
                applied.written.append(file.path)
            case .markDeleted(let path, let time):
                try db.cachedStatement(
                    sql: "UPDATE file SET state = 'deleted', deletedAt = ? WHERE path = ? AND state = 'present'"
                ).execute(arguments: [time.nanosecondsSinceEpoch, Data(path.bytes)])
            case .markSubtreeDeleted(let root, let time):
                let (low, high) = Self.subtreeRange(root)
                try db.cachedStatement(
                    sql: """
                        UPDATE file SET state = 'deleted', deletedAt = ?
                        WHERE state = 'present' AND path > ? AND path < ?
                        """
                ).execute(arguments: [time.nanosecondsSinceEpoch, Data(low), Data(high)])
            case .reconcile(let root, let present, let time):
                try Self.reconcile(root: root, present: present, time: time, in: db)
            case .evidenceStored(let sha256, let path):
                try db.cachedStatement(
                    sql:
                        "UPDATE blob SET evidencePath = ?, evidenceSkipped = NULL WHERE sha256 = ? AND evidencePath IS NULL"
                ).execute(arguments: [path, sha256])
                try outbox?.evidenceSettled(sha256: sha256, in: db)
            case .yaraVerdict(let verdict):
                try Self.upsert(verdict, outbox: outbox, in: db)
            case .evidenceSkipped(let sha256, let reason):
                try db.cachedStatement(
                    sql: "UPDATE blob SET evidenceSkipped = ? WHERE sha256 = ? AND evidencePath IS NULL"
                ).execute(arguments: [reason, sha256])
                try outbox?.evidenceSettled(sha256: sha256, in: db)
            case .alert(let record):
                if let seq = try insert(record, in: db), let outbox, !record.correlations.isEmpty {
                    try outbox.enqueue(
                        .alert(rule: record.alert.rule, priority: record.alert.priority), time: record.alert.time,
                        ref: seq, in: db)
                }
            case .correlateAndStore(var record, let tmpfsMounts):
                // Correlated even when it turns out to be a repeat: the answer to a repeated
                // delivery reports what the alert is about, like the first one did.
                let result = try AlertCorrelator.correlate(
                    record.alert, tmpfsMounts: tmpfsMounts, lookup: SnapshotLookup(db: db, memo: memo),
                    processAtArrival: record.processAtArrival)
                record.correlations = result.correlations
                record.noEvidenceReason = result.noEvidenceReason
                let stored = try insert(record, in: db)
                if let seq = stored, let outbox, !record.correlations.isEmpty {
                    try outbox.enqueue(
                        .alert(rule: record.alert.rule, priority: record.alert.priority), time: record.alert.time,
                        ref: seq, in: db)
                }
                applied.alerts[index] = StoredAlert(record: record, duplicate: stored == nil)
            case .correlations(let alertID, let result):
                try replaceCorrelations(alertID: alertID, result, in: db)
                if let outbox, !result.correlations.isEmpty,
                    let row = try Row.fetchOne(
                        db.cachedStatement(sql: "SELECT seq, priority, time FROM alert WHERE id = ?"),
                        arguments: [alertID]),
                    let priority = FalcoPriority(rawValue: Int(row["priority"] as Int64))
                {
                    try outbox.enqueue(
                        .alert(priority: priority), time: Timestamp(nanosecondsSinceEpoch: row["time"]),
                        ref: row["seq"],
                        in: db)
                }
            case .sensorEvent(let event):
                try db.cachedStatement(
                    sql: "INSERT INTO sensor_event (time, kind, mountPoint, detail) VALUES (?, ?, ?, ?)"
                ).execute(arguments: [
                    event.time.nanosecondsSinceEpoch, event.kind.rawValue, event.mountPoint.map { Data($0.bytes) },
                    event.detail,
                ])
            case .action(let action):
                try db.cachedStatement(
                    sql: """
                        INSERT INTO action (time, alertId, fileId, rule, action, mode, outcome, target, detail, errno)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [
                    action.time.nanosecondsSinceEpoch, action.alertId, action.fileId, action.rule, action.action,
                    action.mode.rawValue, action.outcome.rawValue, action.target, action.detail, action.errno,
                ])
                try outbox?.enqueue(.action(action), time: action.time, ref: db.lastInsertedRowID, in: db)
            case .exec(let exec):
                try db.cachedStatement(
                    sql: """
                        INSERT INTO exec (time, pid, ppid, uid, path, sha256, device, inode, verdict, wouldBe, mode, rule,
                            reason, cached, held, decisionNanoseconds)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [
                    exec.time.nanosecondsSinceEpoch, exec.pid, exec.ppid, exec.uid.map { Int64($0) },
                    Data(exec.path.bytes),
                    exec.sha256, Int64(bitPattern: exec.device), Int64(bitPattern: exec.inode), exec.verdict.rawValue,
                    exec.wouldBe.rawValue, exec.mode.rawValue, exec.rule, exec.reason, exec.cached,
                    exec.held, exec.decisionNanoseconds,
                ])
                if let outbox, let kind = OutboxEvents.Kind.exec(exec) {
                    try outbox.enqueue(kind, time: exec.time, ref: db.lastInsertedRowID, in: db)
                }
            case .sandboxRun(let run):
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO sandbox_run (id, time, sha256, fileId, alertId, verdict, report)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        run.id, run.time.nanosecondsSinceEpoch, run.sha256, run.fileId, run.alertId,
                        run.verdict.joined(separator: "\n"), run.reportJSON,
                    ])
                try outbox?.enqueue(.sandboxRun(run), time: run.time, ref: nil, note: run.id, in: db)
            case .quarantined(let path, let device, let inode):
                try db.cachedStatement(
                    sql: "UPDATE file SET state = 'quarantined' WHERE path = ? AND device = ? AND inode = ?"
                ).execute(arguments: [Data(path.bytes), Int64(bitPattern: device), Int64(bitPattern: inode)])
            case .outboxDelivered(let output, let seq):
                try outboxDelivered(output: output, through: seq, in: db)
            }
        }
        return applied
    }

    /// Inserts `record` unless an alert with its id is stored: returns its row's `seq` when it was
    /// inserted.
    @discardableResult
    static func insert(_ record: AlertRecord, in db: Database) throws -> Int64? {
        let insert = StatementBinder(
            try db.cachedStatement(
                sql: """
                    INSERT INTO alert (id, rule, priority, time, hostname, source, internal, raw, receivedAt,
                        noEvidenceReason, authenticated, sender)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING
                    """))
        insert.bind(1, record.id)
        insert.bind(2, record.alert.rule)
        insert.bind(3, Int64(record.alert.priority.rawValue))
        insert.bind(4, record.alert.time.nanosecondsSinceEpoch)
        insert.bind(5, record.alert.hostname)
        insert.bind(6, record.alert.source)
        insert.bind(7, Int64(record.alert.isInternal ? 1 : 0))
        insert.bind(8, record.alert.raw)
        insert.bind(9, record.receivedAt.nanosecondsSinceEpoch)
        insert.bind(10, record.noEvidenceReason?.rawValue)
        insert.bind(11, Int64(record.sender.authenticated ? 1 : 0))
        insert.bind(12, record.sender.via)
        try insert.execute(in: db)
        guard db.changesCount > 0 else { return nil }
        let seq = db.lastInsertedRowID
        try insertCorrelations(alertSeq: seq, record.correlations, in: db)
        return seq
    }

    static func replaceCorrelations(alertID: String, _ result: CorrelationResult, in db: Database) throws {
        guard
            let seq = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT seq FROM alert WHERE id = ?"), arguments: [alertID])
        else { return }
        try db.execute(sql: "DELETE FROM correlation WHERE alertSeq = ?", arguments: [seq])
        try db.execute(
            sql: "UPDATE alert SET noEvidenceReason = ? WHERE seq = ?",
            arguments: [result.noEvidenceReason?.rawValue, seq])
        try insertCorrelations(alertSeq: seq, result.correlations, in: db)
    }

    static func insertCorrelations(alertSeq: Int64, _ correlations: [Correlation], in db: Database) throws {
        for correlation in correlations {
            let insert = StatementBinder(
                try db.cachedStatement(
                    sql: """
                        INSERT OR REPLACE INTO correlation (alertSeq, fileId, sha256, path, matchedBy, confidence)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """))
            insert.bind(1, alertSeq)
            insert.bind(2, correlation.fileID)
            insert.bind(3, correlation.sha256)
            insert.bind(4, bytes: correlation.path.bytes)
            insert.bind(5, correlation.matchedBy)
            insert.bind(6, correlation.confidence)
            try insert.execute(in: db)
        }
    }

    /// The byte range of paths strictly below `root`: `root/` up to (not including) `root0`
    /// (`0` is the byte after `/`).
    static func subtreeRange(_ root: PathBytes) -> ([UInt8], [UInt8]) {
        var base = root.bytes
        if base.last == UInt8(ascii: "/") { base.removeLast() }
        return (base + [UInt8(ascii: "/")], base + [UInt8(ascii: "/") + 1])
    }

    static func upsert(_ blob: BlobRecord, in db: Database) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let elf = try blob.elf.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        let script = try blob.script.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try db.cachedStatement(
            sql: """
                INSERT INTO blob (sha256, size, kind, elf, script, evidencePath, firstSeen)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(sha256) DO UPDATE SET evidencePath = COALESCE(blob.evidencePath, excluded.evidencePath)
                """
        ).execute(arguments: [
            blob.sha256, blob.size, blob.kind.rawValue, elf, script, blob.evidencePath,
            blob.firstSeen.nanosecondsSinceEpoch,
        ])
    }

    /// Records one observation. The same (path, device, inode, content) as a present row updates
    /// that row; anything else at that path that was present is now gone from it (`deleted`) and
    /// the new observation gets a row of its own.
    ///
    /// - Returns: the new row's id; nil when an existing row was updated.
    @discardableResult
    static func upsert(_ file: FileRecord, in db: Database) throws -> Int64? {
        let pathData = Data(file.path.bytes)
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT id, device, inode, sha256, hashStatus, size FROM file WHERE path = ? AND state = 'present'"
            ),
            arguments: [pathData])
        var sameID: Int64?
        for row in rows {
            let id: Int64 = row["id"]
            let device = UInt64(bitPattern: row["device"])
            let inode = UInt64(bitPattern: row["inode"])
            let sha: String? = row["sha256"]
            let status: String = row["hashStatus"]
            let size: Int64 = row["size"]
            let same =
                device == file.device && inode == file.inode && sha == file.sha256
                && status == file.hashStatus.rawValue && (file.sha256 != nil || size == file.size)
            if same && sameID == nil {
                sameID = id
            } else if file.state == .present {
                // Only a file that is at this path now displaces what was recorded there; an
                // observation of an already-unlinked inode (captured from a pinned descriptor)
                // says nothing about the path's current content.
                try db.cachedStatement(sql: "UPDATE file SET state = 'deleted', deletedAt = ? WHERE id = ?")
                    .execute(arguments: [file.lastSeen.nanosecondsSinceEpoch, id])
            }
        }
        if let sameID {
            try db.cachedStatement(
                sql: """
                    UPDATE file SET size = ?, mode = ?, uid = ?, gid = ?, linkCount = ?, modified = ?, changed = ?,
                        lastSeen = ?, kind = ?, reasons = ?
                    WHERE id = ?
                    """
            ).execute(arguments: [
                file.size, Int64(file.mode), Int64(file.uid), Int64(file.gid), Int64(bitPattern: file.linkCount),
                file.modified.nanosecondsSinceEpoch, file.changed.nanosecondsSinceEpoch,
                file.lastSeen.nanosecondsSinceEpoch, file.kind.rawValue, file.reasons.names.joined(separator: ","),
                sameID,
            ])
            return nil
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO file (path, mountPoint, fileType, device, inode, size, mode, uid, gid, linkCount,
                    modified, changed, firstSeen, lastSeen, deletedAt, state, kind, reasons, hashStatus, sha256,
                    linkTarget, capture, capturePid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            pathData, file.mountPoint.map { Data($0.bytes) }, file.fileType.rawValue,
            Int64(bitPattern: file.device), Int64(bitPattern: file.inode), file.size, Int64(file.mode),
            Int64(file.uid), Int64(file.gid), Int64(bitPattern: file.linkCount),
            file.modified.nanosecondsSinceEpoch, file.changed.nanosecondsSinceEpoch,
            file.firstSeen.nanosecondsSinceEpoch, file.lastSeen.nanosecondsSinceEpoch,
            file.deletedAt?.nanosecondsSinceEpoch, file.state.rawValue, file.kind.rawValue,
            file.reasons.names.joined(separator: ","), file.hashStatus.rawValue, file.sha256,
            file.linkTarget.map { Data($0.bytes) }, file.capture.flatMap(Self.captureJSON),
            file.capture.map { Int64($0.pid) },
        ])
        return db.lastInsertedRowID
    }

    static func captureJSON(_ capture: ProcessCapture) -> String? {
        (try? JSONEncoder().encode(capture)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func reconcile(root: PathBytes, present: Set<PathBytes>, time: Timestamp, in db: Database) throws {
        let (low, high) = subtreeRange(root)
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT id, path FROM file WHERE state = 'present' AND ((path > ? AND path < ?) OR path = ?)",
            arguments: [Data(low), Data(high), Data(root.bytes)])
        for row in rows {
            let path: Data = row["path"]
            if !present.contains(PathBytes(Array(path))) {
                try db.cachedStatement(sql: "UPDATE file SET state = 'deleted', deletedAt = ? WHERE id = ?")
                    .execute(arguments: [time.nanosecondsSinceEpoch, row["id"] as Int64])
            }
        }
    }
}
