// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenResponse
import Yams

struct GuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard",
        abstract: "Show or extend what the exec guard allows.",
        discussion: """
            The guard is set in the policy (guard: {mode: off|monitor|enforce, failure: allow|deny}) \
            and allows what the policy's allowlist allows. `guard allow` adds a SHA-256 or a path \
            glob to guard-allowlist.yaml in the policy directory, checks the whole policy, and \
            tells a running agent to reload it (SIGHUP).
            """,
        subcommands: [Allow.self, List.self])

    static let allowlistFile = "guard-allowlist.yaml"

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allow", abstract: "Allow a SHA-256 or a path glob (written to the policy directory).")

        @Argument(help: "A SHA-256 (64 hex digits) or an absolute path glob such as '/dev/shm/vendor/**'.")
        var entry: String

        @Option(help: "The policy directory.")
        var policy: String = AgentConfiguration.installedPolicyPath

        @OptionGroup var state: StateOptions

        func run() throws {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: policy, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw UsageError(message: "--policy must be a policy directory ('\(policy)' is not one)")
            }
            let isHash =
                entry.utf8.count == 64
                && entry.lowercased().utf8.allSatisfy {
                    ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102)
                }
            guard isHash || entry.hasPrefix("/") else {
                throw UsageError(message: "'\(entry)' is neither a SHA-256 (64 hex digits) nor an absolute path glob")
            }
            let file = policy + "/" + GuardCommand.allowlistFile
            var allowlist = Allowlist()
            if FileManager.default.fileExists(atPath: file) {
                let text = String(decoding: try sys_readFile(Array(file.utf8)), as: UTF8.self)
                switch PolicyParser.parse(text, file: file) {
                case .success(let document): allowlist = document.allowlist
                case .failure(let errors): throw UsageError(message: "fix \(file) first:\n\(errors)")
                }
            }
            if isHash {
                allowlist.sha256.insert(entry.lowercased())
            } else if !allowlist.paths.contains(PathGlob(entry)) {
                allowlist.paths.append(PathGlob(entry))
            }
            let text = try Self.render(allowlist)
            // The whole policy must still load with the new file, or nothing is written.
            var documents: [PolicyDocument] = []
            for other in try PolicyLoader.policyFiles(at: policy) where other != file {
                let otherText = String(decoding: try sys_readFile(Array(other.utf8)), as: UTF8.self)
                documents.append(try PolicyParser.parse(otherText, file: other).get())
            }
            documents.append(try PolicyParser.parse(text, file: file).get())
            if case .failure(let errors) = PolicyParser.merge(documents.sorted { $0.file < $1.file }) {
                throw UsageError(message: "the policy would not load, nothing written:\n\(errors)")
            }
            try sys_writeFileDurably(Array(file.utf8), Array(text.utf8), permissions: 0o644)
            print("allowed \(entry) in \(file)")
            print(Self.signalAgent(state.state))
        }

        static func render(_ allowlist: Allowlist) throws -> String {
            let node: Node = [
                "allowlist": [
                    "sha256": Node(allowlist.sha256.sorted().map { Node($0) }),
                    "paths": Node(allowlist.paths.map { Node($0.description) }),
                ]
            ]
            return "# Written by `shmwarden guard allow`; entries may also be removed by hand.\n"
                + (try Yams.serialize(node: node, sortKeys: false))
        }

        /// Sends SIGHUP to the agent whose pid file is in the state directory, if it runs.
        static func signalAgent(_ state: StateDirectory) -> String {
            guard let text = try? String(contentsOfFile: state.pidFilePath, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
                let exe = try? sys_readlink(Array("/proc/\(pid)/exe".utf8)),
                String(decoding: exe, as: UTF8.self).hasSuffix("/shmwarden")
            else {
                return "no running agent found for \(state.path); it reads the policy when it starts"
            }
            return kill(pid, SIGHUP) == 0
                ? "told the agent (pid \(pid)) to reload its policy"
                : "could not signal the agent (pid \(pid)): send it SIGHUP to reload"
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Show the guard's mode and everything it allows.")

        @Option(help: "The policy file or directory.")
        var policy: String = AgentConfiguration.installedPolicyPath

        func run() throws {
            let loaded: Policy
            switch PolicyLoader.load(policy) {
            case .success(let value): loaded = value
            case .failure(let errors): throw UsageError(message: "invalid policy:\n\(errors)")
            }
            let execGuard = loaded.execGuard
            print(
                "guard: \(execGuard.mode.rawValue), failure: \(execGuard.failure.rawValue), hash-size-cap: \(execGuard.hashSizeCap) bytes"
            )
            print("allowed sha256 (\(loaded.allowlist.sha256.count)):")
            for sha in loaded.allowlist.sha256.sorted() { print("  \(sha)") }
            print("allowed paths (\(loaded.allowlist.paths.count)):")
            for glob in loaded.allowlist.paths { print("  \(glob)") }
        }
    }
}
