// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import WardenCore

/// What a prune removed (or, in a dry run, would remove).
public struct PruneReport: Sendable, Encodable, Equatable {
    public var alerts = 0
    public var files = 0
    public var blobs = 0
    public var execs = 0
    public var actions = 0
    public var sensorEvents = 0
    /// Sandbox runs removed; the caller removes their directories (`sandboxRunIDs`).
    public var sandboxRuns = 0
    public var sandboxRunIDs: [String] = []
    /// Evidence copies whose files the caller must now unlink.
    public var evidencePaths: [String] = []
    public var evidenceBytes: Int64 = 0

    public init() {}
}

extension EvidenceDatabase {
    /// Alerts from before a cutoff (the cutoff twice: alert time and receipt). `internal IN
    /// (0, 1)` lets SQLite range-scan the (internal, time) index twice: the intake's hot path no
    /// longer maintains an index on time alone for this hourly query.
    static let expiredAlerts = "internal IN (0, 1) AND time < ? AND receivedAt < ?"

    /// Removes what is older than `cutoff` and, past `evidenceBudget`, the oldest evidence copies.
    ///
    /// Never removed: a file that is present or quarantined, anything an alert still stored
    /// references (its correlated files and their evidence), and the hashes in `protected`
    /// (quarantined samples). Alerts older than the cutoff go with their correlations and audit
    /// rows, sandbox runs with their reports. The evidence files and the sandbox runs'
    /// directories are left to the caller (`evidencePaths`, `sandboxRunIDs`).
    public func prune(olderThan cutoff: Timestamp?, evidenceBudget: Int64?, protected: Set<String>, dryRun: Bool)
        throws -> PruneReport
    {
        try dbWriter.write { db in
            var report = PruneReport()
            if let cutoff {
                let t = cutoff.nanosecondsSinceEpoch
                let oldAlerts = "SELECT id FROM alert WHERE \(Self.expiredAlerts)"
                report.alerts =
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (\(oldAlerts))", arguments: [t, t]) ?? 0
                report.actions =
                    try Int.fetchOne(
                        db,
                        sql:
                            "SELECT COUNT(*) FROM action WHERE alertId IN (\(oldAlerts)) OR (alertId IS NULL AND time < ?)",
                        arguments: [t, t, t]) ?? 0
                try db.execute(
                    sql: "DELETE FROM action WHERE alertId IN (\(oldAlerts)) OR (alertId IS NULL AND time < ?)",
                    arguments: [t, t, t])
                try db.execute(
                    sql:
                        "DELETE FROM correlation WHERE alertSeq IN (SELECT seq FROM alert WHERE \(Self.expiredAlerts))",
                    arguments: [t, t])
                try db.execute(sql: "DELETE FROM alert WHERE \(Self.expiredAlerts)", arguments: [t, t])
                report.execs =
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM exec WHERE time < ?", arguments: [t]) ?? 0
                try db.execute(sql: "DELETE FROM exec WHERE time < ?", arguments: [t])
                report.sensorEvents =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM sensor_event WHERE time < ?", arguments: [t]) ?? 0
                try db.execute(sql: "DELETE FROM sensor_event WHERE time < ?", arguments: [t])
                report.sandboxRunIDs = try String.fetchAll(
                    db, sql: "SELECT id FROM sandbox_run WHERE time < ?", arguments: [t])
                report.sandboxRuns = report.sandboxRunIDs.count
                try db.execute(sql: "DELETE FROM sandbox_run WHERE time < ?", arguments: [t])
                let oldFiles = """
                    FROM file WHERE state = 'deleted' AND lastSeen < ? AND COALESCE(deletedAt, 0) < ?
                    AND id NOT IN (SELECT fileId FROM correlation)
                    """
                report.files = try Int.fetchOne(db, sql: "SELECT COUNT(*) \(oldFiles)", arguments: [t, t]) ?? 0
                try db.execute(sql: "DELETE \(oldFiles)", arguments: [t, t])
                // Blobs no observation points at any more: their evidence goes with them.
                let orphans = try Row.fetchAll(
                    db,
                    sql:
                        "SELECT sha256, size, evidencePath FROM blob WHERE sha256 NOT IN (SELECT sha256 FROM file WHERE sha256 IS NOT NULL)"
                )
                for row in orphans {
                    let sha: String = row["sha256"]
                    guard !protected.contains(sha) else { continue }
                    try db.execute(sql: "DELETE FROM blob WHERE sha256 = ?", arguments: [sha])
                    try db.execute(sql: "DELETE FROM yara_scan WHERE sha256 = ?", arguments: [sha])
                    report.blobs += 1
                    if let path: String = row["evidencePath"] {
                        report.evidencePaths.append(path)
                        report.evidenceBytes += row["size"]
                    }
                }
            }
            if let budget = evidenceBudget {
                var total =
                    try Int64.fetchOne(
                        db, sql: "SELECT COALESCE(SUM(size), 0) FROM blob WHERE evidencePath IS NOT NULL") ?? 0
                total -= report.evidenceBytes
                if total > budget {
                    // Oldest first, and only copies no stored alert, present or quarantined file needs.
                    let candidates = try Row.fetchAll(
                        db,
                        sql: """
                            SELECT sha256, size, evidencePath FROM blob WHERE evidencePath IS NOT NULL
                            AND sha256 NOT IN (
                                SELECT file.sha256 FROM correlation JOIN file ON file.id = correlation.fileId
                                WHERE file.sha256 IS NOT NULL)
                            AND sha256 NOT IN (SELECT sha256 FROM file WHERE sha256 IS NOT NULL AND state != 'deleted')
                            ORDER BY firstSeen
                            """)
                    for row in candidates where total > budget {
                        let sha: String = row["sha256"]
                        guard !protected.contains(sha), let path: String = row["evidencePath"] else { continue }
                        try db.execute(sql: "UPDATE blob SET evidencePath = NULL WHERE sha256 = ?", arguments: [sha])
                        let size: Int64 = row["size"]
                        report.evidencePaths.append(path)
                        report.evidenceBytes += size
                        total -= size
                    }
                }
            }
            if dryRun { throw DryRun(report: report) }
            return report
        }
    }
}

/// Rolls a dry run's transaction back while carrying its report out.
struct DryRun: Error {
    var report: PruneReport
}

extension EvidenceDatabase {
    /// `prune`, rolled back: what it would remove.
    public func prunePreview(olderThan cutoff: Timestamp?, evidenceBudget: Int64?, protected: Set<String>) throws
        -> PruneReport
    {
        do {
            return try prune(olderThan: cutoff, evidenceBudget: evidenceBudget, protected: protected, dryRun: true)
        } catch let dryRun as DryRun {
            return dryRun.report
        }
    }
}
