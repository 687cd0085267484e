// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenLinux
import WardenYara

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Validate the configuration file.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check /etc/shmwarden/shmwarden.yaml (or PATH) and print the settings it gives `run`.",
            discussion: """
                Keys: state-dir, watch, discover, hash-size-cap, max-pinned-files, listen (HOST:PORT or \
                off), unix-socket, token-file, body-limit, policy, log-level, log-format (journal or \
                text), retention {max-age, evidence-budget}, storage {budget, keep-free, quarantine-budget}, \
                inotify-watch-share, exec-monitor (true, false, or {enabled, interpreters}), intake {certificate, key, client-ca, \
                client-certificates (required or optional), peer-uids, peer-gids, insecure}, outputs (a list of \
                {name, url, min-priority, events, timeout, ca, certificate, key, token-file, headers}), outbox {limit} \
                (docs/FLEET.md), yara {rules, max-file-size, timeout, threads} (docs/YARA.md; the rules are \
                compiled, and each error printed as FILE:LINE: reason). Every error is printed as \
                FILE:LINE:COLUMN: reason, with exit code 2. Flags given to `run` win over the file.
                """)

        @Argument(help: "The configuration file (default: /etc/shmwarden/shmwarden.yaml).")
        var path: String = ConfigFile.defaultPath

        func run() throws {
            guard let bytes = try? sys_readFile(Array(path.utf8), followingSymlinks: true) else {
                throw UsageError(message: "cannot read '\(path)'")
            }
            let file: ConfigFile
            switch ConfigFile.parse(String(decoding: bytes, as: UTF8.self), file: path) {
            case .success(let parsed): file = parsed
            case .failure(let errors):
                FileHandle.standardError.write(Data((errors.description + "\n").utf8))
                throw ExitCode(2)
            }
            func show(_ key: String, _ value: String?, _ fallback: String) {
                print("\(key): \(value ?? fallback)\(value == nil ? "  (default)" : "")")
            }
            print("\(path): valid")
            show("state-dir", file.stateDirectory, "/var/lib/shmwarden")
            show("watch", file.watch.map { $0.joined(separator: ", ") }, "(none)")
            show("discover", file.discover.map(String.init), "true")
            show("hash-size-cap", file.hashSizeCap, "256M")
            show("max-pinned-files", file.maxPinnedFiles.map(String.init), "4096")
            show("listen", file.listen, "127.0.0.1:2804")
            show("unix-socket", file.unixSocket, "(none)")
            show("token-file", file.tokenFile, "(none)")
            show("body-limit", file.bodyLimit, "1M")
            show("policy", file.policy, "/etc/shmwarden/policies when it exists, else no responses")
            show("log-level", file.logLevel, "notice")
            show("log-format", file.logFormat, "journal under systemd, else text")
            show("retention.max-age", file.retention?.maxAgeSeconds.map { "\($0) s" }, "(keep forever)")
            show("retention.evidence-budget", file.retention?.evidenceBudgetBytes.map { "\($0) bytes" }, "(no budget)")
            let storage = file.storage ?? StorageBudget()
            show("storage.budget", file.storage?.stateBytes.map { "\($0) bytes" }, "(none; keep-free applies)")
            show("storage.keep-free", file.storage.map { "\(Int(($0.keepFreeShare * 100).rounded())) %" }, "10 %")
            show(
                "storage.quarantine-budget", file.storage?.quarantineBytes.map { "\($0) bytes" },
                "\(storage.quarantineBytes ?? 0) bytes")
            show("inotify-watch-share", file.inotifyWatchShare.map { "\(Int(($0 * 100).rounded())) %" }, "50 %")
            show("exec-monitor.enabled", file.execMonitor.enabled.map(String.init), "true")
            show(
                "exec-monitor.interpreters", file.execMonitor.interpreters?.joined(separator: ", "),
                InterpretedScript.defaultInterpreters.joined(separator: ", "))
            let intake = file.intake
            show("intake.insecure", intake.insecure.map(String.init), "false (mutual TLS)")
            show("intake.certificate", intake.certificate, "/etc/shmwarden/tls/server.crt")
            show("intake.key", intake.key, "/etc/shmwarden/tls/server.key")
            show("intake.client-ca", intake.clientCA, "/etc/shmwarden/tls/ca.crt")
            show("intake.client-certificates", intake.clientCertificates, "required")
            show(
                "intake.peer-uids",
                intake.peerUIDs.isEmpty ? nil : intake.peerUIDs.map(String.init).joined(separator: ", "), "(root only)")
            show(
                "intake.peer-gids",
                intake.peerGIDs.isEmpty ? nil : intake.peerGIDs.map(String.init).joined(separator: ", "), "(none)")
            show("outputs", file.outputs.isEmpty ? nil : "\(file.outputs.count)", "(none: nothing is sent)")
            for output in file.outputs {
                let types =
                    output.types == Set(FleetEventType.selectable)
                    ? "all events" : output.types.map(\.rawValue).sorted().joined(separator: ", ")
                let security = [
                    output.certificateFile.map { _ in "mutual TLS" }, output.tokenFile.map { _ in "bearer token" },
                ].compactMap { $0 }
                print(
                    "  \(output.name): \(output.url), \(types) from \(output.minimumPriority.name) up, "
                        + "timeout \(output.timeoutSeconds) s\(security.isEmpty ? "" : ", " + security.joined(separator: ", "))"
                )
            }
            show("outbox.limit", file.outputs.isEmpty ? nil : "\(file.outbox.limit) events", "100000 events")
            show(
                "yara.rules", file.yara.rules.isEmpty ? nil : file.yara.rules.joined(separator: ", "),
                "(none: no scanning)")
            if !file.yara.rules.isEmpty {
                switch YaraRuleSet.load(file.yara.rules) {
                case .success(let set):
                    print("  \(set.rules.ruleCount) rule(s) from \(set.files.count) file(s), set \(set.fingerprint)")
                    for warning in set.warnings { print("  \(warning)") }
                case .failure(let errors):
                    FileHandle.standardError.write(Data((errors.description + "\n").utf8))
                    throw ExitCode(2)
                }
                show("yara.max-file-size", "\(file.yara.maxFileSize) bytes", "")
                show("yara.timeout", "\(file.yara.timeoutSeconds) s", "")
                show("yara.threads", "\(file.yara.threads)", "")
            }
        }
    }
}
