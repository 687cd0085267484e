// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenLinux
import WardenSandbox
import WardenSensors
import WardenStore

/// `shmwarden-bench`: the baselines and probes the `scripts/bench-*` commands measure the agent
/// against. Not installed; the shipped `shmwarden` carries none of it.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shmwarden-bench", abstract: "Benchmark helpers for scripts/bench-*.",
        subcommands: [Hash.self, BareServer.self, SandboxRuns.self, FleetSink.self, FleetDrain.self])

    /// `hash FILE`: hashes one file with the sensor's hasher and prints the digest;
    /// `scripts/bench-sensor` times it against sha256sum and openssl.
    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a file's SHA-256 as the sensor computes it.")

        @Argument var file: String

        func run() throws {
            let fd = try sys_open(Array(file.utf8), flags: O_RDONLY)
            defer { sys_close(fd) }
            print("\(try FileHasher().hash(fd, sizeCap: .max).sha256 ?? "")  \(file)")
        }
    }

    /// `bare-server --port P [--decoding codable|warden]`: a Hummingbird server that only decodes
    /// each posted alert and answers 200: the ceilings `scripts/bench-intake` compares the real,
    /// durable intake against.
    struct BareServer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bare-server", abstract: "Decode-only HTTP server (benchmark baseline).")

        @Option var port: Int = 2805
        @Option(help: "codable: Hummingbird's request.decode into a Codable alert; warden: the agent's alert reader.")
        var decoding: BareDecodeServer.Decoding = .warden

        func run() async throws {
            try await BareDecodeServer.run(host: "127.0.0.1", port: port, decoding: decoding)
        }
    }

    /// `sandbox-runs FILE --runs N --state-dir D`: runs FILE in the sandbox N times in this one
    /// process, as the agent's `sandbox` action does, and prints for each run the milliseconds
    /// from the call to the report and those of its durable store; `scripts/bench-sandbox` sets
    /// these warm runs beside bubblewrap's.
    struct SandboxRuns: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sandbox-runs", abstract: "Time sandbox runs made in one process.")

        @Option(name: .customLong("state-dir")) var stateDirectory: String
        @Option var runs = 10
        @Argument var file: String

        func run() throws {
            guard getuid() == 0 else { throw ValidationError("the sandbox needs root (namespaces, mounts, seccomp)") }
            guard (1...10_000).contains(runs) else { throw ValidationError("--runs must be 1 to 10000") }
            let directory = StateDirectory(flag: stateDirectory)
            try directory.prepare()
            let database = try EvidenceDatabase(path: directory.databasePath, connections: .single)
            let runner = SandboxRunner(directory: directory.sandboxPath)
            func milliseconds(since start: Int64) -> String {
                String(format: "%.3f", Double(sys_monotonicNanoseconds() - start) / 1e6)
            }
            for _ in 0..<runs {
                let started = sys_monotonicNanoseconds()
                let report = try runner.run(path: PathBytes(file))
                let ran = milliseconds(since: started)
                guard report.setupError == nil else { throw ValidationError(report.setupError ?? "") }
                let storing = sys_monotonicNanoseconds()
                let now = Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9))
                try database.apply([.sandboxRun(report.record(at: now))])
                print(ran, milliseconds(since: storing))
            }
            try database.close()
        }
    }
}

extension BareDecodeServer.Decoding: ExpressibleByArgument {}
