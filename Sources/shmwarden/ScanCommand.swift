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
        abstract: "One pass over what is on the watched tmpfs mounts now, recorded like `run` would.")

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Flag(help: "Print the result as JSON (roots, entriesExamined, files).")
    var json = false

    func run() async throws {
        let logger = state.makeLogger()
        let summary = try Agent.scan(
            configuration: watch.configuration(state: state.state, file: try state.configFile()), logger: logger)
        if json {
            print(try JSONOutput.encode(summary))
        } else {
            print("scanned \(summary.roots.count) root(s), \(summary.entriesExamined) entries; recorded \(summary.files.count):")
            FileTable.print(summary.files)
        }
    }
}
