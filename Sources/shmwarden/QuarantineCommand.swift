// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenResponse
import WardenStore

struct QuarantineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "Move a file into the quarantine, list quarantined samples, or restore one.",
        discussion: """
            shmwarden quarantine PATH copies the file into <state-dir>/quarantine (mode 0000, in a \
            0700 directory), verifies the copy's SHA-256, and only then removes the original, and \
            only if it is still the same inode. A crash at any point leaves the sample in place or \
            in the quarantine; the next shmwarden command that opens the quarantine finishes or \
            undoes the move.
            """,
        subcommands: [Add.self, List.self, Restore.self],
        defaultSubcommand: Add.self)

    /// Opens the vault, finishing any move a crash interrupted.
    static func openVault(_ state: StateDirectory) throws -> QuarantineVault {
        try state.prepare()
        var onStep: (@Sendable (QuarantineStep) -> Void)?
        // Tests stop the process at a chosen step to prove a crash there loses nothing.
        if let crashAt = ProcessInfo.processInfo.environment["SHMWARDEN_TEST_CRASH_AT"] {
            onStep = { step in if step.rawValue == crashAt { sys_killSelf() } }
        }
        let vault = try QuarantineVault(directory: state.quarantinePath, onStep: onStep)
        for line in vault.recover() { FileHandle.standardError.write(Data("shmwarden: \(line)\n".utf8)) }
        return vault
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Quarantine the file at PATH (the default: shmwarden quarantine PATH).")

        @OptionGroup var state: StateOptions

        @Argument(help: "The file to quarantine (absolute or relative; symlinks are refused).")
        var path: String

        @Flag(help: "Print the sidecar as JSON.")
        var json = false

        func run() throws {
            let directory = state.state
            let vault = try QuarantineCommand.openVault(directory)
            let absolute = PathArgument.absolute(path)
            let entry: QuarantineEntry
            do {
                entry = try vault.quarantine(absolute)
            } catch {
                switch error.kind {
                case .notFound, .notRegularFile, .isSymlink: throw UsageError(message: error.detail)
                default:
                    FileHandle.standardError.write(Data("shmwarden: \(error.detail)\n".utf8))
                    throw ExitCode(1)
                }
            }
            let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
            try database.apply([
                .quarantined(path: absolute, device: entry.device, inode: entry.inode),
                .action(
                    ActionRecord(
                        time: Timestamp(rfc3339: entry.quarantinedAt) ?? Timestamp(nanosecondsSinceEpoch: 0),
                        alertId: nil, fileId: nil, rule: "manual (shmwarden quarantine)", action: "quarantine",
                        mode: .enforce, outcome: .performed, target: absolute.displayString,
                        detail:
                            "quarantined as \(entry.id) (sha256 \(entry.sha256), copy verified) at \(entry.samplePath)")
                ),
            ])
            if json {
                print(try JSONOutput.encode(entry))
            } else {
                print("quarantined \(entry.originalPath) as \(entry.id) (sha256 \(entry.sha256))")
                print("restore with: shmwarden quarantine restore \(entry.id)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List quarantined samples.")

        @OptionGroup var state: StateOptions

        @Flag(help: "Print a JSON array of sidecars.")
        var json = false

        func run() throws {
            let entries = try QuarantineCommand.openVault(state.state).entries()
            if json {
                print(try JSONOutput.encode(entries))
                return
            }
            if entries.isEmpty { print("(quarantine is empty)") }
            for entry in entries {
                print(
                    "\(entry.id)  \(entry.state.rawValue)  \(entry.quarantinedAt)  \(entry.sha256.prefix(12))  \(entry.originalPath)"
                )
                if let note = entry.note { print("    \(note)") }
                if let restoredTo = entry.restoredTo {
                    print("    restored to \(restoredTo) at \(entry.restoredAt ?? "?")")
                }
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Put a quarantined sample back (verified by hash, never overwriting), with its owner and mode.")

        @OptionGroup var state: StateOptions

        @Argument(help: "The id shown by `shmwarden quarantine list`.")
        var id: String

        @Option(help: "Restore here instead of the original path.")
        var to: String?

        @Flag(help: "Print the updated sidecar as JSON.")
        var json = false

        func run() throws {
            let vault = try QuarantineCommand.openVault(state.state)
            let entry: QuarantineEntry
            do {
                entry = try vault.restore(id, to: to.map(PathArgument.absolute))
            } catch {
                switch error.kind {
                case .unknownID, .exists, .alreadyRestored, .notFound: throw UsageError(message: error.detail)
                default:
                    FileHandle.standardError.write(Data("shmwarden: \(error.detail)\n".utf8))
                    throw ExitCode(1)
                }
            }
            if json {
                print(try JSONOutput.encode(entry))
            } else {
                print("restored \(entry.id) to \(entry.restoredTo ?? entry.originalPath)")
                print(
                    "note: a running agent whose policy quarantines dropped executables will quarantine it again "
                        + "unless sha256 \(entry.sha256) is in the policy's allowlist")
            }
        }
    }
}
