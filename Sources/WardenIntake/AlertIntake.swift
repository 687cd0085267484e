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
    /// Alerts waiting for another look, one queue per attempt: every alert waits the same delay
    /// at a given attempt, so each queue is in due order and a pass only takes from its front.
    private let late: Mutex<(queues: [LateQueue], running: Bool)>
    /// Told of each stored alert once committed, and again when a late look finds its evidence
    /// (the responder's trigger). Must not block.
    private let onStored: (@Sendable (AlertRecord) -> Void)?

    /// An alert waiting for its file to be recorded: delays are counted from the previous look.
    struct LateAlert: Sendable {
        var record: AlertRecord
        var attempt: Int
        var due: ContinuousClock.Instant
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

    public init(
        database: EvidenceDatabase, writer: StoreWriter, mounts: TmpfsMountCache, metrics: IntakeMetrics = IntakeMetrics(),
        logger: Logger, retryDelays: [Duration] = [.milliseconds(250), .seconds(2)],
        onStored: (@Sendable (AlertRecord) -> Void)? = nil
    ) {
        self.onStored = onStored
        self.database = database
        self.writer = writer
        self.mounts = mounts
        self.metrics = metrics
        self.logger = logger
        self.retryDelays = retryDelays
        self.late = Mutex((Array(repeating: LateQueue(), count: max(1, retryDelays.count)), false))
    }

    /// Decodes, correlates and durably stores one alert.
    public func submit(_ body: Data) async -> Outcome {
        let started = sys_monotonicNanoseconds()
        metrics.add(.received)
        let record: AlertRecord
        let duplicate: Bool
        do {
            (record, duplicate) = try Self.prepare(body, database: database, mounts: mounts.mounts)
        } catch let error as AlertDecodingError {
            metrics.add(.rejected)
            return .rejected(error.reason)
        } catch {
            metrics.add(.failed)
            logger.error("alert correlation failed", metadata: ["error": "\(error)"])
            return .failed
        }
        if duplicate {
            metrics.add(.duplicates)
            return .accepted(id: record.id, duplicate: true, correlations: record.correlations.count)
        }
        switch await writer.commit(.alert(record)) {
        case .busy:
            metrics.add(.busy)
            return .busy
        case .failed:
            metrics.add(.failed)
            return .failed
        case .committed:
            break
        }
        metrics.observeLatency(seconds: Double(sys_monotonicNanoseconds() - started) / 1e9)
        // An alert still waiting for its file is answered by the policy once it is found (or
        // after the last look), so a rule with a file condition sees the evidence.
        let waitsForEvidence = record.noEvidenceReason == .neverSeen && !retryDelays.isEmpty
        if !waitsForEvidence { onStored?(record) }
        if record.correlations.isEmpty {
            metrics.add(.withoutEvidence)
            if record.noEvidenceReason == .neverSeen && !retryDelays.isEmpty { correlateLater(record) }
        } else {
            metrics.add(.correlated)
        }
        return .accepted(id: record.id, duplicate: false, correlations: record.correlations.count)
    }

    /// The file may be recorded moments after the alert arrives: look again a few times. One
    /// scheduler loop serves every waiting alert (a task and a timer per alert cost more than
    /// the lookups themselves under a burst of alerts about files we never see).
    private func correlateLater(_ record: AlertRecord) {
        let start = late.withLock { state -> Bool in
            state.queues[0].append(LateAlert(record: record, attempt: 0, due: .now + retryDelays[0]))
            defer { state.running = true }
            return !state.running
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in await runLateCorrelations() }
    }

    private func runLateCorrelations() async {
        while true {
            // Small, frequent passes keep the work smooth instead of a burst every so often.
            try? await Task.sleep(for: .milliseconds(20))
            let now = ContinuousClock.now
            let due = late.withLock { state -> [LateAlert]? in
                if state.queues.allSatisfy(\.isEmpty) {
                    state.running = false
                    return nil
                }
                var due: [LateAlert] = []
                for index in state.queues.indices { state.queues[index].popDue(now, into: &due) }
                return due
            }
            guard let due else { return }
            let mounts = mounts.mounts
            for (index, item) in due.enumerated() {
                // A backlog of late alerts must not hold a cooperative thread against new ones.
                if index % 8 == 7 { await Task.yield() }
                let result = try? database.withSnapshot { lookup in
                    try AlertCorrelator.correlate(item.record.alert, tmpfsMounts: mounts, lookup: lookup)
                }
                if let result, !result.correlations.isEmpty {
                    writer.submit(.correlations(alertID: item.record.id, result))
                    metrics.add(.lateCorrelations)
                    var found = item.record
                    found.correlations = result.correlations
                    found.noEvidenceReason = result.noEvidenceReason
                    onStored?(found)
                } else if item.attempt + 1 < retryDelays.count {
                    let next = LateAlert(
                        record: item.record, attempt: item.attempt + 1, due: now + retryDelays[item.attempt + 1])
                    late.withLock { $0.queues[next.attempt].append(next) }
                } else {
                    onStored?(item.record)
                }
            }
        }
    }

    /// Decodes `body` and correlates it against the store: everything but the write.
    ///
    /// - Throws: `AlertDecodingError` for a body that is not a valid alert.
    ///
    /// - Returns: the record to store, and whether one with its id is stored already.
    public static func prepare(_ body: Data, database: EvidenceDatabase, mounts: [PathBytes]) throws
        -> (AlertRecord, duplicate: Bool)
    {
        let alert = try FalcoAlert.decode(body)
        let id = identifier(for: alert)
        let (result, duplicate) = try database.withSnapshot { lookup in
            (try AlertCorrelator.correlate(alert, tmpfsMounts: mounts, lookup: lookup), try lookup.hasAlert(id: id))
        }
        let now = sys_realtime()
        let record = AlertRecord(
            id: id, alert: alert, receivedAt: Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds),
            correlations: result.correlations, noEvidenceReason: result.noEvidenceReason)
        return (record, duplicate)
    }

    /// Falcosidekick's `uuid` when present; otherwise the first 128 bits of the SHA-256 of what
    /// makes a Falco event itself (rule, time, hostname, source, output), so a repeated delivery
    /// of the same event gets the same id and is stored once.
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
        for byte in hasher.finalize().prefix(16) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
