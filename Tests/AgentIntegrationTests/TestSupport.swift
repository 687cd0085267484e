// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
@preconcurrency import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenLinux
import WardenSensors
import WardenStore
@_exported import WardenTestSupport

let silentLogger = Logger(label: "shmwarden-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs `body` with `agent` and stops the agent however `body` ends: a failed `#require` must
/// not leave an agent running into the next test. Returns what `body` returns.
@discardableResult
func withAgent<T>(
    _ agent: AgentHarness, keepState: Bool = false, isolation: isolated (any Actor)? = #isolation,
    _ body: (AgentHarness) async throws -> T
) async throws -> T {
    let result: T
    do {
        result = try await body(agent)
    } catch {
        try? await agent.stop(keepState: keepState)
        throw error
    }
    try await agent.stop(keepState: keepState)
    return result
}

/// The agent's real services (store + sensor) in a real ServiceGroup, for one test.
final class AgentHarness: Sendable {
    let stateDirectory: String
    let services: Agent.Services
    private let group: ServiceGroup
    private let runTask: Task<Void, any Error>

    var database: EvidenceDatabase { services.database }
    var metrics: SensorMetrics { services.sensor.metrics }

    init(
        watch: [String], discovery: TmpfsDiscovery = .none, hashSizeCap: Int64 = 256 << 20,
        maxPinnedFiles: Int = 4096, fallbackRescanIntervalMilliseconds: Int = 5000, useFanotify: Bool = true,
        http: IntakeServerConfiguration? = nil, policy: Policy = .none, storeQueueCapacity: Int = 65_536,
        stateDirectory: String? = nil, execMonitor: Bool = false,
        configure: (inout AgentConfiguration) -> Void = { _ in }
    ) async throws {
        self.stateDirectory = stateDirectory ?? makeStateDirectory()
        var configuration = AgentConfiguration(
            stateDirectory: StateDirectory(flag: self.stateDirectory), watchPaths: watch, discovery: discovery,
            hashSizeCap: hashSizeCap, maxPinnedFiles: maxPinnedFiles,
            fallbackRescanIntervalMilliseconds: fallbackRescanIntervalMilliseconds)
        configuration.useFanotify = useFanotify
        configuration.http = http
        configuration.policy = policy
        configuration.storeQueueCapacity = storeQueueCapacity
        // Off unless asked: the monitor takes every memfd program on the host, other tests' too.
        if !execMonitor { configuration.execMonitor = nil }
        configure(&configuration)
        services = try Agent.buildServices(configuration: configuration, logger: silentLogger)
        group = ServiceGroup(
            configuration: .init(
                services: services.all.map { .init(service: $0) }, gracefulShutdownSignals: [],
                logger: silentLogger))
        let group = self.group
        runTask = Task { try await group.run() }
        await services.sensor.waitUntilReady()
    }

    /// Stops the group (graceful shutdown, store flushed) and removes the state directory.
    func stop(keepState: Bool = false) async throws {
        await group.triggerGracefulShutdown()
        try await runTask.value
        if !keepState { try? FileManager.default.removeItem(atPath: stateDirectory) }
    }

    /// Waits until the exec guard's marks are those of policy `generation` (0: the policy it
    /// started with; each `replace` adds one): from then on, execs are guarded as it says.
    func waitForGuard(
        generation: Int = 0, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let readiness = services.sensor.guardReadiness
        let deadline = ContinuousClock.now + timeout
        while readiness.appliedGeneration.load(ordering: .acquiring) < generation {
            guard ContinuousClock.now < deadline else {
                Issue.record(
                    "the exec guard never applied policy generation \(generation)", sourceLocation: sourceLocation)
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Polls the database until `condition` holds for the records (`timeout` at most: CI machines
    /// under load are slow), and returns them.
    @discardableResult
    func waitForFiles(
        timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: ([FileRecord]) -> Bool
    ) async throws -> [FileRecord] {
        let deadline = ContinuousClock.now + timeout
        var records = try database.files()
        while !condition(records) {
            if ContinuousClock.now > deadline {
                Issue.record(
                    "timed out; \(records.count) records: \(records.map(\.path.displayString).prefix(20))",
                    sourceLocation: sourceLocation)
                return records
            }
            try await Task.sleep(for: .milliseconds(20))
            records = try database.files()
        }
        return records
    }

    /// Waits until `condition` holds for the sensor's metrics.
    func waitForMetrics(timeout: Duration = .seconds(20), _ condition: (SensorMetrics) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(metrics) {
            if ContinuousClock.now > deadline { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}

/// Writes `bytes` to `path` the way a dropper does (open, write, close), returning its SHA-256.
@discardableResult
func drop(_ bytes: [UInt8], at path: [UInt8], mode: mode_t = 0o755) throws -> String {
    let fd = try sys_create(path, flags: O_WRONLY, permissions: mode)
    try bytes.withUnsafeBytes { try sys_writeAll(fd, $0) }
    sys_close(fd)
    return sha256Hex(bytes)
}

@discardableResult
func drop(_ bytes: [UInt8], at path: String, mode: mode_t = 0o755) throws -> String {
    try drop(bytes, at: Array(path.utf8), mode: mode)
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// The bytes of a real ELF executable on this machine.
let trueBinary: [UInt8] = Array(FileManager.default.contents(atPath: "/bin/true") ?? Data())

/// Runs a program and returns (exit status, stdout).
@discardableResult
func runProcess(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
    let (status, output, _) = try runProcess(executable, arguments, errors: false)
    return (status, output)
}

/// Runs a program and returns (exit status, stdout, stderr if `errors`).
func runProcess(_ executable: String, _ arguments: [String], errors: Bool) throws -> (Int32, String, String) {
    let child = try ChildProcess.run(executable, arguments)
    return (child.status, child.output, errors ? child.errors : "")
}

/// Runs a program on a thread of its own, so waiting for it never holds a cooperative thread
/// that the agent's HTTP handlers (which run on that pool) may need to answer it.
func runProcessOffPool(_ executable: String, _ arguments: [String]) async throws -> (Int32, String) {
    let (status, output, _) = try await runProcessOffPool(executable, arguments, errors: false)
    return (status, output)
}

/// The same, with stderr if `errors`.
func runProcessOffPool(_ executable: String, _ arguments: [String], errors: Bool) async throws -> (
    Int32, String, String
) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try runProcess(executable, arguments, errors: errors) })
        }.start()
    }
}

/// `sha256sum`'s answer for a file: an independent check of our hash.
func sha256sum(_ path: String) throws -> String {
    let (_, output) = try runProcess("/usr/bin/sha256sum", [path])
    return String(output.prefix(64))
}

/// Every suite that starts an agent runs under this one, one test at a time: they share
/// process-wide state (sysctls, fault rules, the mount table) and the machine's two cores.
@Suite(.serialized) enum AgentIntegration {}
