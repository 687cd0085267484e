// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import ServiceLifecycle
import Synchronization
import WardenCore
import WardenLinux
import WardenStore
import WardenYara

/// The tmpfs sensor as a service: the inotify/fanotify reader thread, the capture thread, the
/// evidence thread, and (when configured) the exec monitor's thread.
///
/// On graceful shutdown the reader stops, hands over what it still had pinned, and the capture
/// and evidence threads drain their queues into the store writer before `run()` returns.
public final class SensorService: Service, Sendable {
    public let metrics: SensorMetrics
    private let configuration: SensorConfiguration
    private let writer: StoreWriter
    private let logger: Logger
    private let jobs: BlockingQueue<CaptureJob>
    private let evidenceJobs: BlockingQueue<EvidenceJob>
    private let readyHandlers = Mutex<(isReady: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    private let clock: @Sendable () -> Timestamp
    /// Told of each executable recorded present with a hash, after its record was handed to the
    /// writer (the responder's `dropped-executable` trigger). Must not block.
    private let onExecutableRecorded: (@Sendable (FileRecord) -> Void)?
    /// The policy whose `guard` section drives the exec guard (nil: no guard thread at all).
    private let policy: SharedPolicy?
    /// Which policy generation the exec guard's marks are for.
    public let guardReadiness = GuardReadiness()
    /// Takes what a running process runs without a watched file (nil: the exec monitor is off).
    /// The intake asks it about the process an alert names.
    public let processCapturer: ProcessCapturer?
    /// Scans every capture with the YARA rules (nil: no rules configured).
    public let yara: YaraScanService?

    public init(
        configuration: SensorConfiguration, writer: StoreWriter, metrics: SensorMetrics = SensorMetrics(),
        logger: Logger, clock: @escaping @Sendable () -> Timestamp = SensorService.wallClock,
        onExecutableRecorded: (@Sendable (FileRecord) -> Void)? = nil, policy: SharedPolicy? = nil,
        recordedFile: @escaping @Sendable (_ device: UInt64, _ inode: UInt64) -> FileRecord? = { _, _ in nil },
        onProcessCaptured: (@Sendable (FileRecord) -> Void)? = nil, yara: YaraScanService? = nil
    ) {
        self.yara = yara
        self.onExecutableRecorded = onExecutableRecorded
        self.policy = policy
        self.configuration = configuration
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        self.jobs = BlockingQueue(capacity: configuration.captureQueueCapacity)
        let evidenceJobs = BlockingQueue<EvidenceJob>(capacity: configuration.evidenceQueueCapacity)
        self.evidenceJobs = evidenceJobs
        self.clock = clock
        self.processCapturer = configuration.execMonitor.map { configured in
            var settings = configured
            settings.excludedPaths += configuration.excludedPaths
            return ProcessCapturer(
                settings: settings, metrics: metrics, logger: logger, policy: policy,
                watchedRoots: { WatchRoots.byDevice(configuration: configuration, mounts: $0) },
                recordedFile: recordedFile,
                record: { [writer] command in writer.offer(command, committed: { _ in }) },
                keepEvidence: { job in
                    yara?.submit(duplicating: job.descriptor, sha256: job.sha256, path: job.path)
                    return evidenceJobs.offer(job)
                }, onCaptured: { onProcessCaptured?($0) }, clock: clock)
        }
    }

    /// Files waiting to be captured, and executables waiting for their evidence copy.
    public var queueDepths: (capture: Int, evidence: Int) { (jobs.count, evidenceJobs.count) }

    /// The real-time clock as a `Timestamp`.
    public static let wallClock: @Sendable () -> Timestamp = {
        let now = sys_realtime()
        return Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds)
    }

    /// Returns once every initial root is watched (tests and the daemon's log use it).
    public func waitUntilReady() async {
        await withCheckedContinuation { continuation in
            let resumeNow = readyHandlers.withLock { state -> Bool in
                if state.isReady { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    public func run() async throws {
        let engine = try SensorEngine(
            configuration: configuration, metrics: metrics, logger: logger, jobs: jobs, now: clock)
        let evidenceJobs = self.evidenceJobs
        let keeper = EvidenceKeeper(
            vault: try EvidenceVault(root: configuration.evidenceDirectory, budget: configuration.stateBudget),
            metrics: metrics, logger: logger,
            emit: { [writer] in writer.submit($0) })
        let processor = CaptureProcessor(
            configuration: configuration, metrics: metrics, logger: logger, now: clock,
            emit: { [writer, onExecutableRecorded] command in
                writer.submit(command)
                if let onExecutableRecorded, case .record(let file, _) = command, file.isExecutable,
                    file.state == .present, file.sha256 != nil
                {
                    onExecutableRecorded(file)
                }
            }, keepEvidence: { evidenceJobs.put($0) },
            scan: self.yara.map { yara in { fd, sha, path in yara.submit(duplicating: fd, sha256: sha, path: path) } })
        let execGuard = try policy.map { policy in
            try ExecGuard(
                configuration: configuration, policy: policy, metrics: metrics, logger: logger,
                readiness: guardReadiness, now: clock,
                record: { [writer] command in writer.offer(command, committed: { _ in }) },
                capture: { [jobs = self.jobs] job in jobs.offer(job) },
                yara: self.yara.map { ($0.rules, $0.settings, $0.board) })
        }
        let guardHandle = execGuard.map(UncheckedBox.init)
        let monitorHandle = startExecMonitor().map(UncheckedBox.init)
        let stopHandle = UncheckedBox(engine)
        let processorHandle = UncheckedBox(processor)
        let keeperHandle = UncheckedBox(keeper)
        let jobs = self.jobs
        let yara = self.yara
        // Scans run beside the sensor's threads and finish what is queued once they stopped
        // (the exec monitor and the capture thread queue scans until then).
        async let scans: Void = yara?.run() ?? ()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await DedicatedThread.run(name: "warden-evidence") {
                        while true {
                            let batch = evidenceJobs.takeAll(limit: EvidenceKeeper.batchLimit)
                            if batch.isEmpty && evidenceJobs.isClosedAndEmpty { break }
                            keeperHandle.value.process(batch)
                        }
                    }
                }
                group.addTask {
                    await DedicatedThread.run(name: "warden-capture") {
                        while true {
                            let batch = jobs.takeAll(limit: 256)
                            if batch.isEmpty && jobs.isClosedAndEmpty { break }
                            for job in batch { processorHandle.value.process(job) }
                        }
                        evidenceJobs.close()
                    }
                }
                if let guardHandle {
                    group.addTask {
                        await DedicatedThread.run(name: "warden-guard") { guardHandle.value.run() }
                    }
                }
                if let monitorHandle {
                    group.addTask {
                        await DedicatedThread.run(name: "warden-exec") { monitorHandle.value.run() }
                    }
                }
                group.addTask { [self] in
                    await DedicatedThread.run(name: "warden-inotify") {
                        stopHandle.value.run(ready: { self.markReady() })
                        jobs.close()
                    }
                }
            }
        } onGracefulShutdown: {
            guardHandle?.value.requestStop()
            monitorHandle?.value.requestStop()
            stopHandle.value.requestStop()
        }
        yara?.finish()
        await scans
    }

    /// The exec monitor, subscribed; nil when it is off or the kernel refuses the subscription
    /// (no CAP_NET_ADMIN, no connector), which is logged: the tmpfs watches work without it.
    private func startExecMonitor() -> ExecMonitor? {
        guard let processCapturer else { return nil }
        do {
            let monitor = try ExecMonitor(capturer: processCapturer, metrics: metrics, logger: logger)
            logger.notice(
                "exec monitor on: memfd, deleted and interpreted payloads are captured from running processes")
            return monitor
        } catch {
            logger.warning(
                "exec monitor off: the kernel's process events connector refused the subscription",
                metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func markReady() {
        let waiters = readyHandlers.withLock { state in
            state.isReady = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Hands a thread-confined object to the one thread that uses it.
///
/// - Important: `@unchecked Sendable` is sound here only because each box is used by exactly one
///   thread after it is created (the engine's `requestStop` is the one cross-thread call, and it
///   only writes to an eventfd).
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
