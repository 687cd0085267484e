// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenStore

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts", abstract: "List stored Falco alerts with the file evidence each was matched to.")

    @OptionGroup var state: StateOptions

    @Option(help: "Only the newest N alerts.")
    var limit: Int?

    @Flag(help: "Print a JSON array of alerts (id, rule, priority, time, hostname, source, correlations, actions).")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let directory = state.state
        guard directory.hasDatabase else {
            throw UsageError(
                message: "no database at \(directory.databasePath) (run `shmwarden run` or `ingest` first)")
        }
        let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
        let alerts = try database.withYaraVerdicts(database.alerts(limit: limit))
        if json {
            print(try JSONOutput.encode(alerts))
            return
        }
        if alerts.isEmpty {
            print("(no alerts)")
            return
        }
        // The alert's fields and the actions' details carry the attacker's text (rule outputs,
        // paths, verdicts): control characters are shown, not sent to the terminal.
        func printLine(_ line: String) { print(TerminalText.escaped(line, keepingLineBreaks: false)) }
        for record in alerts {
            printLine("\(record.id)  \(record.alert.timeText)  \(record.alert.priority.name)  \(record.alert.rule)")
            if record.correlations.isEmpty {
                printLine("    no evidence: \(record.noEvidenceReason?.rawValue ?? "unknown")")
            }
            for correlation in record.correlations {
                let sha = correlation.sha256.map { String($0.prefix(12)) } ?? "-"
                printLine(
                    "    \(sha)  \(correlation.path.displayString)  by \(correlation.matchedBy) (\(correlation.confidence))"
                )
                if let verdict = record.yara.first(where: { $0.sha256 == correlation.sha256 }) {
                    printLine("        yara: \(verdict.summary)")
                }
            }
            for action in record.actions {
                printLine("    \(action.outcome.rawValue) \(action.action) [\(action.rule)]: \(action.detail)")
            }
        }
    }
}
