// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
import Logging
import Synchronization
import WardenCore
import WardenLinux
import WardenStore

/// Takes Falco alerts in (from HTTP or NDJSON), correlates them with file evidence, and stores
/// them. An alert is accepted only once it is committed.
public final class AlertIntake: Sendable {
    /// What became of one submitted alert.
    public enum Outcome: Sendable, Equatable {
        /// Committed (or already stored under the same id: `duplicate`).
        case accepted(id: String, duplicate: Bool, correlations: Int)
        /// Not a valid alert: the reason, for a 400.
        case rejected(String)
        /// The store's queue is full: try again later (503).
        case busy
        /// The commit failed (500); the error is logged.
        case failed
    }

    public let metrics: IntakeMetrics
    private let database: EvidenceDatabase
    private let writer: StoreWriter
    private let mounts: TmpfsMountCache
    private let logger: Logger
    /// Delays after which an alert whose file was not (yet) recorded is correlated again: the
    /// alert can outrun the sensor by a few milliseconds.
    private let retryDelays: [Duration]
    /// Alerts handed over for another look since the late pass last took them, and whether the
    /// pass is running. The lock is only held to append or to swap the array out: the pass keeps
    /// its queues to itself (reorganizing 30,000 waiting alerts inside this lock held every
    /// handler that wanted to add one, up to tens of milliseconds).
    private let late: Mutex<(incoming: [LateAlert], running: Bool)>
    /// When a refused alert was last logged, and how many were refused since without a line:
    /// for bad alerts (400) and for a full queue (503).
    private let rejectionLog = Mutex<(lastNanos: Int64?, unlogged: Int)>((nil, 0))
    private let busyLog = Mutex<(lastNanos: Int64?, unlogged: Int)>((nil, 0))
    /// At most one log line per this many nanoseconds about refused alerts.
    static let rejectionLogInterval: Int64 = 60_000_000_000
    /// Alerts between `correlateLater` and their last look (`/metrics`).
    private let waiting = Atomic<Int>(0)
    /// Told of each stored alert once committed, and again when a late look finds its evidence
    /// (the responder's trigger). Must not block.
    private let onStored: (@Sendable (AlertRecord) -> Void)?
    /// Takes what the process an authenticated alert names runs without a file (a memfd, a
    /// deleted executable, an interpreter's script) before the alert is correlated, so the
    /// correlation and the responses see the capture.
    private let captureProcess: (@Sendable (Int32) async -> ProcessAtArrival)?

    /// What had been committed, and which mounts were known, when an alert was last looked at.
    struct LookedAt: Equatable, Sendable {
        var evidence: UInt64
        var mounts: UInt64
    }

    /// An alert waiting for its file to be recorded: delays are counted from the previous look.
    ///
    /// It keeps the alert as the JSON it came in, and decodes it again only to look at it again
    /// or to hand it to the responder: decoded (a dictionary of every output field, a string for
    /// most of them) an alert took ~11 KB, and a storm of alerts about files never seen keeps
    /// 2.25 s of them waiting (the agent's RSS went from 35 to 450 MB at 16,000 alerts/s, and
    /// freeing them cold was 7% of the handler threads' time). The JSON is an exact-size copy of
    /// its bytes: kept as the decoded alert's string, the same storms peaked at 170–196 MiB
    /// instead of 149–167.
    ///
    /// A class: each pass moves thousands of these between queues and arrays.
    final class LateAlert: Sendable {
        let id: String
        let raw: [UInt8]
        let receivedAt: Timestamp
        let noEvidenceReason: NoEvidenceReason?
        let sender: AlertSender
        let attempt: Int
        let due: ContinuousClock.Instant
        /// The writer's `evidenceGeneration` and the mount table's `version` before the last
        /// look: while both are unchanged, no file or exec was recorded since and no container
        /// mount appeared, and looking again would find nothing new.
        let lookedAt: LookedAt

        init(_ record: AlertRecord, attempt: Int, due: ContinuousClock.Instant, lookedAt: LookedAt) {
            self.id = record.id
            self.raw = Array(record.alert.raw.utf8)
            self.receivedAt = record.receivedAt
            self.noEvidenceReason = record.noEvidenceReason
            self.sender = record.sender
            self.attempt = attempt
            self.due = due
            self.lookedAt = lookedAt
        }

        init(next previous: LateAlert, attempt: Int, due: ContinuousClock.Instant, lookedAt: LookedAt) {
            self.id = previous.id
            self.raw = previous.raw
            self.receivedAt = previous.receivedAt
            self.noEvidenceReason = previous.noEvidenceReason
            self.sender = previous.sender
            self.attempt = attempt
            self.due = due
            self.lookedAt = lookedAt
        }

        /// The record as stored (no correlations yet); nil only if the JSON that decoded when it
        /// arrived no longer does, which cannot happen.
        func record() -> AlertRecord? {
            guard let alert = try? FalcoAlert.decode(Data(raw)) else { return nil }
            return AlertRecord(
                id: id, alert: alert, receivedAt: receivedAt, noEvidenceReason: noEvidenceReason, sender: sender)
        }
    }

    /// A FIFO of late alerts in due order: taking the due ones touches only those.
    struct LateQueue: Sendable {
        private var items: [LateAlert] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }

        mutating func append(_ item: LateAlert) { items.append(item) }

        mutating func popDue(_ now: ContinuousClock.Instant, into out: inout [LateAlert]) {
            while head < items.count, items[head].due <= now {
                out.append(items[head])
                head += 1
            }
            // Drop the consumed front now and then, not on every pass.
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 4096 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
    }

    /// Stored alerts whose file was not found yet and that will be looked at again.
    public var alertsWaitingForEvidence: Int { waiting.load(ordering: .relaxed) }

    public init(
        database: EvidenceDatabase, writer: StoreWriter, mounts: TmpfsMountCache,
        metrics: IntakeMetrics = IntakeMetrics(),
        logger: Logger, retryDelays: [Duration] = [.milliseconds(250), .seconds(2)],
        onStored: (@Sendable (AlertRecord) -> Void)? = nil,
        captureProcess: (@Sendable (Int32) async -> ProcessAtArrival)? = nil
    ) {
        self.onStored = onStored
        self.captureProcess = captureProcess
        self.database = database
        self.writer = writer
        self.mounts = mounts
        self.metrics = metrics
        self.logger = logger
        self.retryDelays = retryDelays
        self.late = Mutex(([], false))
    }

    /// Decodes, correlates and durably stores one alert.
    ///
    /// The correlation runs in the store writer's transaction (`correlateAndStore`): it sees
    /// every file record committed before the alert, a repeat delivery is found by the same
    /// insert that would store it, and no alert pays a read transaction of its own (the WAL
    /// read locks of two per alert were 5% of the agent's CPU under load, half as much as the
    /// correlation itself).
    ///
    /// - Parameter sender: who sent it; stored with it, and an unauthenticated sender's alert
    ///   triggers nothing beyond `record` and `advise-noexec`.
    public func submit(_ body: Data, from sender: AlertSender = .unrecorded) async -> Outcome {
        let started = sys_monotonicNanoseconds()
        metrics.add(.received)
        var received: AlertRecord
        do {
            received = try Self.decode(body, from: sender)
        } catch let error as AlertDecodingError {
            metrics.add(.rejected)
            logRefusal("refused an alert (400): \(error.reason)", in: rejectionLog, at: started)
            return .rejected(error.reason)
        } catch {
            metrics.add(.failed)
            logger.error("alert decoding failed", metadata: ["error": "\(error)"])
            return .failed
        }
        // The capture's record is queued to the writer before the alert's correlation, which
        // therefore sees it. Not for an unauthenticated sender: a capture costs a hash.
        if let captureProcess, received.sender.authenticated,
            let pid = received.alert.field("proc.pid").flatMap({ Int32($0) }), pid > 0
        {
            received.processAtArrival = await captureProcess(pid)
        }
        let tmpfsMounts = mounts.mounts
        let lookedAt = LookedAt(evidence: writer.evidenceGeneration, mounts: mounts.version)
        let stored: StoredAlert
        switch await writer.commit(.correlateAndStore(received, tmpfsMounts: tmpfsMounts)) {
        case .busy:
            metrics.add(.busy)
            logRefusal("refused an alert (503): the store's queue is full", in: busyLog, at: started)
            return .busy
        case .failed, .committed(nil):
            metrics.add(.failed)
            return .failed
        case .committed(let alert?):
            stored = alert
        }
        let record = stored.record
        if stored.duplicate {
            metrics.add(.duplicates)
            return .accepted(id: record.id, duplicate: true, correlations: record.correlations.count)
        }
        metrics.observeLatency(seconds: Double(sys_monotonicNanoseconds() - started) / 1e9)
        // An alert still waiting for its file is answered by the policy once it is found (or
        // after the last look), so a rule with a file condition sees the evidence.
        let waitsForEvidence = record.noEvidenceReason?.mayStillBeFound == true && !retryDelays.isEmpty
        if !waitsForEvidence { onStored?(record) }
        if record.correlations.isEmpty {
            metrics.add(.withoutEvidence)
            if waitsForEvidence { correlateLater(record, lookedAt: lookedAt) }
        } else {
            metrics.add(.correlated)
        }
        return .accepted(id: record.id, duplicate: false, correlations: record.correlations.count)
    }

    /// The file may be recorded moments after the alert arrives: look again a few times. One
    /// scheduler loop serves every waiting alert (a task and a timer per alert cost more than
    /// the lookups themselves under a burst of alerts about files we never see).
    private func correlateLater(_ record: AlertRecord, lookedAt: LookedAt) {
        // Made outside the lock: it copies the JSON.
        let alert = LateAlert(record, attempt: 0, due: .now + retryDelays[0], lookedAt: lookedAt)
        waiting.add(1, ordering: .relaxed)
        let start = late.withLock { state -> Bool in
            state.incoming.append(alert)
            defer { state.running = true }
            return !state.running
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in await runLateCorrelations() }
    }

    /// Late alerts correlated in one read transaction.
    static let lateChunk = 16

    private func runLateCorrelations() async {
        // One queue per attempt: every alert waits the same delay at a given attempt, so each
        // queue is in due order and a pass only takes from its front.
        var queues = Array(repeating: LateQueue(), count: max(1, retryDelays.count))
        while true {
            // Small, frequent passes keep the work smooth instead of a burst every so often.
            try? await Task.sleep(for: .milliseconds(20))
            let idle = queues.allSatisfy(\.isEmpty)
            let incoming = late.withLock { state -> [LateAlert]? in
                if idle && state.incoming.isEmpty {
                    state.running = false
                    return nil
                }
                defer { state.incoming = [] }
                return state.incoming
            }
            guard let incoming else { return }
            for item in incoming { queues[0].append(item) }
            let now = ContinuousClock.now
            var due: [LateAlert] = []
            for index in queues.indices { queues[index].popDue(now, into: &due) }
            // Only alerts looked at before the latest new evidence (or mount) are looked at again.
            let mounts = mounts.mounts
            let current = LookedAt(evidence: writer.evidenceGeneration, mounts: self.mounts.version)
            let stale = due.filter { $0.lookedAt != current }
            var found: [String: AlertRecord] = [:]
            for start in stride(from: 0, to: stale.count, by: Self.lateChunk) {
                // A backlog of late alerts must not hold a cooperative thread against new ones;
                // a chunk shares one read transaction (one WAL read lock, not one per query).
                if start > 0 { await Task.yield() }
                let chunk = stale[start..<min(stale.count, start + Self.lateChunk)].compactMap { $0.record() }
                let results = try? database.inReadTransaction { lookup in
                    try chunk.map { try AlertCorrelator.correlate($0.alert, tmpfsMounts: mounts, lookup: lookup) }
                }
                for (record, result) in zip(chunk, results ?? []) where !result.correlations.isEmpty {
                    var correlated = record
                    correlated.correlations = result.correlations
                    correlated.noEvidenceReason = result.noEvidenceReason
                    found[record.id] = correlated
                }
            }
            for item in due {
                let lastLook = found[item.id] != nil || item.attempt + 1 >= retryDelays.count
                if lastLook { waiting.subtract(1, ordering: .relaxed) }
                if let correlated = found[item.id] {
                    writer.submit(
                        .correlations(
                            alertID: item.id,
                            CorrelationResult(
                                correlations: correlated.correlations, noEvidenceReason: correlated.noEvidenceReason)))
                    metrics.add(.lateCorrelations)
                    onStored?(correlated)
                } else if item.attempt + 1 < retryDelays.count {
                    let next = LateAlert(
                        next: item, attempt: item.attempt + 1, due: now + retryDelays[item.attempt + 1],
                        lookedAt: current)
                    queues[next.attempt].append(next)
                } else if let record = item.record() {
                    onStored?(record)
                }
            }
        }
    }

    /// Decodes `body` into the record to store, not yet correlated (`correlateAndStore` does
    /// that in the writer).
    ///
    /// - Throws: `AlertDecodingError` for a body that is not a valid alert.
    public static func decode(_ body: Data, from sender: AlertSender = .unrecorded) throws -> AlertRecord {
        let alert = try FalcoAlert.decode(body)
        let now = sys_realtime()
        return AlertRecord(
            id: identifier(for: alert), alert: alert,
            receivedAt: Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds), sender: sender)
    }

    /// Logs a refused alert, at most once a minute per kind (with how many went unlogged): Falco's
    /// http_output does not look at the answer's status and never retries, so a misconfigured
    /// Falco (json_output false, a proxy in between) or a full queue loses alerts, and this line
    /// is all that says so.
    private func logRefusal(
        _ message: String, in log: borrowing Mutex<(lastNanos: Int64?, unlogged: Int)>, at nanos: Int64
    ) {
        let unlogged: Int? = log.withLock { state in
            if let last = state.lastNanos, nanos - last < Self.rejectionLogInterval {
                state.unlogged += 1
                return nil
            }
            defer { state = (nanos, 0) }
            return state.unlogged
        }
        guard let unlogged else { return }
        logger.warning(
            "\(message)", metadata: unlogged > 0 ? ["refused-since-last-line": "\(unlogged)"] : [:])
    }

    /// Falcosidekick's `uuid` when present; otherwise 32 hex digits: the alert's time (64 bits,
    /// nanoseconds) followed by the first 64 bits of the SHA-256 of what makes a Falco event
    /// itself (rule, time, hostname, source, output). A repeated delivery of the same event gets
    /// the same id and is stored once; the time in front keeps the ids of a stream of alerts in
    /// order, so the id index grows at its end instead of taking a write on a random page per
    /// alert (with hash-only ids, that index was most of what each commit and checkpoint wrote).
    public static func identifier(for alert: FalcoAlert) -> String {
        if let uuid = alert.uuid { return uuid }
        var hasher = SHA256()
        let separator: [UInt8] = [0]
        for var part in [alert.rule, alert.timeText, alert.hostname ?? "", alert.source ?? "", alert.output ?? ""] {
            part.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            separator.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        let time = UInt64(bitPattern: alert.time.nanosecondsSinceEpoch)
        for shift in stride(from: 60, through: 0, by: -4) { hex.append(digits[Int((time >> UInt64(shift)) & 0xf)]) }
        for byte in hasher.finalize().prefix(8) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
