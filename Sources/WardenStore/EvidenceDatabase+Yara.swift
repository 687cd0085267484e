// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import WardenCore

extension EvidenceDatabase {
    /// Stores `verdict`; with an outbox, queues a `yara` event when it is a new match: the first
    /// answer with matches under its rule set (the guard and the capture pipeline may both scan
    /// the same bytes: one event).
    static func upsert(_ verdict: YaraVerdict, outbox: Outbox? = nil, in db: Database) throws {
        var alreadyAnswered = false
        if outbox != nil, verdict.isAnswer, !verdict.matches.isEmpty {
            let old = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT ruleset, status FROM yara_scan WHERE sha256 = ?"),
                arguments: [verdict.sha256])
            alreadyAnswered =
                old.map {
                    ($0["ruleset"] as String) == verdict.ruleset
                        && ["complete", "truncated"].contains($0["status"] as String)
                }
                ?? false
        }
        let matches = String(decoding: try JSONEncoder().encode(verdict.matches), as: UTF8.self)
        // An answer always replaces; a scan without one only fills a gap or replaces another
        // non-answer (a timeout must not erase what an earlier complete scan found).
        let answer = verdict.isAnswer
        try db.cachedStatement(
            sql: """
                INSERT INTO yara_scan
                    (sha256, ruleset, status, matched, matches, scannedBytes, size, time, durationNs, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(sha256) DO UPDATE SET
                    ruleset = excluded.ruleset, status = excluded.status, matched = excluded.matched,
                    matches = excluded.matches, scannedBytes = excluded.scannedBytes, size = excluded.size,
                    time = excluded.time, durationNs = excluded.durationNs, detail = excluded.detail
                WHERE ? OR yara_scan.status NOT IN ('complete', 'truncated')
                """
        ).execute(arguments: [
            verdict.sha256, verdict.ruleset, verdict.status.rawValue, answer && !verdict.matches.isEmpty,
            matches, verdict.scannedBytes, verdict.size, verdict.time.nanosecondsSinceEpoch,
            verdict.durationNanoseconds, verdict.detail, answer,
        ])
        if let outbox, answer, !verdict.matches.isEmpty, !alreadyAnswered {
            try outbox.enqueue(
                .yara, time: verdict.time, ref: nil, note: verdict.sha256, in: db)
        }
    }

    /// The stored verdicts on these contents, by SHA-256.
    public func yaraVerdicts(_ sha256s: some Collection<String>) throws -> [String: YaraVerdict] {
        let wanted = Array(Set(sha256s))
        guard !wanted.isEmpty else { return [:] }
        return try dbWriter.read { db in
            var found: [String: YaraVerdict] = [:]
            // In chunks: SQLite bounds a statement's parameters.
            for start in stride(from: 0, to: wanted.count, by: 500) {
                let chunk = Array(wanted[start..<min(wanted.count, start + 500)])
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM yara_scan WHERE sha256 IN (\(marks))", arguments: StatementArguments(chunk))
                for row in rows {
                    let verdict = Self.yaraVerdict(row)
                    found[verdict.sha256] = verdict
                }
            }
            return found
        }
    }

    /// `files` with their stored YARA verdicts attached.
    public func withYaraVerdicts(_ files: [FileRecord]) throws -> [FileRecord] {
        let verdicts = try yaraVerdicts(files.compactMap(\.sha256))
        guard !verdicts.isEmpty else { return files }
        return files.map { file in
            var file = file
            file.yara = file.sha256.flatMap { verdicts[$0] }
            return file
        }
    }

    /// `alerts` with the stored YARA verdicts on their correlated files attached.
    public func withYaraVerdicts(_ alerts: [AlertRecord]) throws -> [AlertRecord] {
        let verdicts = try yaraVerdicts(alerts.flatMap { $0.correlations.compactMap(\.sha256) })
        guard !verdicts.isEmpty else { return alerts }
        return alerts.map { alert in
            var alert = alert
            var seen = Set<String>()
            alert.yara = alert.correlations.compactMap(\.sha256).filter { seen.insert($0).inserted }
                .compactMap { verdicts[$0] }
            return alert
        }
    }

    static func yaraVerdict(_ row: Row) -> YaraVerdict {
        let matchesText: String = row["matches"] ?? "[]"
        let matches = (try? JSONDecoder().decode([YaraMatch].self, from: Data(matchesText.utf8))) ?? []
        return YaraVerdict(
            sha256: row["sha256"], ruleset: row["ruleset"],
            status: YaraVerdict.Status(rawValue: row["status"] ?? "") ?? .failed, matches: matches,
            scannedBytes: row["scannedBytes"], size: row["size"],
            time: Timestamp(nanosecondsSinceEpoch: row["time"]), durationNanoseconds: row["durationNs"],
            detail: row["detail"])
    }
}
