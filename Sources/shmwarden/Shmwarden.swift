// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenSandbox

/// `shmwarden`: parses the command line and dispatches; the work lives in the libraries.
@main
struct Shmwarden: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shmwarden",
        abstract: "Capture, hash and record every executable dropped on tmpfs (/dev/shm and friends).",
        discussion: """
            shmwarden watches every tmpfs mount with inotify, pins each new file the moment it is \
            created, and records every executable (exec bit, ELF or #!) with its SHA-256 and a \
            content-addressed evidence copy that outlives a dropper's unlink. It takes Falco's \
            alerts, matches them to that evidence, and responds per policy: record, quarantine, \
            kill the process, advise or apply a noexec remount, run the sample in a sandbox.
            """,
        version: "shmwarden 0.5.0",
        subcommands: [
            RunCommand.self, ScanCommand.self, FilesCommand.self, IngestCommand.self, AlertsCommand.self,
            ReportCommand.self, QuarantineCommand.self, AdviseCommand.self, PolicyCommand.self, ExecsCommand.self,
            GuardCommand.self, ConfigCommand.self, PruneCommand.self, SandboxCommand.self, CertsCommand.self,
            OutputsCommand.self, YaraCommand.self,
        ]
    )

    /// Runs the command; usage errors exit 2 with a one-line reason (DESIGN.md's contract),
    /// runtime failures exit 1.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as UsageError {
            FileHandle.standardError.write(Data("shmwarden: \(error.message)\n".utf8))
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            if error is ExitCode { exit(withError: error) }
            FileHandle.standardError.write(Data("shmwarden: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// Bad input: exit code 2 with this message.
struct UsageError: Error {
    var message: String
}
