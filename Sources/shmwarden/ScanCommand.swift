// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenSensors
import WardenYara

struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "One pass over what is on the watched tmpfs mounts now, recorded like `run` would.",
        discussion: """
            Walks every tmpfs mount (and --watch paths), classifies and hashes every executable, \
            keeps evidence copies, scans each with the YARA rules (yara.rules) when there are any, \
            and marks as deleted what the store had there but is gone. Runs \
            beside a running agent safely. Progress goes to stderr on large mounts.

            With --yara PATH…, scans the regular files at each PATH (directories recursively, no \
            symlink followed) with the configured YARA rules (yara.rules, or --rules) as the agent \
            scans a capture, prints each file a rule matched, and records nothing.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Flag(help: "Print the result as JSON (roots, entriesExamined, files).")
    var json = false

    @Flag(help: "Scan the files at PATH… with the YARA rules instead (nothing is recorded).")
    var yara = false

    @Option(help: "With --yara: this rules file or directory instead of yara.rules.")
    var rules: String?

    @Option(help: "With --yara: threads scanning (default: one per CPU).")
    var threads: Int?

    /// The benchmark's view of the agent's own scan: each file read and hashed as a capture is.
    @Flag(help: .hidden) var asCaptured = false

    @Argument(help: "With --yara: files and directories to scan.")
    var paths: [String] = []

    func validate() throws {
        if yara && paths.isEmpty { throw ValidationError("--yara needs at least one PATH to scan") }
        if !yara && (!paths.isEmpty || rules != nil || threads != nil) {
            throw ValidationError("PATH, --rules and --threads go with --yara")
        }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be 1 to 64") }
    }

    func run() async throws {
        if yara { return try YaraPathScan.run(self, file: try state.configFile()) }
        let logger = state.makeLogger()
        let file = try state.configFile()
        var configuration = try watch.configuration(state: state.state, file: file)
        configuration.yara = file.yara
        do {
            configuration.yaraRules = try AgentConfiguration.loadYaraRules(file.yara)
        } catch {
            throw UsageError(message: "YARA rules do not compile:\n\(error.description)")
        }
        let summary = try Agent.scan(
            configuration: configuration, logger: logger,
            progress: { done, total in
                // Progress goes to stderr, so --json output on stdout stays clean.
                guard total > 5000 else { return }
                FileHandle.standardError.write(Data("scan: \(done)/\(total) entries\n".utf8))
            })
        if json {
            print(try JSONOutput.encode(summary))
        } else {
            print(
                "scanned \(summary.roots.count) root(s), \(summary.entriesExamined) entries; recorded \(summary.files.count):"
            )
            FileTable.print(summary.files)
        }
    }
}
