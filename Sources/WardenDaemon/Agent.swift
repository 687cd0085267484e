// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import WardenCore
import WardenFleet
import WardenHTTP
import WardenIntake
import WardenLinux
import WardenResponse
import WardenSandbox
import WardenSensors
import WardenStore
import WardenYara

/// The composition root: the only place that knows every concrete type.
public enum Agent {
    /// The services of `shmwarden run`, in start order (the store first, so it stops last).
    public struct Services: Sendable {
        public var store: StoreService
        public var sensor: SensorService
        public var database: EvidenceDatabase
        public var intake: AlertIntake
        /// Carries out the policy for alerts and dropped executables.
        public var responder: ResponderService
        /// The HTTP listeners (TCP, and the unix socket when configured); started last, so they
        /// stop taking alerts first.
        public var http: [any Service]
        /// The TCP port the intake listens on, once it does (useful with port 0).
        public let listening: ListeningPort

        /// Prunes per the retention settings, when there are any.
        public var retention: (any Service)?
        /// Sends the outbox to the outputs, when there are any.
        public var forwarder: FleetForwarder?

        /// Start order; they stop in reverse, so intake stops first, then the rest, the
        /// forwarder just before the store (its last delivery cursors still get written).
        public var all: [any Service] {
            [store] + (forwarder.map { [$0] } ?? []) + [responder, sensor] + (retention.map { [$0] } ?? []) + http
        }
    }

    /// What the intake runs before it correlates an alert naming a pid: the process's fileless
    /// payload captured on one thread of its own (reading its maps and hashing block), 64
    /// waiting at most; past that the alert goes on without (the exec monitor took most such
    /// payloads at their exec).
    static func captureFirst(_ capturer: ProcessCapturer?) -> (@Sendable (Int32) async -> ProcessAtArrival)? {
        guard let capturer else { return nil }
        let pool = WorkPool(name: "warden-pcap", threads: 1, queued: 64)
        return { pid in
            guard (try? sys_lstat(Array("/proc/\(pid)".utf8))) != nil else { return .gone }
            _ = try? await pool.run {
                if capturer.mayHoldSomethingToCapture(pid: pid) { capturer.capture(pid: pid, forAlert: true) }
            }
            return .running
        }
    }

    /// Builds the database, the store writer and the sensor for `configuration`.
    public static func buildServices(configuration: AgentConfiguration, logger: Logger) throws -> Services {
        try configuration.stateDirectory.prepare()
        let database = try EvidenceDatabase(path: configuration.stateDirectory.databasePath)
        var observer: StoreWriter.CommitObserver?
        if let path = configuration.commitLogPath {
            let log = try CommitLog(path: path)
            observer = { written, at in log.append(written, at: at) }
        }
        let writer = StoreWriter(
            database: database, capacity: configuration.storeQueueCapacity, clock: { sys_monotonicNanoseconds() },
            observer: observer,
            onError: { error in logger.error("store error", metadata: ["error": "\(error)"]) })
        let forwarder = try Self.forwarder(
            configuration: configuration, database: database, writer: writer, logger: logger)
        let budget = StateBudget(directory: configuration.stateDirectory.path, budget: configuration.storage)
        let vault = try QuarantineVault(directory: configuration.stateDirectory.quarantinePath, budget: budget)
        for line in vault.recover() { logger.warning("quarantine journal: \(line)") }
        let policy = SharedPolicy(configuration.policy)
        let yara = configuration.yaraRules.map { rules in
            YaraScanService(
                rules: SharedYaraRules(rules, paths: configuration.yara.rules), settings: configuration.yara,
                logger: logger, clock: SensorService.wallClock, record: { writer.submit(.yaraVerdict($0)) })
        }
        let policyUsesYara =
            configuration.policy.execGuard.yara != nil || configuration.policy.rules.contains { $0.match.yara != nil }
        if policyUsesYara && configuration.yaraRules == nil {
            logger.warning(
                "the policy has yara conditions but no YARA rules are configured (yara.rules): its yara rules match nothing, and guard.yara answers every exec per guard.failure"
            )
        }
        if let rules = configuration.yaraRules {
            logger.notice(
                "YARA rules loaded",
                metadata: [
                    "yara.rules": "\(rules.rules.ruleCount)", "yara.files": "\(rules.files.joined(separator: ","))",
                    "yara.fingerprint": "\(rules.fingerprint)",
                ])
            for warning in rules.warnings { logger.warning("YARA rules: \(warning)") }
        }
        let responder = Responder(
            policy: policy, database: database, vault: vault,
            sandbox: SandboxRunner(directory: configuration.stateDirectory.sandboxPath), sandboxInline: false,
            logger: logger, clock: SensorService.wallClock, yara: yara,
            record: { commands in for command in commands { writer.submit(command) } })
        logger.notice(
            "policy loaded",
            metadata: [
                "policy.mode": "\(configuration.policy.mode.rawValue)",
                "policy.rules": "\(configuration.policy.rules.count)",
                "policy.files": "\(configuration.policy.sources.joined(separator: ","))",
            ])
        var sensorConfiguration = configuration.sensorConfiguration
        sensorConfiguration.stateBudget = budget
        sensorConfiguration.execMonitor?.ignoredUIDs = SandboxRunner.identities
        let sensor = SensorService(
            configuration: sensorConfiguration, writer: writer, logger: logger,
            onExecutableRecorded: { responder.submit(droppedExecutable: $0) }, policy: policy,
            recordedFile: { device, inode in try? database.capturedFile(device: device, inode: inode) },
            onProcessCaptured: { responder.submit(filelessExecutable: $0) }, yara: yara)
        let intake = AlertIntake(
            database: database, writer: writer,
            mounts: TmpfsMountCache(extra: configuration.sensorConfiguration.watchPaths), logger: logger,
            onStored: { responder.submit($0) }, captureProcess: Self.captureFirst(sensor.processCapturer))
        let listening = ListeningPort()
        // The sensor's counters and what waits where now, after the intake's own metrics.
        let agentMetrics: @Sendable () -> String = {
            let sensorQueues = sensor.queueDepths
            let responseQueues = responder.queueDepths
            return sensor.metrics.prometheusText() + (forwarder?.metrics.prometheusText() ?? "")
                + PrometheusGauge.text([
                    PrometheusGauge(
                        "shmwarden_store_queue_depth", writer.depth, help: "Commands waiting for the store writer."),
                    PrometheusGauge(
                        "shmwarden_store_sync_waiting", writer.awaitingSync,
                        help: "Committed alerts and actions whose answer waits for the WAL sync."),
                    PrometheusGauge(
                        "shmwarden_capture_queue_depth", sensorQueues.capture, help: "Files waiting to be captured."),
                    PrometheusGauge(
                        "shmwarden_evidence_queue_depth", sensorQueues.evidence,
                        help: "Executables waiting for their evidence copy."),
                    PrometheusGauge(
                        "shmwarden_alerts_waiting_for_evidence", intake.alertsWaitingForEvidence,
                        help: "Stored alerts whose file was not found yet and that will be looked at again."),
                    PrometheusGauge(
                        "shmwarden_yara_queue_depth", yara?.depth ?? 0,
                        help: "Captures waiting for their YARA scan."),
                    PrometheusGauge(
                        "shmwarden_response_queue_depth", responseQueues.responses,
                        help: "Alerts and dropped executables waiting for the policy's response."),
                    PrometheusGauge(
                        "shmwarden_sandbox_queue_depth", responseQueues.sandboxRuns,
                        help: "Sandbox runs waiting to start."),
                    PrometheusGauge(
                        "shmwarden_state_bytes", Int(clamping: budget.usedBytes),
                        help: "Bytes the state directory holds (evidence, quarantine, database), as last measured."),
                    PrometheusGauge(
                        "shmwarden_state_over_budget", budget.isOverBudget ? 1 : 0,
                        help: "1 while evidence copies are refused by storage.budget or storage.keep-free."),
                    PrometheusGauge(
                        "shmwarden_intake_insecure", configuration.http?.insecure == true ? 1 : 0,
                        help: "1 when the TCP intake takes plain HTTP without authentication (intake.insecure)."),
                ])
        }
        var http: [any Service] = []
        var tlsContext: IntakeTLSContext?
        if let server = configuration.http {
            if let problem = server.problem { throw AgentError(problem) }
            if let tls = server.tls {
                do {
                    tlsContext = try IntakeTLSContext(tls)
                } catch {
                    throw AgentError(
                        "the intake's TLS files cannot be used (\(tls.certificate), \(tls.key), \(tls.clientCA)): \(error)"
                    )
                }
            }
            if server.insecure {
                logger.warning(
                    "the intake listens with plain HTTP (intake.insecure): anyone who can connect may post alerts; they are stored but trigger nothing beyond record and advise-noexec",
                    metadata: ["intake.insecure": "true"])
            }
            let reports = ReportAssembler(
                database: database, quarantineDirectory: configuration.stateDirectory.quarantinePath)
            // SQLite reads and /proc reads block: reports are built off the cooperative pool, on
            // two threads with 32 requests waiting at most (more get 503 and Retry-After).
            let reportPool = WorkPool(name: "warden-report", threads: 2, queued: 32)
            let report: IntakeRoutes.ReportRenderer = { id, json in
                try await reportPool.run { try reports.rendered(alertID: id, format: json ? .json : .markdown) }
            }
            let router = IntakeRoutes.router(
                intake: intake, configuration: server, extraMetrics: agentMetrics, report: report)
            http.append(
                Application(
                    router: router, server: IntakeServerConfiguration.tcpServer(tls: tlsContext),
                    configuration: .init(address: .hostname(server.host, port: server.port), serverName: "shmwarden"),
                    onServerRunning: { channel in
                        let port = channel.localAddress?.port ?? server.port
                        listening.set(port)
                        logger.notice(
                            "listening for Falco alerts", metadata: ["http.address": "\(server.host):\(port)"])
                    },
                    logger: logger))
            if let socketPath = server.unixSocketPath {
                unlink(socketPath)
                http.append(
                    Application(
                        router: IntakeRoutes.router(
                            intake: intake, configuration: server, extraMetrics: agentMetrics, report: report),
                        server: IntakeServerConfiguration.unixServer(peers: server.unixSocketPeers, logger: logger),
                        configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "shmwarden"),
                        onServerRunning: { _ in
                            chmod(
                                socketPath,
                                server.unixSocketPeers.uids.isEmpty && server.unixSocketPeers.gids.isEmpty
                                    ? 0o600 : 0o666)
                            logger.notice("listening for Falco alerts", metadata: ["http.socket": "\(socketPath)"])
                        },
                        logger: logger))
            }
        }
        var services = Services(
            store: StoreService(writer: writer), sensor: sensor, database: database, intake: intake,
            responder: ResponderService(
                responder: responder, policy: policy, policyPath: configuration.policyPath, logger: logger,
                onReload: { [tlsContext] in
                    if let yara { Self.reloadYara(yara.rules, logger: logger) }
                    guard let tlsContext else { return }
                    do {
                        try tlsContext.reload()
                        logger.notice(
                            "intake TLS certificates reloaded",
                            metadata: ["tls.certificate": "\(tlsContext.settings.certificate)"])
                    } catch {
                        logger.error(
                            "intake TLS certificates not reloaded; the ones in use stay",
                            metadata: ["error": "\(error)"])
                    }
                }),
            http: http, listening: listening)
        services.forwarder = forwarder
        if let retention = configuration.retention {
            services.retention = RetentionService(
                database: database, budget: budget, quarantineDirectory: configuration.stateDirectory.quarantinePath,
                sandboxDirectory: configuration.stateDirectory.sandboxPath,
                settings: retention, logger: logger, clock: SensorService.wallClock)
        }
        return services
    }

    /// Recompiles the YARA rules at SIGHUP; a set that does not compile leaves the last good one.
    static func reloadYara(_ rules: SharedYaraRules, logger: Logger) {
        switch rules.reload() {
        case .success(let set):
            logger.notice(
                "YARA rules reloaded",
                metadata: ["yara.rules": "\(set.rules.ruleCount)", "yara.fingerprint": "\(set.fingerprint)"])
        case .failure(let errors):
            logger.error(
                "YARA rules not reloaded; the last good set stays",
                metadata: [
                    "errors": "\(errors.description)",
                    "yara.fingerprint": "\(rules.current?.fingerprint ?? "-")",
                ])
        }
    }

    /// The outbox and its forwarder, when outputs are configured: every record that makes an
    /// event queues it from here on.
    static func forwarder(
        configuration: AgentConfiguration, database: EvidenceDatabase, writer: StoreWriter, logger: Logger
    ) throws -> FleetForwarder? {
        guard !configuration.outputs.isEmpty else { return nil }
        let outbox = Outbox(
            hostname: configuration.hostname, limit: configuration.outbox.limit,
            outputs: configuration.outputs.map(\.name))
        let forwarder: FleetForwarder
        do {
            forwarder = try FleetForwarder(
                outputs: configuration.outputs, database: database, outbox: outbox, logger: logger,
                clock: SensorService.wallClock, storeCommands: { writer.appliedCommands },
                record: { command in writer.offer(command, committed: { _ in }) })
        } catch {
            throw AgentError(error.description)
        }
        database.setOutbox(outbox)
        try database.prepareOutbox()
        logger.notice(
            "events go to the outputs",
            metadata: [
                "outputs": "\(configuration.outputs.map { "\($0.name)=\($0.url)" }.joined(separator: ","))",
                "outbox.limit": "\(configuration.outbox.limit)",
            ])
        return forwarder
    }

    /// `shmwarden run`: serves until SIGTERM or SIGINT, then shuts down in reverse order and
    /// flushes the store.
    public static func run(configuration: AgentConfiguration, logger: Logger) async throws {
        // SIGHUP's default action ends the process. Until the responder traps it, one sent early
        // (`shmwarden guard reload`, systemd's ExecReload, a script that saw the process start)
        // must not: it is ignored then, and the agent announces itself (log line, pid file, which
        // `guard reload` reads) only once reloads are armed.
        signal(SIGHUP, SIG_IGN)
        sys_raiseOpenFileLimit()
        umask(0o077)
        var services = try buildServices(configuration: configuration, logger: logger)
        let pidFile = configuration.stateDirectory.pidFilePath
        services.responder.onReloadArmed = {
            logger.notice(
                "shmwarden running",
                metadata: ["state.dir": "\(configuration.stateDirectory.path)", "pid": "\(getpid())"])
            try? "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.all.map {
                    .init(
                        service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        try await group.run()
        logger.notice("shmwarden stopped", metadata: ["files.recorded": "\(services.sensor.metrics[.filesRecorded])"])
    }
}

/// Why the agent cannot start, in one line.
public struct AgentError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Appends `<monotonic ns>\t<path>` per committed record: the benchmark's view of commit time.
final class CommitLog: Sendable {
    private let handle: FileHandle

    init(path: String) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func append(_ paths: [PathBytes], at monotonicNanos: Int64) {
        guard !paths.isEmpty else { return }
        var text = ""
        for path in paths { text += "\(monotonicNanos)\t\(path.displayString)\n" }
        handle.write(Data(text.utf8))
    }
}

extension Agent {
    /// `shmwarden scan`: one pass over the watched roots, recorded through the same pipeline.
    public static func scan(
        configuration: AgentConfiguration, logger: Logger, progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> ScanSummary {
        umask(0o077)
        try configuration.stateDirectory.prepare()
        let database = try EvidenceDatabase(path: configuration.stateDirectory.databasePath)
        let yara = configuration.yaraRules.map { rules in
            YaraFileScanner(
                rules: SharedYaraRules(rules, paths: configuration.yara.rules), settings: configuration.yara)
        }
        return try Scanner.scan(
            configuration: configuration.sensorConfiguration, database: database, logger: logger, yara: yara,
            progress: progress)
    }
}

/// The port the HTTP intake bound, published once the server runs.
public final class ListeningPort: Sendable {
    private let state = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    public init() {}

    func set(_ port: Int) {
        let waiters = state.withLock { state in
            state.port = port
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    /// Waits until the server listens, and returns its port.
    public func port() async -> Int {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Int? in
                if let port = state.port { return port }
                state.waiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}
