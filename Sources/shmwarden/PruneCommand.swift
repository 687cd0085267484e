// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenResponse
import WardenStore

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract:
            "Remove old alerts, records and evidence (the agent also does this hourly per its retention settings).",
        discussion: """
            Removes alerts (with their correlations and audit rows), exec records and sensor events \
            older than --max-age; deleted-file records older than that which no remaining alert \
            references; and evidence copies nothing references any more, then, past \
            --evidence-budget, the oldest copies no stored alert or present file needs. Never a \
            quarantined sample, and never the database itself. Defaults come from retention in \
            the configuration file.
            """)

    @OptionGroup var state: StateOptions

    @Option(help: "Age limit: 30d, 12h, 90m, 3600s.")
    var maxAge: String?

    @Option(help: "Size the evidence directory may take: 512M, 10G.")
    var evidenceBudget: String?

    @Flag(help: "Only report what would be removed.")
    var dryRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if let maxAge, RetentionSettings.parseAge(maxAge) == nil {
            throw ValidationError("--max-age '\(maxAge)' is not an age like 30d, 12h or 3600s")
        }
        if let evidenceBudget, (ByteSizeText.parse(evidenceBudget) ?? 0) <= 0 {
            throw ValidationError("--evidence-budget '\(evidenceBudget)' is not a size like 10G")
        }
    }

    func run() throws {
        let configured = try state.configFile().retention ?? RetentionSettings()
        let settings = RetentionSettings(
            maxAgeSeconds: maxAge.flatMap(RetentionSettings.parseAge) ?? configured.maxAgeSeconds,
            evidenceBudgetBytes: evidenceBudget.flatMap(ByteSizeText.parse) ?? configured.evidenceBudgetBytes)
        guard settings.maxAgeSeconds != nil || settings.evidenceBudgetBytes != nil else {
            throw UsageError(
                message:
                    "nothing to do: give --max-age and/or --evidence-budget (or set retention in the configuration)")
        }
        let directory = state.state
        guard directory.hasDatabase else { throw UsageError(message: "no database at \(directory.databasePath)") }
        let now = sys_realtime()
        let report = try Retention.prune(
            database: try EvidenceDatabase(path: directory.databasePath), quarantineDirectory: directory.quarantinePath,
            sandboxDirectory: directory.sandboxPath, settings: settings,
            now: Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds), dryRun: dryRun)
        if json {
            print(try JSONOutput.encode(report))
            return
        }
        print(
            "\(dryRun ? "would remove" : "removed"): \(report.alerts) alert(s), \(report.actions) audit row(s), "
                + "\(report.files) file record(s), \(report.blobs) blob(s), \(report.execs) exec record(s), "
                + "\(report.sensorEvents) sensor event(s), \(report.sandboxRuns) sandbox run(s), "
                + "\(report.evidencePaths.count) evidence cop(ies) "
                + "(\(report.evidenceBytes) bytes)")
    }
}
