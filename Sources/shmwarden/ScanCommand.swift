// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenSensors

struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "One pass over what is on the watched tmpfs mounts now, recorded like `run` would.",
        discussion: """
            Walks every tmpfs mount (and --watch paths), classifies and hashes every executable, \
            keeps evidence copies, and marks as deleted what the store had there but is gone. Runs \
            beside a running agent safely. Progress goes to stderr on large mounts.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Flag(help: "Print the result as JSON (roots, entriesExamined, files).")
    var json = false

    func run() async throws {
        let logger = state.makeLogger()
        let summary = try Agent.scan(
            configuration: watch.configuration(state: state.state, file: try state.configFile()), logger: logger,
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
