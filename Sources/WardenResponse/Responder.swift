// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux
import WardenSandbox
import WardenStore
import WardenYara

/// Carries out what the policy decides for each alert or dropped executable, and writes an
/// audit row (and a log line) for every action: performed, planned, skipped or failed.
///
/// Responses run on a thread of their own: they copy files and signal processes, which must
/// not hold up intake. `respond(to:)` is the same work, synchronously (for `ingest` and tests).
public final class Responder: Sendable {
    private let policy: SharedPolicy
    private let database: EvidenceDatabase
    private let vault: QuarantineVault
    /// Runs samples for the `sandbox` action (nil: the action is skipped as not configured).
    private let sandbox: SandboxRunner?
    /// Run sandbox actions where they are decided (the command line) instead of on their own thread.
    private let sandboxInline: Bool
    /// Runs wait here one at a time, each up to its time limit: a flood of alerts cannot queue
    /// more than this many (the rest are skipped and audited).
    private let sandboxQueue = BlockingQueue<SandboxJob>(capacity: 16)
    /// Hashes queued or running: a sample is run once however many alerts ask for it.
    private let sandboxing = Mutex<Set<String>>([])
    private let record: @Sendable ([StoreCommand]) -> Void
    private let logger: Logger
    private let queue = BlockingQueue<Work>(capacity: 16_384)
    private let clock: @Sendable () -> Timestamp
    /// Inodes this responder quarantined lately: the sensor sees the vault's own rename of each
    /// (to its private claim name) as a new file, which must not trigger a second response.
    private let recentlyQuarantined = Mutex<[FileIdentity]>([])
    /// Scans captures with the YARA rules (nil: none configured): the policy's `yara` conditions
    /// wait for its verdicts, and the files a sandboxed sample wrote are scanned too.
    private let yara: YaraScanService?

    struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// - Parameter record: where audit rows and state changes go (the store writer, or a direct apply).
    public init(
        policy: SharedPolicy, database: EvidenceDatabase, vault: QuarantineVault, sandbox: SandboxRunner? = nil,
        sandboxInline: Bool = true, logger: Logger, clock: @escaping @Sendable () -> Timestamp,
        yara: YaraScanService? = nil, record: @escaping @Sendable ([StoreCommand]) -> Void
    ) {
        self.yara = yara
        self.sandbox = sandbox
        self.sandboxInline = sandboxInline
        self.policy = policy
        self.database = database
        self.vault = vault
        self.logger = logger
        self.clock = clock
        self.record = record
    }

    public var currentPolicy: Policy { policy.current }

    /// What the response thread works through.
    enum Work: Sendable {
        /// A stored alert: its evidence is read from the store on the response thread.
        case alert(AlertRecord)
        case subject(PolicySubject)
    }

    /// Queues a stored alert for the response thread; never blocks.
    public func submit(_ alert: AlertRecord) {
        guard currentPolicy.hasRules(for: .alert) else { return }
        enqueue(.alert(alert), alertID: alert.id)
    }

    /// Queues a newly recorded executable for the response thread; never blocks.
    public func submit(droppedExecutable file: FileRecord) {
        let policy = currentPolicy
        guard policy.hasRules(for: .droppedExecutable) else { return }
        let identity = FileIdentity(device: file.device, inode: file.inode)
        guard !recentlyQuarantined.withLock({ $0.contains(identity) }) else { return }
        var subject = PolicyFile(file)
        subject.ownershipTrusted = Self.ownershipTrusted(subject, allowlist: policy.allowlist)
        enqueue(.subject(.droppedExecutable(subject)), alertID: nil)
    }

    /// Queues a file taken from a running process for the response thread; never blocks. A
    /// capture known benign (an allowlisted hash or parent) is recorded and not acted on, and a
    /// program on a watched tmpfs is a dropped executable (the sensor's trigger), not a fileless one.
    public func submit(filelessExecutable file: FileRecord) {
        let policy = currentPolicy
        guard let capture = file.capture, capture.benign == nil, capture.kind != .tmpfs,
            policy.hasRules(for: .filelessExecutable)
        else {
            return
        }
        enqueue(.subject(.filelessExecutable(PolicyFile(file), pid: capture.pid)), alertID: nil)
    }

    /// A full queue is itself audited: a response is never silently lost.
    private func enqueue(_ work: Work, alertID: String?) {
        guard queue.offer(work) else {
            logger.error("response queue full; a response was skipped", metadata: ["alert": "\(alertID ?? "-")"])
            record([
                .action(
                    ActionRecord(
                        time: clock(), alertId: alertID, fileId: nil, rule: "-", action: "respond",
                        mode: currentPolicy.mode, outcome: .skipped, target: nil,
                        detail: "the response queue was full (\(queue.capacity) waiting); no policy was evaluated"))
            ])
            return
        }
    }

    /// The alert's subject: the alert with its correlated files as the store has them now, each
    /// with the basis of its correlation and, where an allowlist glob could vouch for it, whether
    /// its owners do.
    public func subject(for alert: AlertRecord) -> PolicySubject {
        let files = (try? database.files(ids: alert.correlations.map(\.fileID))) ?? []
        // Highest-confidence correlation first, as the alert lists them.
        let order = Dictionary(uniqueKeysWithValues: alert.correlations.enumerated().map { ($1.fileID, $0) })
        let sorted = files.sorted { (order[$0.id ?? -1] ?? .max) < (order[$1.id ?? -1] ?? .max) }
        let policy = currentPolicy
        return .alert(
            id: alert.id, alert.alert,
            files: sorted.map { record in
                var file = PolicyFile(record)
                file.basis = alert.correlations[order[record.id ?? -1] ?? 0].basis
                file.ownershipTrusted = Self.ownershipTrusted(file, allowlist: policy.allowlist)
                return file
            }, authenticated: alert.sender.authenticated)
    }

    /// Whether the owners of `file`'s path vouch for it, checked only when an allowlist glob
    /// matches it (nil otherwise: no glob to vouch, nothing to check).
    static func ownershipTrusted(_ file: PolicyFile, allowlist: Allowlist) -> Bool? {
        guard allowlist.paths.contains(where: { $0.matches(file.path) }) else { return nil }
        guard let status = try? sys_lstat(file.path.bytes), status.device == file.device, status.inode == file.inode
        else { return false }
        let directories = DirectoryChain.statuses(above: file.path.bytes, device: status.device) ?? []
        return OwnershipChain.distrust(
            file: .init(uid: status.uid, mode: status.mode),
            directories: directories.map { .init(uid: $0.uid, mode: $0.mode) },
            trustedOwners: allowlist.trustedOwners) == nil
    }

    /// Runs the response thread until `finish()`.
    public func run() async {
        async let sandboxes: Void = DedicatedThread.run(name: "warden-sandbox") { [self] in
            while true {
                let batch = sandboxQueue.takeAll(limit: 1)
                if batch.isEmpty && sandboxQueue.isClosedAndEmpty { return }
                for job in batch {
                    // Once the agent is stopping, a run not yet started is recorded as skipped:
                    // each may take its whole time limit, and a stop must not wait for a queue
                    // of them (the one under way ends within its own).
                    let (row, commands) =
                        sandboxQueue.isClosed
                        ? (sandboxRow(job, .skipped, "the agent stopped before it ran"), []) : runSandbox(job)
                    if let sha256 = job.file.sha256 { sandboxing.withLock { _ = $0.remove(sha256) } }
                    record([.action(row)] + commands)
                    log(row)
                }
            }
        }
        await DedicatedThread.run(name: "warden-respond") { [self] in
            while true {
                let batch = queue.takeAll(limit: 64)
                if batch.isEmpty && queue.isClosedAndEmpty { break }
                for work in batch {
                    switch work {
                    case .alert(let alert): respond(to: subject(for: alert))
                    case .subject(let subject): respond(to: subject)
                    }
                }
            }
            // No more responses: the sandbox thread finishes what is queued and stops.
            sandboxQueue.close()
        }
        await sandboxes
    }

    /// Lets the response thread finish what is queued and stop.
    public func finish() { queue.close() }

    /// Alerts and dropped executables waiting for a response, and sandbox runs waiting to start.
    public var queueDepths: (responses: Int, sandboxRuns: Int) { (queue.count, sandboxQueue.count) }

    /// The row id of the file recorded with this device and inode, waiting up to a second for
    /// the store writer to commit it.
    private func recordedFileID(device: UInt64, inode: UInt64) -> Int64? {
        let deadline = sys_monotonicNanoseconds() + 1_000_000_000
        while true {
            if let id = (try? database.capturedFile(device: device, inode: inode))??.id { return id }
            if sys_monotonicNanoseconds() > deadline { return nil }
            sys_sleep(milliseconds: 5)
        }
    }

    /// Evaluates the policy for `subject` and carries out each planned action; returns the audit rows.
    @discardableResult
    public func respond(to subject: PolicySubject) -> [ActionRecord] {
        let policy = currentPolicy
        // A file handed over as it was recorded has no row id yet: the writer stores it within
        // milliseconds, and the audit rows (and the events made from them) must name it.
        var subject = subject
        for index in subject.files.indices where subject.files[index].fileID == nil {
            let file = subject.files[index]
            subject.files[index].fileID = recordedFileID(device: file.device, inode: file.inode)
        }
        attachYaraVerdicts(to: &subject, waiting: policy.usesYara(for: subject.trigger))
        var rows: [ActionRecord] = []
        var commands: [StoreCommand] = []
        for planned in PolicyEvaluator.evaluate(policy, for: subject) {
            for (row, extra) in carryOut(planned, subject: subject, mode: policy.mode) {
                rows.append(row)
                commands.append(.action(row))
                commands += extra
                log(row)
            }
        }
        if !commands.isEmpty { record(commands) }
        return rows
    }

    /// Gives each hashed file its YARA verdict: the store's, or (`waiting`, for a policy that
    /// looks at matches) the one of a scan still on its way, waited for up to the scan's own
    /// time limit and a second. A file whose scan gives no answer matches no `yara` condition.
    private func attachYaraVerdicts(to subject: inout PolicySubject, waiting: Bool) {
        let hashed = subject.files.compactMap(\.sha256)
        guard !hashed.isEmpty else { return }
        let stored = (try? database.yaraVerdicts(hashed)) ?? [:]
        let deadline = sys_monotonicNanoseconds() + Int64((yara?.settings.timeoutSeconds ?? 0) + 1) * 1_000_000_000
        for index in subject.files.indices {
            guard let sha = subject.files[index].sha256 else { continue }
            var verdict = stored[sha]
            if waiting, verdict?.isAnswer != true, let board = yara?.board {
                verdict = board.verdict(for: sha, waitingUntil: deadline) ?? verdict
            }
            subject.files[index].yara = verdict
        }
    }

    // MARK: Actions

    private func carryOut(_ planned: PlannedAction, subject: PolicySubject, mode: PolicyMode)
        -> [(ActionRecord, [StoreCommand])]
    {
        let notes = planned.notes.map { " (\($0))" }.joined()
        let row = {
            (outcome: ActionRecord.Outcome, file: PolicyFile?, target: String?, detail: String, errno: Int32?) in
            ActionRecord(
                time: self.clock(), alertId: subject.alertID, fileId: file?.fileID ?? subject.files.first?.fileID,
                rule: planned.rule, action: planned.action.name, mode: mode, outcome: outcome, target: target,
                detail: detail + notes, errno: errno)
        }
        if case .skip(let reason) = planned.disposition {
            return [(row(.skipped, planned.files.first, planned.files.first?.path.displayString, reason, nil), [])]
        }
        let perform = planned.disposition == .perform
        switch planned.action {
        case .record:
            let what =
                subject.alert.map { "alert '\($0.rule)' (\($0.priority.name))" }
                ?? "dropped executable \(subject.files.first?.path.displayString ?? "?")"
            let evidence =
                subject.files.isEmpty
                ? "no file evidence"
                : subject.files.map { "\($0.path) sha256 \($0.sha256 ?? "unhashed")" }.joined(separator: ", ")
            return [(row(.performed, nil, nil, "rule '\(planned.rule)' matched \(what); \(evidence)", nil), [])]

        case .quarantine:
            return planned.files.map { file in
                guard perform else {
                    return (
                        row(
                            .planned, file, file.path.displayString,
                            "would quarantine \(file.path) (sha256 \(file.sha256 ?? "?"))", nil), []
                    )
                }
                do {
                    let identity = FileIdentity(device: file.device, inode: file.inode)
                    recentlyQuarantined.withLock { recent in
                        recent.append(identity)
                        if recent.count > 1024 { recent.removeFirst(recent.count - 1024) }
                    }
                    let entry = try vault.quarantine(
                        file.path, alertIDs: subject.alertID.map { [$0] } ?? [], fileID: file.fileID,
                        expecting: (file.device, file.inode))
                    return (
                        row(
                            .performed, file, file.path.displayString,
                            "quarantined as \(entry.id) (sha256 \(entry.sha256), copy verified) at \(entry.samplePath)",
                            nil),
                        [.quarantined(path: file.path, device: file.device, inode: file.inode)]
                    )
                } catch let error as QuarantineError {
                    let outcome: ActionRecord.Outcome =
                        error.kind == .notFound || error.kind == .replaced ? .skipped : .failed
                    return (row(outcome, file, file.path.displayString, error.detail, error.errno), [])
                } catch {
                    return (row(.failed, file, file.path.displayString, "\(error)", nil), [])
                }
            }

        case .killProcess(let signal):
            guard let pid = subject.alert?.field("proc.pid").flatMap({ Int32($0) }) ?? subject.processID else {
                return [(row(.skipped, nil, nil, "the alert has no proc.pid", nil), [])]
            }
            let expectation = Self.expectation(files: planned.files)
            guard perform else {
                return [
                    (
                        row(
                            .planned, nil, "pid \(pid)",
                            "would send SIG\(signal.rawValue) to pid \(pid) if it still runs \(Self.describe(expectation))",
                            nil), []
                    )
                ]
            }
            let outcome = ProcessKiller.kill(
                pid: pid, expecting: expectation, signal: signal,
                isCaptured: { device, inode in
                    (try? self.database.capturedFile(device: device, inode: inode))??.mountPoint != nil
                }, protected: currentPolicy.protectedProcesses)
            switch outcome {
            case .signalled(let detail): return [(row(.performed, nil, "pid \(pid)", detail, nil), [])]
            case .refused(let detail): return [(row(.skipped, nil, "pid \(pid)", detail, nil), [])]
            case .failed(let detail, let errno): return [(row(.failed, nil, "pid \(pid)", detail, errno), [])]
            }

        case .adviseNoexec:
            let entries = (try? MountTable.readHost()) ?? []
            return mounts(of: planned.files).map { mountPoint, file in
                guard let entry = MountAdvisor.mount(at: mountPoint, in: entries) else {
                    return (
                        row(.skipped, file, mountPoint.displayString, "\(mountPoint) is no longer mounted", nil), []
                    )
                }
                let advice = NoexecAdvice(MountAdvisor.facts(entry))
                let detail =
                    advice.noexec
                    ? "\(mountPoint) is already mounted noexec (\(advice.options.joined(separator: ",")))"
                    : "\(mountPoint) allows exec (\(advice.options.joined(separator: ","))): run '\(advice.remountCommand)'"
                        + (advice.fstabLine.map { "; persistent: \($0)" } ?? "; \(advice.persistence)")
                return (row(.performed, file, mountPoint.displayString, detail, nil), [])
            }

        case .remountNoexec(let flags):
            let options = flags.sorted().map(\.rawValue).joined(separator: ",")
            return mounts(of: planned.files).map { mountPoint, file in
                guard perform else {
                    return (
                        row(
                            .planned, file, mountPoint.displayString,
                            "would remount \(mountPoint) with \(options): mount -o remount,\(options) \(ShellQuote.quote(mountPoint))",
                            nil), []
                    )
                }
                do {
                    let result = try MountAdvisor.remount(mountPoint, adding: flags)
                    let detail =
                        result.alreadySet
                        ? "\(mountPoint) already had \(options)"
                        : "remounted \(mountPoint): \(result.before.joined(separator: ",")) -> \(result.after.joined(separator: ","))"
                            + (result.namespaceUnverified
                                ? " (in shmwarden's mount namespace; the host's, /proc/1/ns/mnt, could not be read to confirm it is the same)"
                                : "")
                    return (row(.performed, file, mountPoint.displayString, detail, nil), [])
                } catch let error as SystemCallError {
                    return (
                        row(
                            .failed, file, mountPoint.displayString, "remount \(mountPoint): \(error)",
                            error.errno.rawValue), []
                    )
                } catch {
                    return (row(.failed, file, mountPoint.displayString, "remount \(mountPoint): \(error)", nil), [])
                }
            }

        case .sandbox(let timeout):
            return planned.files.compactMap { file in
                guard perform else {
                    return (
                        row(
                            .planned, file, file.path.displayString,
                            "would run a copy of \(file.path) in the sandbox (\(timeout) s)", nil), []
                    )
                }
                guard sandbox != nil else {
                    return (row(.skipped, file, file.path.displayString, "no sandbox directory is configured", nil), [])
                }
                let job = SandboxJob(
                    file: file, timeout: timeout, alertID: subject.alertID, rule: planned.rule, mode: mode)
                // Once per sample: a run of the same bytes is on record, or on its way.
                if let sha256 = file.sha256 {
                    if let earlier = (try? database.sandboxRuns(sha256: [sha256]))?.last {
                        return (
                            row(
                                .skipped, file, file.path.displayString,
                                "sha256 \(sha256) was run in the sandbox already, as \(earlier.id) (shmwarden sandbox --show \(earlier.id))",
                                nil),
                            []
                        )
                    }
                    if !sandboxing.withLock({ $0.insert(sha256).inserted }) {
                        return (
                            row(
                                .skipped, file, file.path.displayString,
                                "sha256 \(sha256) is queued for the sandbox already", nil), []
                        )
                    }
                }
                guard sandboxInline else {
                    // A run takes up to its timeout: it must not hold up the next quarantine or kill.
                    if !sandboxQueue.offer(job) {
                        if let sha256 = file.sha256 { sandboxing.withLock { _ = $0.remove(sha256) } }
                        return (
                            row(
                                .skipped, file, file.path.displayString,
                                "the sandbox queue is full (\(sandboxQueue.capacity) runs waiting)", nil), []
                        )
                    }
                    return nil  // audited when the run ends
                }
                defer { if let sha256 = file.sha256 { sandboxing.withLock { _ = $0.remove(sha256) } } }
                return runSandbox(job)
            }
        }
    }

    /// One sandbox run a policy asked for.
    struct SandboxJob: Sendable {
        var file: PolicyFile
        var timeout: Int
        var alertID: String?
        var rule: String
        var mode: PolicyMode
    }

    /// The audit row of a sandbox action.
    private func sandboxRow(_ job: SandboxJob, _ outcome: ActionRecord.Outcome, _ detail: String) -> ActionRecord {
        ActionRecord(
            time: clock(), alertId: job.alertID, fileId: job.file.fileID, rule: job.rule, action: "sandbox",
            mode: job.mode, outcome: outcome, target: job.file.path.displayString, detail: detail)
    }

    /// Runs the file's evidence copy (the original may be gone, or changed since it was recorded).
    private func runSandbox(_ job: SandboxJob) -> (ActionRecord, [StoreCommand]) {
        let file = job.file
        let row = { (outcome: ActionRecord.Outcome, detail: String) in self.sandboxRow(job, outcome, detail) }
        guard let sandbox else { return (row(.skipped, "no sandbox directory is configured"), []) }
        let stored = file.fileID.flatMap { try? database.files(ids: [$0]).first }
        guard let source = stored?.evidencePath.map(PathBytes.init) ?? (file.state == .present ? file.path : nil) else {
            return (row(.skipped, "no copy of its bytes to run"), [])
        }
        var options = SandboxRunner.Options()
        options.timeoutSeconds = job.timeout
        do {
            let report = try sandbox.run(path: source, name: file.path.bytes, options: options)
            for written in report.written { yara?.submit(file: written.evidencePath, sha256: written.sha256) }
            return (
                row(
                    report.setupError == nil ? .performed : .failed,
                    "sandbox run \(report.id): " + report.verdict.joined(separator: " ")),
                [.sandboxRun(report.record(at: clock(), fileID: file.fileID, alertID: job.alertID))]
            )
        } catch {
            return (row(.failed, "sandbox: \(error)"), [])
        }
    }

    /// Each distinct mount holding one of `files` (the real mount, not a `--watch` root below
    /// it), with the first file on it.
    private func mounts(of files: [PolicyFile]) -> [(PathBytes, PolicyFile)] {
        let entries = (try? MountTable.readHost()) ?? []
        var seen = Set<PathBytes>()
        return files.compactMap { file in
            guard let mountPoint = file.mountPoint else { return nil }
            let mount =
                MountAdvisor.mount(containing: file.path, in: entries).map { PathBytes($0.mountPoint) } ?? mountPoint
            guard seen.insert(mount).inserted else { return nil }
            return (mount, file)
        }
    }

    /// What the process must still be running beyond the kernel's facts: the ELF correlated by
    /// kernel facts, when there is one. Nothing the alert says is an expectation.
    static func expectation(files: [PolicyFile]) -> ProcessKiller.Expectation {
        guard let elf = files.first(where: { $0.kind == .elf && $0.basis == .kernel }) else {
            return ProcessKiller.Expectation()
        }
        return ProcessKiller.Expectation(file: (elf.device, elf.inode))
    }

    static func describe(_ expectation: ProcessKiller.Expectation) -> String {
        let kernel = "an executable shmwarden captured on a watched tmpfs, or a memfd or deleted one"
        guard let file = expectation.file else { return kernel }
        return "the evidence file (device \(file.device), inode \(file.inode)), \(kernel)"
    }

    private func log(_ row: ActionRecord) {
        let metadata: Logger.Metadata = [
            "rule": "\(row.rule)", "action": "\(row.action)", "outcome": "\(row.outcome.rawValue)",
            "alert": "\(row.alertId ?? "-")", "target": "\(row.target ?? "-")", "mode": "\(row.mode.rawValue)",
        ]
        switch row.outcome {
        case .failed: logger.error("\(row.detail)", metadata: metadata)
        case .performed where row.action != "record" && row.action != "advise-noexec":
            logger.warning("\(row.detail)", metadata: metadata)
        default: logger.info("\(row.detail)", metadata: metadata)
        }
    }
}
