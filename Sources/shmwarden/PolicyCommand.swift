// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenResponse

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Validate response policies.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check a policy file, or a directory of them, the way `run` loads it.",
            discussion: """
                A directory is read as one policy: its *.yaml and *.yml files in name order \
                (files named *-example.yaml are skipped). Every error is printed as FILE:LINE:COLUMN: \
                reason; any error makes the exit code 2, and `run` would refuse the whole policy.
                """)

        @Argument(help: "A policy file or directory.")
        var path: String

        func run() throws {
            switch PolicyLoader.load(path) {
            case .success(let policy):
                func count(_ trigger: PolicyTrigger) -> Int { policy.rules.filter { $0.trigger == trigger }.count }
                print(
                    "\(path): valid — mode \(policy.mode.rawValue), \(policy.rules.count) rule(s) "
                        + "(\(count(.alert)) on alerts, \(count(.droppedExecutable)) on dropped executables, "
                        + "\(count(.filelessExecutable)) on fileless executables), "
                        + "allowlist \(policy.allowlist.sha256.count) hash(es) and \(policy.allowlist.paths.count) "
                        + "path glob(s); files: \(policy.sources.joined(separator: ", "))")
            case .failure(let errors):
                FileHandle.standardError.write(Data((errors.description + "\n").utf8))
                throw ExitCode(2)
            }
        }
    }
}
