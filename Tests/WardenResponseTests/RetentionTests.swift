// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenResponse
import WardenStore
import WardenTestSupport

/// Retention over a real state directory: the database rows and the files they own go together.
@Suite struct RetentionTests {
    @Test func sandboxRunsPastTheCutoffGoWithWhatTheirSamplesWrote() throws {
        let state = makeStateDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let sandbox = state + "/sandbox"
        try FileManager.default.createDirectory(atPath: state + "/quarantine", withIntermediateDirectories: true)
        let database = try EvidenceDatabase(path: state + "/shmwarden.sqlite")
        let day: Int64 = 86_400_000_000_000
        let now = Timestamp(nanosecondsSinceEpoch: 100 * day)
        var commands: [StoreCommand] = []
        for (id, age) in [("sbold", 40), ("sbnew", 1)] {
            let written = sandbox + "/\(id)/written"
            try FileManager.default.createDirectory(atPath: written, withIntermediateDirectories: true)
            try Data("dropped by \(id)".utf8).write(
                to: URL(fileURLWithPath: written + "/" + String(repeating: "a", count: 64)))
            commands.append(
                .sandboxRun(
                    SandboxRunRecord(
                        id: id, time: Timestamp(nanosecondsSinceEpoch: now.nanosecondsSinceEpoch - Int64(age) * day),
                        sha256: String(repeating: "b", count: 64), fileId: nil, alertId: nil,
                        verdict: ["It exited with code 0."],
                        reportJSON: "{}")))
        }
        // A row whose id is not one of ours must never become a path to remove.
        commands.append(
            .sandboxRun(
                SandboxRunRecord(
                    id: "..", time: Timestamp(nanosecondsSinceEpoch: 0), sha256: String(repeating: "c", count: 64),
                    fileId: nil,
                    alertId: nil, verdict: [], reportJSON: "{}")))
        try database.apply(commands)
        let settings = RetentionSettings(maxAgeSeconds: 30 * 86_400, evidenceBudgetBytes: nil)

        let preview = try Retention.prune(
            database: database, quarantineDirectory: state + "/quarantine", sandboxDirectory: sandbox,
            settings: settings,
            now: now, dryRun: true)
        #expect(preview.sandboxRuns == 2)
        #expect(FileManager.default.fileExists(atPath: sandbox + "/sbold/written"), "a dry run removes nothing")

        let report = try Retention.prune(
            database: database, quarantineDirectory: state + "/quarantine", sandboxDirectory: sandbox,
            settings: settings,
            now: now, dryRun: false)
        #expect(Set(report.sandboxRunIDs) == ["sbold", ".."])
        #expect(!FileManager.default.fileExists(atPath: sandbox + "/sbold"))
        #expect(FileManager.default.fileExists(atPath: sandbox + "/sbnew/written"))
        #expect(FileManager.default.fileExists(atPath: state + "/shmwarden.sqlite"), "'..' was not followed")
        #expect(try database.sandboxRuns(sha256: [String(repeating: "b", count: 64)]).map(\.id) == ["sbnew"])
    }
}
