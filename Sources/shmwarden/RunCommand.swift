// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import WardenDaemon

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: watch tmpfs mounts and record every executable dropped there.",
        discussion: """
            Watches every tmpfs mount (and --watch paths), follows mounts that appear or go away, \
            and records executables in <state-dir>/shmwarden.sqlite with evidence copies in \
            <state-dir>/evidence. SIGTERM or SIGINT stop it cleanly after flushing the store.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Option(help: .hidden) var commitLog: String?

    func run() async throws {
        let logger = state.makeLogger()
        try await Agent.run(
            configuration: watch.configuration(state: state.state, commitLog: commitLog), logger: logger)
    }
}
