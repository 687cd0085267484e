// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenResponse
import WardenStore

struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a copy of a sample in a jail and report what it tried to do.",
        discussion: """
            The copy runs from a private tmpfs (verified by SHA-256, executed through its \
            descriptor) in new pid, mount, net, ipc, uts and cgroup namespaces with a minimal \
            read-only root, its own /tmp, no network but its own loopback, an unprivileged uid with \
            no capabilities, no_new_privs, rlimits and a seccomp filter that kills or refuses \
            ptrace, mount, namespaces, bpf, kexec, module loading, TIOCSTI and non-unix sockets. \
            execve, open, connect, clone, unlink, rename, chmod, kill, memfd_create and \
            prctl(PR_SET_NAME) are observed through seccomp user notification. At the time limit \
            the whole pid namespace is killed. Needs root. Every run is stored; --show ID prints \
            a stored one again (an alert's report names the runs of its files).
            """)

    @OptionGroup var state: StateOptions

    @Argument(help: "The sample to run (it is copied; the original is never executed).")
    var file: String?

    @Option(help: "Print the stored run with this id instead of running a file.")
    var show: String?

    @Option(help: "Wall-clock limit in seconds (1-3600).")
    var timeout: Int = 10

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Do not observe with seccomp user notification (the filter still enforces).")
    var noObserve = false

    @Argument(parsing: .postTerminator, help: "Arguments for the sample, after --.")
    var arguments: [String] = []

    func validate() throws {
        guard show == nil else {
            guard file == nil else { throw ValidationError("give a file to run or --show ID, not both") }
            return
        }
        guard let file else { throw ValidationError("give a file to run (or --show ID for a stored run)") }
        guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
        guard PathArgument.resolved(file) != nil else { throw ValidationError("'\(file)' does not exist") }
    }

    func run() throws {
        if let show { return try printStored(id: show) }
        guard let file else { throw UsageError(message: "give a file to run (or --show ID for a stored run)") }
        guard getuid() == 0 else { throw UsageError(message: "the sandbox needs root (namespaces, mounts, seccomp)") }
        let directory = state.state
        try directory.prepare()
        // Opening (and on first use, migrating) the database takes about as long as the jail
        // itself; the jail's time is spent mostly waiting on the kernel and the sample, so the
        // database opens on another thread meanwhile.
        let databasePath = directory.databasePath
        let opening = DedicatedThread.start(name: "warden-dbopen") {
            try EvidenceDatabase(path: databasePath, connections: .single)
        }
        var options = SandboxRunner.Options()
        options.timeoutSeconds = timeout
        options.arguments = arguments
        options.observe = !noObserve
        let report: SandboxReport
        do {
            report = try SandboxRunner(directory: directory.sandboxPath)
                .run(path: PathArgument.resolved(file) ?? PathArgument.absolute(file), options: options)
        } catch let error as SandboxRunner.RunError {
            throw UsageError(message: error.description)
        }
        let now = Date().timeIntervalSince1970
        let database = try opening.value()
        try database.apply([.sandboxRun(report.record(at: Timestamp(nanosecondsSinceEpoch: Int64(now * 1e9))))])
        if json {
            print(try JSONOutput.encode(report))
        } else {
            printText(report)
        }
        // A jail that could not be set up is a runtime failure (exit 1), printed and stored like
        // any run so that the reason is on record.
        if report.setupError != nil { throw ExitCode(1) }
        // Done: the process ends here, with the database closed but not released (its release
        // started two dispatch threads only for the exit to stop them: 0.3 ms).
        try database.close()
        Foundation.exit(0)
    }

    /// A stored run, printed as the run that made it printed it.
    private func printStored(id: String) throws {
        let directory = state.state
        guard directory.hasDatabase else { throw UsageError(message: "no database at \(directory.databasePath)") }
        let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
        guard let record = try database.sandboxRun(id: id) else {
            throw UsageError(message: "no sandbox run with id '\(id)' in \(directory.databasePath)")
        }
        let report = try SandboxReport.decodeStored(record.reportJSON)
        if json {
            print(try JSONOutput.encode(report))
        } else {
            printText(report)
        }
    }

    private func printText(_ report: SandboxReport) {
        print("sandbox run \(report.id) of sha256 \(report.sha256)")
        for sentence in report.verdict { print("  \(sentence)") }
        if !report.syscalls.isEmpty {
            print(
                "  observed: "
                    + report.syscalls.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(
                        separator: ", "))
        }
        for process in report.processes {
            print(
                "  process: \(process.syscall)" + (process.path.map { " \($0)" } ?? "") + " (pid \(process.pid))"
                    + (process.commandLine.map { ": \($0)" } ?? "")
                    + (process.renamedTo.map { ": PR_SET_NAME \(ShellQuote.quote($0))" } ?? ""))
        }
        for signal in report.signals { print("  signal: \(signal)") }
        for process in report.stillRunning {
            print(
                "  still running at the time limit: pid \(process.pid) \(process.commandLine)"
                    + (process.name.map { " (shown by ps as \($0))" } ?? "")
                    + (process.ownSession ? " (in a session of its own)" : ""))
        }
        for access in report.files.prefix(40) {
            print(
                "  file: \(access.syscall) \(access.path)" + (access.detail.map { " \($0)" } ?? "")
                    + (access.passedAs.map { " (passed as \($0))" } ?? ""))
        }
        for attempt in report.network {
            print(
                "  network: \(attempt.syscall) \(attempt.family) \(attempt.address ?? "?")"
                    + (attempt.port.map { ":\($0)" } ?? ""))
        }
        for lookup in report.lookups { print("  lookup: \(lookup.request) \(lookup.name) (pid \(lookup.pid))") }
        for file in report.written { print("  wrote: \(file.path) \(file.size) bytes sha256 \(file.sha256)") }
        // The capture ends where its bound did: say so after it, on a line of its own.
        let cut = "\n  (cut here: the capture keeps the first \(SandboxRunner.Options().outputLimit) bytes)"
        if !report.stdout.isEmpty { print("  stdout:\n" + report.stdout + (report.stdoutTruncated ? cut : "")) }
        if !report.stderr.isEmpty { print("  stderr:\n" + report.stderr + (report.stderrTruncated ? cut : "")) }
    }
}

extension SandboxCommand {
    /// `sandbox`'s arguments read by hand when they are only the documented ones (as in every
    /// scripted or policy-driven run), with ArgumentParser's meaning: options anywhere before
    /// `--`, `--name value` or `--name=value`, the last one winning; the file the one positional.
    /// Nil for anything else (help, an unknown, repeated-positional or malformed option), which
    /// ArgumentParser then parses and answers exactly as before.
    ///
    /// ArgumentParser's parse of even this one command (by reflection of every property, with a
    /// scan for a completion-script request) looks up protocol conformances by type for the
    /// first time, each a scan of the binary's ~9,500 conformance records: 30% of the main
    /// thread's CPU in a `sandbox /bin/true` (perf, 40 runs).
    static func parseDirectly(_ arguments: [String]) -> SandboxCommand? {
        var file: String?
        var timeout = 10
        var json = false
        var noObserve = false
        var stateDirectory: String?
        var config: String?
        var logLevel: String?
        var sampleArguments: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                sampleArguments = Array(arguments[index...])
                break
            }
            guard argument.hasPrefix("-") else {
                guard file == nil, !argument.isEmpty else { return nil }
                file = argument
                continue
            }
            let equals = argument.firstIndex(of: "=")
            let name = equals.map { String(argument[..<$0]) } ?? argument
            let inline = equals.map { String(argument[argument.index(after: $0)...]) }
            // An option's value: after `=`, else the next argument unless it looks like an option.
            func value() -> String? {
                if let inline { return inline }
                guard index < arguments.count, !arguments[index].hasPrefix("-") else { return nil }
                index += 1
                return arguments[index - 1]
            }
            switch name {
            case "--json" where inline == nil: json = true
            case "--no-observe" where inline == nil: noObserve = true
            case "--timeout":
                guard let text = value(), let seconds = Int(text) else { return nil }
                timeout = seconds
            case "--state-dir":
                guard let text = value() else { return nil }
                stateDirectory = text
            case "--config":
                guard let text = value() else { return nil }
                config = text
            case "--log-level":
                guard let text = value() else { return nil }
                logLevel = text
            default: return nil
            }
        }
        guard let file else { return nil }
        var state = StateOptions()
        state.stateDirectory = stateDirectory
        state.config = config
        state.logLevel = logLevel
        var command = SandboxCommand()
        command.state = state
        command.file = file
        command.show = nil
        command.timeout = timeout
        command.json = json
        command.noObserve = noObserve
        command.arguments = sampleArguments
        // What ArgumentParser checks after its parse; a failure goes back to it, which reports
        // the error with this command's usage.
        guard (try? state.validate()) != nil, (try? command.validate()) != nil else { return nil }
        return command
    }
}
