// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenResponse
import WardenSandbox
import WardenStore

/// What `shmwarden sandbox` was asked to do, as plain values (built by `SandboxCommand`).
struct SandboxRequest {
    var state: StateSettings
    var file: String?
    var show: String?
    var list = false
    var timeout = 10
    var json = false
    var markdown = false
    var noObserve = false
    var noResults = false
    var namesNotFound = false
    var arguments: [String] = []

    func validate() throws {
        guard [file != nil, show != nil, list].filter({ $0 }).count <= 1 else {
            throw ValidationError("give one of: a file to run, --show ID, --list")
        }
        guard !(json && markdown) else { throw ValidationError("give one of --json and --markdown") }
        guard !(list && markdown) else { throw ValidationError("--markdown prints one run: a file's, or --show ID's") }
        guard show == nil && !list else { return }
        guard let file else { throw ValidationError("give a file to run (or --show ID, --list for stored runs)") }
        guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
        guard PathArgument.resolved(file) != nil else { throw ValidationError("'\(file)' does not exist") }
    }

    func run() throws {
        if let show { return try printStored(id: show) }
        if list { return try printList() }
        guard let file else { throw UsageError(message: "give a file to run (or --show ID, --list for stored runs)") }
        guard getuid() == 0 else { throw UsageError(message: "the sandbox needs root (namespaces, mounts, seccomp)") }
        let directory = state.state
        try directory.prepare()
        // Opening (and on first use, migrating) the database takes about as long as the jail
        // itself; the jail's time is spent mostly waiting on the kernel and the sample, so the
        // database opens on another thread meanwhile.
        let databasePath = directory.databasePath
        var options = SandboxRunner.Options()
        options.timeoutSeconds = timeout
        options.arguments = arguments
        options.observe = !noObserve
        options.traceResults = !noResults
        options.answerNames = !namesNotFound
        let prepared = options
        let opening = DedicatedThread.start(name: "warden-dbopen") {
            // Paid here, beside the jail's set-up, rather than in its course: SHA-256's first
            // use (before the jail hashes the sample's copy), the filter's build, the results'
            // trace's load.
            DescriptorDigest.payFirstUseCosts()
            SandboxRunner.prepare(for: prepared)
            return try EvidenceDatabase(path: databasePath, connections: .single)
        }
        let report: SandboxReport
        do {
            report = try SandboxRunner(directory: directory.sandboxPath)
                .run(path: PathArgument.resolved(file) ?? PathArgument.absolute(file), options: options)
        } catch let error as SandboxRunner.RunError where error.isUnsuitableSample {
            throw UsageError(message: error.description)
        }
        let now = Date().timeIntervalSince1970
        let database = try opening.value()
        try database.apply([.sandboxRun(report.record(at: Timestamp(nanosecondsSinceEpoch: Int64(now * 1e9))))])
        try printReport(report)
        // A jail that could not be set up is a runtime failure (exit 1), printed and stored like
        // any run so that the reason is on record.
        if report.setupError != nil { throw ExitCode(1) }
        // Done: the process ends here, with the database closed but not released (its release
        // started two dispatch threads only for the exit to stop them: 0.3 ms).
        try database.close()
        Foundation.exit(0)
    }

    /// The state directory's database, for reading stored runs (never created here).
    private func storedRuns() throws -> (EvidenceDatabase, String) {
        let directory = state.state
        guard directory.hasDatabase else { throw UsageError(message: "no database at \(directory.databasePath)") }
        return (try EvidenceDatabase(path: directory.databasePath, connections: .single), directory.databasePath)
    }

    /// The latest stored runs: one line each, or their records as JSON (without the reports:
    /// `--show ID` prints one whole).
    private func printList() throws {
        let runs = try storedRuns().0.latestSandboxRuns(limit: 100)
        if json {
            struct Listed: Encodable {
                var id, time, sha256: String
                var fileId: Int64?
                var alertId: String?
                var verdict: [String]
            }
            let listed = runs.map {
                Listed(
                    id: $0.id, time: $0.time.rfc3339, sha256: $0.sha256, fileId: $0.fileId, alertId: $0.alertId,
                    verdict: $0.verdict)
            }
            print(try JSONOutput.encode(listed))
            return
        }
        if runs.isEmpty { print("(no sandbox runs)") }
        for run in runs {
            let line = "\(run.id)  \(run.time.rfc3339)  \(run.sha256.prefix(12))  \(run.verdict.first ?? "")"
            print(TerminalText.escaped(line, keepingLineBreaks: false))
        }
    }

    /// A stored run, printed as the run that made it printed it.
    private func printStored(id: String) throws {
        let (database, path) = try storedRuns()
        guard let record = try database.sandboxRun(id: id) else {
            throw UsageError(message: "no sandbox run with id '\(id)' in \(path)")
        }
        let report = try SandboxReport.decodeStored(record.reportJSON)
        // The agent scans what a sample wrote once its run ends: those verdicts come from the store.
        try printReport(report, yara: database.yaraVerdicts(report.written.map(\.sha256)))
    }

    /// The report in the form asked for. Markdown is read in terminals too: its control
    /// characters are shown, not sent (`TerminalText`), as in the text form.
    private func printReport(_ report: SandboxReport, yara: [String: YaraVerdict] = [:]) throws {
        if json {
            print(try JSONOutput.encode(report))
        } else if markdown {
            print(TerminalText.escaped(SandboxReportMarkdown.render(report), keepingLineBreaks: true), terminator: "")
        } else {
            printText(report, yara: yara)
        }
    }

    /// The report for a terminal: every field from the sample (names, paths, arguments, its
    /// output) with its control characters shown, not sent (`TerminalText`).
    private func printText(_ report: SandboxReport, yara: [String: YaraVerdict]) {
        func printLine(_ line: String) { print(TerminalText.escaped(line, keepingLineBreaks: false)) }
        func printOutput(_ name: String, _ text: String, truncated: Bool) {
            guard !text.isEmpty else { return }
            print("  \(name):\n" + TerminalText.escaped(text, keepingLineBreaks: true))
            // The capture ends where its bound did: say so after it, on a line of its own.
            if truncated {
                print("  (cut here: the capture keeps the first \(SandboxRunner.Options().outputLimit) bytes)")
            }
        }
        printLine("sandbox run \(report.id) of sha256 \(report.sha256)")
        for sentence in report.verdict { printLine("  \(sentence)") }
        if !report.syscalls.isEmpty {
            printLine(
                "  observed: "
                    + report.syscalls.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(
                        separator: ", ")
                    + (report.i386Calls > 0 ? " (\(report.i386Calls) through i386's ABI)" : ""))
        }
        for process in report.processes {
            printLine(
                "  process: \(process.syscall)" + (process.path.map { " \($0)" } ?? "") + " (pid \(process.pid))"
                    + (process.commandLine.map { ": \($0)" } ?? "")
                    + (process.renamedTo.map { ": PR_SET_NAME \(ShellQuote.quote($0))" } ?? "")
                    + (process.result.map { " -> \($0)" } ?? ""))
        }
        for signal in report.signals { printLine("  signal: \(signal)") }
        for process in report.stillRunning {
            printLine(
                "  still running at the time limit: pid \(process.pid) \(process.commandLine)"
                    + (process.name.map { " (shown by ps as \($0))" } ?? "")
                    + (process.ownSession ? " (in a session of its own)" : ""))
        }
        for access in report.files.prefix(40) {
            printLine(
                "  file: \(access.syscall) \(access.path)" + (access.detail.map { " \($0)" } ?? "")
                    + (access.passedAs.map { " (passed as \($0))" } ?? "")
                    + (access.directoryDescriptor.map { " (relative to descriptor \($0))" } ?? "")
                    + (access.result.map { " -> \($0)" } ?? ""))
        }
        for attempt in report.network {
            // A socket names no address; an IPv6 address with a port goes in brackets.
            let endpoint =
                attempt.syscall == "socket"
                ? attempt.type ?? ""
                : attempt.port.map { port in
                    let address = attempt.address ?? "?"
                    return (address.contains(":") ? "[\(address)]" : address) + ":\(port)"
                } ?? attempt.address ?? "?"
            printLine(
                "  network: \(attempt.syscall) \(attempt.family) \(endpoint)"
                    + (attempt.hostName.map { " (\($0))" } ?? "")
                    + (attempt.result.map { " -> \($0)" } ?? "")
                    + (attempt.sentBytes.map { bytes in
                        let answered = attempt.sinkAnswer.map { "; answered \($0)" } ?? ""
                        if let name = attempt.tlsServerName {
                            return " (sent \(bytes) bytes: TLS for \(name)\(answered))"
                        }
                        return " (sent \(bytes) bytes" + (attempt.sent.map { ": \($0)" } ?? "") + answered + ")"
                    } ?? ""))
        }
        for lookup in report.lookups {
            printLine(
                "  lookup: \(lookup.request) \(lookup.name) (pid \(lookup.pid))"
                    + (lookup.answer.map { " -> \($0)" }
                        ?? (lookup.request.hasPrefix(SandboxReport.NameLookup.dnsPrefix)
                            ? " -> no address" : " -> not found"))
            )
        }
        for file in report.written {
            printLine("  wrote: \(file.path) \(file.size) bytes sha256 \(file.sha256)")
            if let verdict = yara[file.sha256] { printLine("    yara: \(verdict.summary)") }
        }
        printOutput("stdout", report.stdout, truncated: report.stdoutTruncated)
        printOutput("stderr", report.stderr, truncated: report.stderrTruncated)
    }
}
