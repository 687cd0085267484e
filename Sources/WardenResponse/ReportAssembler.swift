// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenLinux
import WardenSandbox
import WardenStore

/// Gathers what a report may state about an alert (the store, the quarantine and the host's
/// mounts now) and has WardenCore build it.
public struct ReportAssembler: Sendable {
    let database: EvidenceDatabase
    let quarantineDirectory: String

    public init(database: EvidenceDatabase, quarantineDirectory: String) {
        self.database = database
        self.quarantineDirectory = quarantineDirectory
    }

    public enum Format: String, Sendable, CaseIterable {
        case markdown, json
    }

    /// The report of `alertID`, or nil when no such alert is stored.
    public func report(alertID: String) throws -> AlertReport? { try assemble(alertID: alertID)?.report }

    /// The report, and the stored sandbox runs of its evidence (oldest first) it names.
    private func assemble(alertID: String) throws -> (report: AlertReport, sandboxRuns: [SandboxRunRecord])? {
        guard let record = try database.alert(id: alertID) else { return nil }
        let files = try database.withYaraVerdicts(database.files(ids: record.correlations.map(\.fileID)))
        let byID = Dictionary(uniqueKeysWithValues: files.compactMap { file in file.id.map { ($0, file) } })
        let mounts = (try? MountTable.readHost()) ?? []
        // Reading the sidecars does not change the quarantine: no recovery is run from here.
        let quarantine = (try? QuarantineVault.entries(in: quarantineDirectory)) ?? []
        let evidence = record.correlations.compactMap { correlation -> ReportEvidence? in
            guard let file = byID[correlation.fileID] else { return nil }
            let mount = MountAdvisor.mount(containing: file.path, in: mounts).map(MountAdvisor.facts)
            let entry = quarantine.last { entry in
                entry.state == .quarantined
                    && (entry.fileId == file.id
                        || (entry.originalPathBytes == file.path && entry.device == file.device
                            && entry.inode == file.inode))
            }
            return ReportEvidence(
                file: file, matchedBy: correlation.matchedBy, confidence: correlation.confidence, mount: mount,
                quarantineID: entry?.id)
        }
        let now = sys_realtime()
        var input = ReportInput(
            alertID: record.id, alert: record.alert, receivedAt: record.receivedAt, evidence: evidence,
            noEvidenceReason: record.noEvidenceReason,
            actions: record.actions.map {
                ReportAction(
                    time: $0.time.rfc3339, rule: $0.rule, action: $0.action, mode: $0.mode.rawValue,
                    outcome: $0.outcome.rawValue, target: $0.target, detail: $0.detail)
            },
            eventDropNearby: record.eventDropNearby, memfdNoexec: MountAdvisor.memfdAdvice().current,
            generatedAt: Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds))
        let hashes = Array(Set(evidence.compactMap(\.file.sha256))).sorted()
        let runs = (try? database.sandboxRuns(sha256: hashes)) ?? []
        input.sandboxRuns = runs.map { ($0.id, $0.sha256, $0.verdict) }
        return (ReportBuilder.build(input), runs)
    }

    /// How many of a sample's sandbox runs the Markdown report holds whole (the newest).
    static let sandboxRunsShown = 3

    /// The newest of `runs`, each as Markdown whose title is a level-3 heading. JSON reports
    /// name the runs only (`sandbox`): `sandbox --show ID --json` prints one whole.
    static func sandboxRunsInMarkdown(_ runs: [SandboxRunRecord]) -> [String] {
        runs.suffix(sandboxRunsShown).reversed().compactMap { run in
            (try? SandboxReport.decodeStored(run.reportJSON)).map { SandboxReportMarkdown.render($0, headingLevel: 3) }
        }
    }

    /// The report rendered: Markdown, or JSON with sorted keys.
    public func rendered(alertID: String, format: Format) throws -> String? {
        guard let (report, runs) = try assemble(alertID: alertID) else { return nil }
        switch format {
        case .markdown:
            return ReportMarkdown.render(report, sandboxRuns: Self.sandboxRunsInMarkdown(runs))
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(report), as: UTF8.self)
        }
    }
}
