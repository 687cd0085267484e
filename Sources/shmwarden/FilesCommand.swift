// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenStore

struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "List recorded files (executables and special files found on tmpfs).")

    @OptionGroup var state: StateOptions

    @Option(help: "Only this SHA-256 (full 64 hex digits, or a prefix of at least 4).")
    var sha256: String?

    @Option(help: "Only this path; a glob when it has *, ? or [ (e.g. '/dev/shm/**').")
    var path: String?

    @Flag(help: "Print a JSON array of file records.")
    var json = false

    func validate() throws {
        if let sha256 {
            let isHex = sha256.allSatisfy { $0.isHexDigit }
            guard isHex, (4...64).contains(sha256.count) else {
                throw ValidationError("--sha256 must be 4 to 64 hex digits, got '\(sha256)'")
            }
        }
    }

    func run() async throws {
        let directory = state.state
        guard directory.hasDatabase else {
            throw UsageError(message: "no database at \(directory.databasePath) (run `shmwarden run` or `scan` first)")
        }
        let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
        let records = try database.withYaraVerdicts(database.files(FileQuery(sha256: sha256, path: path)))
        if json {
            print(try JSONOutput.encode(records))
        } else {
            FileTable.print(records)
        }
    }
}

/// YARA verdicts as the commands print them; rule names and metadata are the rule author's
/// text, and a rule set may come from anywhere: control characters are shown, not sent.
enum YaraText {
    static func printVerdict(_ verdict: YaraVerdict, indent: String) {
        Swift.print(TerminalText.escaped("\(indent)yara: \(verdict.summary)", keepingLineBreaks: false))
        for match in verdict.matches {
            let tags = match.tags.isEmpty ? "" : " [\(match.tags.joined(separator: ","))]"
            let meta = match.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
            Swift.print(
                TerminalText.escaped(
                    "\(indent)  \(match.rule)\(tags) from \(match.namespace)\(meta.isEmpty ? "" : ": \(meta)")",
                    keepingLineBreaks: false))
            for string in match.strings {
                let offsets = string.offsets.map { "0x" + String($0, radix: 16) }.joined(separator: ",")
                let more = string.count > string.offsets.count ? " (\(string.count) in all)" : ""
                Swift.print(
                    TerminalText.escaped(
                        "\(indent)    \(string.identifier) at \(offsets)\(more)", keepingLineBreaks: false))
            }
        }
    }
}

/// JSON as the contract prints it: sorted keys, pretty, no escaped slashes.
enum JSONOutput {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// The human table of file records.
enum FileTable {
    static func print(_ records: [FileRecord]) {
        if records.isEmpty {
            Swift.print("(no files)")
            return
        }
        Swift.print("SHA256        STATE        KIND    MODE  SIZE        PATH")
        for record in records {
            let sha = record.sha256.map { String($0.prefix(12)) } ?? "-(\(record.hashStatus.rawValue))"
            let kind = record.fileType == .regular ? record.kind.rawValue : record.fileType.rawValue
            Swift.print(
                pad(sha, 13), pad(record.state.rawValue, 12), pad(kind, 7), record.permissionsOctal,
                pad(String(record.size), 11), record.path.displayString)
            if let verdict = record.yara { YaraText.printVerdict(verdict, indent: "    ") }
        }
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
