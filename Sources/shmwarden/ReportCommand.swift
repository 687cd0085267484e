// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenResponse
import WardenStore

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Explain one stored alert: what happened, the evidence, actions, and what to do about it.",
        discussion: """
            Every statement comes from the alert's fields, the recorded evidence, the audit rows or \
            this host's mounts; what the alert does not carry is listed as unknown. Commands are \
            shell-quoted for the exact paths, and a suggested Falco exception is valid rules YAML. \
            The alert ids are in `shmwarden alerts`.
            """)

    @OptionGroup var state: StateOptions

    @Argument(help: "The alert id (from `shmwarden alerts` or the intake's reply).")
    var alertID: String

    @Option(help: "markdown or json.")
    var format: String = "markdown"

    func validate() throws {
        guard ReportAssembler.Format(rawValue: format) != nil else {
            throw ValidationError("--format must be markdown or json, not '\(format)'")
        }
    }

    func run() throws {
        let directory = state.state
        guard directory.hasDatabase else {
            throw UsageError(
                message: "no database at \(directory.databasePath) (run `shmwarden run` or `ingest` first)")
        }
        let assembler = ReportAssembler(
            database: try EvidenceDatabase(path: directory.databasePath, connections: .single),
            quarantineDirectory: directory.quarantinePath)
        guard
            let text = try assembler.rendered(
                alertID: alertID, format: ReportAssembler.Format(rawValue: format) ?? .markdown)
        else {
            throw UsageError(message: "no alert with id '\(alertID)' (see `shmwarden alerts`)")
        }
        // Markdown is read in terminals: the alert's fields (a command line, a file name) are the
        // attacker's text, and their control characters are shown, not sent. JSON escapes its own.
        let shown = format == "json" ? text : TerminalText.escaped(text, keepingLineBreaks: true)
        print(shown, terminator: shown.hasSuffix("\n") ? "" : "\n")
    }
}
