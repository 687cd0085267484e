// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
@preconcurrency import Glibc
import Logging
import SystemPackage
import WardenCore
import WardenDaemon
import WardenIntake
import WardenLinux
import WardenResponse
import WardenSandbox
import WardenStore

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Store newline-delimited Falco JSON alerts (program_output, file_output).",
        discussion: """
            Each line is one alert as Falco writes it with json_output: true. It is correlated \
            with recorded files and stored like an alert posted over HTTP. A bad line is reported \
            with its number and skipped; the rest go in, and the exit code is 2 if any line was bad. \
            With program_output:  program: "shmwarden ingest -". With file_output, point it at the \
            file and add --follow.
            """)

    @OptionGroup var state: StateOptions

    @Argument(help: "The NDJSON file, or - for standard input.")
    var file: String = "-"

    @Option(help: "Response policy file or directory (default: /etc/shmwarden/policies when it exists).")
    var policy: String?

    @Flag(help: "Keep reading as the file grows, across truncation and rotation (like tail -F), until SIGINT/SIGTERM.")
    var follow = false

    func validate() throws {
        if follow && file == "-" { throw ValidationError("--follow needs a FILE, not standard input") }
        if file != "-" && !FileManager.default.isReadableFile(atPath: file) {
            throw ValidationError("cannot read '\(file)'")
        }
    }

    func run() async throws {
        let logger = state.makeLogger()
        let loaded: Policy
        do {
            (loaded, _) = try AgentConfiguration.loadPolicy(policy)
        } catch {
            throw UsageError(message: "invalid policy, nothing ingested:\n\(error.description)")
        }
        let directory = state.state
        try directory.prepare()
        let database = try EvidenceDatabase(path: directory.databasePath)
        // With outputs configured, what this stores queues its events too: the agent's
        // forwarder reads the same outbox.
        let configured = try state.configFile()
        if !configured.outputs.isEmpty {
            database.setOutbox(
                Outbox(
                    hostname: sys_hostname(), limit: configured.outbox.limit,
                    outputs: configured.outputs.map(\.name)))
        }
        var responder: Responder?
        if loaded.hasRules(for: .alert) {
            let vault = try QuarantineVault(directory: directory.quarantinePath)
            for line in vault.recover() { logger.warning("quarantine journal: \(line)") }
            responder = Responder(
                policy: SharedPolicy(loaded), database: database, vault: vault,
                sandbox: SandboxRunner(directory: directory.sandboxPath), logger: logger,
                clock: {
                    let now = sys_realtime()
                    return Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds)
                }, record: { commands in _ = try? database.apply(commands) })
        }
        let ingester = NDJSONIngester(
            database: database, mounts: TmpfsMountCache(),
            onBadLine: { line, reason in
                FileHandle.standardError.write(Data("shmwarden ingest: line \(line): \(reason)\n".utf8))
            },
            onCommitted: responder.map { responder in
                { records in for record in records { responder.respond(to: responder.subject(for: record)) } }
            },
            sender: AlertSender(
                authenticated: true, via: "ingest \(file == "-" ? "standard input" : file) by uid \(getuid())"))
        if follow {
            let stop = StopFlag()
            do {
                try ingester.follow(path: file, shouldStop: { stop.isSet })
            } catch let refusal as FollowRefusal {
                throw UsageError(message: refusal.description)
            }
        } else if file == "-" {
            try ingester.ingest(FileDescriptor.standardInput)
        } else {
            let fd = try FileDescriptor.open(file, .readOnly)
            defer { try? fd.close() }
            try ingester.ingest(fd)
        }
        let report = ingester.report
        FileHandle.standardError.write(
            Data(
                "shmwarden ingest: \(report.accepted) stored, \(report.duplicates) duplicate, \(report.badLines) bad line(s)\n"
                    .utf8))
        if report.badLines > 0 { throw ExitCode(2) }
    }
}

/// Set by SIGINT or SIGTERM, so `--follow` can commit what it has and stop.
final class StopFlag: @unchecked Sendable {
    // Written by the signal sources' handlers on a dispatch queue, read by the following loop;
    // a torn read of a Bool is impossible, and a late read only delays the stop by one poll.
    private var value = false
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [unowned self] in self.value = true }
            source.resume()
            sources.append(source)
        }
    }

    var isSet: Bool { value }
}
