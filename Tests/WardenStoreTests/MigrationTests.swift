// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import Synchronization
import Testing
import WardenCore

@testable import WardenStore

/// Schema changes carry what a state directory already holds.
@Suite struct MigrationTests {
    /// Commands started at once on a fresh state directory (parallel `shmwarden sandbox` runs)
    /// each open and migrate the database: they must take turns, not fail with "table already
    /// exists" and lose what they ran. Separate connections race as separate processes do.
    @Test func connectionsOpeningAFreshDatabaseAtOnceAllSucceed() throws {
        for round in 0..<5 {
            let directory = NSTemporaryDirectory() + "shmwarden-migrate-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/shmwarden.sqlite"
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                do {
                    let database = try EvidenceDatabase(path: path, connections: .single)
                    try database.close()
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round): \(failures.withLock { $0 })")
            let migrated = try EvidenceDatabase(path: path, connections: .single)
            #expect(try migrated.appliedMigrations() == EvidenceDatabase.migrator.migrations)
        }
    }

    /// v9 re-keys correlations by the alert's sequence: stored alerts keep their correlations,
    /// their order, and new ones come after them.
    @Test func alertsAndCorrelationsSurviveTheSequenceMigration() throws {
        let temporary = try TemporaryDatabase()
        temporary.remove()
        try FileManager.default.createDirectory(atPath: temporary.directory, withIntermediateDirectories: true)
        defer { temporary.remove() }
        let path = temporary.directory + "/old.sqlite"
        do {
            let queue = try DatabaseQueue(path: path)
            try EvidenceDatabase.migrator.migrate(queue, upTo: "v8-file-inode")
            try queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO file (id, path, fileType, device, inode, size, mode, uid, gid, linkCount, modified,
                            changed, firstSeen, lastSeen, state, kind, reasons, hashStatus)
                        VALUES (7, x'2f6465762f73686d2f78', 'regular', 1, 2, 3, 493, 0, 0, 1, 1, 1, 1, 1, 'present', 'elf',
                            'elf', 'ok');
                        """)
                for (index, id) in ["b-second-by-id", "a-first-by-id"].enumerated() {
                    let raw = #"{"rule":"r\#(index)","priority":"Warning","time":"2026-11-29T12:00:0\#(index)Z"}"#
                    try db.execute(
                        sql: """
                            INSERT INTO alert (id, rule, priority, time, internal, raw, receivedAt)
                            VALUES (?, ?, 4, ?, 0, ?, ?)
                            """, arguments: [id, "r\(index)", index, raw, index])
                }
                try db.execute(
                    sql:
                        "INSERT INTO correlation (alertId, fileId, path, matchedBy, confidence) VALUES (?, 7, x'2f', 'proc.exepath', 0.95)",
                    arguments: ["a-first-by-id"])
            }
        }
        let database = try EvidenceDatabase(path: path)
        #expect(try database.appliedMigrations().last == "v15-yara")
        #expect(try database.alerts().map(\.id) == ["b-second-by-id", "a-first-by-id"], "stored order kept")
        let migrated = try #require(try database.alert(id: "a-first-by-id"))
        #expect(migrated.correlations.map(\.fileID) == [7] && migrated.correlations.first?.matchedBy == "proc.exepath")
        #expect(try database.alert(id: "b-second-by-id")?.correlations.isEmpty == true)

        let json = #"{"rule":"new","priority":"Warning","time":"2026-11-29T12:00:09Z"}"#
        let record = AlertRecord(
            id: "c-new", alert: try FalcoAlert.decode(Data(json.utf8)), receivedAt: Timestamp(nanosecondsSinceEpoch: 9),
            correlations: [
                Correlation(
                    fileID: 7, sha256: nil, path: PathBytes("/dev/shm/x"), matchedBy: "fd.name", confidence: 0.9)
            ])
        try database.apply([.alert(record)])
        #expect(try database.alerts().map(\.id) == ["b-second-by-id", "a-first-by-id", "c-new"])
        #expect(try database.alert(id: "c-new")?.correlations.map(\.matchedBy) == ["fd.name"])
        #expect(try database.alert(id: "a-first-by-id")?.correlations.count == 1, "not mixed up with the new one")
    }

    /// v10 drops the index on alert time alone: what read it (retention) uses the
    /// (internal, time) index, never a scan of every alert.
    @Test func expiredAlertsAreFoundThroughAnIndex() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let (indexes, plan) = try temporary.database.dbWriter.read { db in
            (
                try String.fetchAll(
                    db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alert'"),
                try Row.fetchAll(
                    db, sql: "EXPLAIN QUERY PLAN SELECT seq FROM alert WHERE \(EvidenceDatabase.expiredAlerts)",
                    arguments: [1, 1]
                )
                .map { $0["detail"] as String }
            )
        }
        #expect(!indexes.contains("alert_time") && indexes.contains("alert_internal_time"))
        #expect(plan.contains { $0.contains("USING INDEX alert_internal_time") }, "\(plan)")
    }
}
