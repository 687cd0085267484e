// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenResponse
import WardenStore
import WardenSandbox

/// `shmwarden bench-sandbox-runs FILE --runs N`: runs FILE in the sandbox N times in this one
/// process, as the agent's `sandbox` action does, and prints for each run the milliseconds
/// from the call to the report (copy, hash, jail, report) and those of its durable store, one
/// run per line. Hidden; `scripts/bench-sandbox` sets these warm runs beside bubblewrap's, to
/// tell the jail's cost from the process start that every `shmwarden sandbox` command pays.
struct BenchSandboxRunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sandbox-runs", abstract: "Time sandbox runs made in one process.", shouldDisplay: false)

    @OptionGroup var state: StateOptions
    @Option var runs = 10
    @Argument var file: String

    func run() throws {
        guard getuid() == 0 else { throw UsageError(message: "the sandbox needs root (namespaces, mounts, seccomp)") }
        guard (1...10_000).contains(runs) else { throw ValidationError("--runs must be 1 to 10000") }
        let directory = state.state
        try directory.prepare()
        let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
        let runner = SandboxRunner(directory: directory.sandboxPath)
        let path = PathArgument.resolved(file) ?? PathArgument.absolute(file)
        func milliseconds(since start: Int64) -> String {
            String(format: "%.3f", Double(sys_monotonicNanoseconds() - start) / 1e6)
        }
        for _ in 0..<runs {
            let started = sys_monotonicNanoseconds()
            let report = try runner.run(path: path)
            let ran = milliseconds(since: started)
            guard report.setupError == nil else { throw UsageError(message: report.setupError ?? "") }
            let storing = sys_monotonicNanoseconds()
            let now = Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9))
            try database.apply([.sandboxRun(report.record(at: now))])
            print(ran, milliseconds(since: storing))
        }
        try database.close()
    }
}
