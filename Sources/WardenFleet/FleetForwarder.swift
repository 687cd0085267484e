// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import WardenCore
import WardenLinux
import WardenStore

/// Sends the outbox's events to every output, at least once each, in order per output.
///
/// Each output has a delivery cursor in the database. A round reads the events after it, posts
/// those the output's filter takes (16 at a time on keep-alive connections), and moves the cursor
/// past everything before the first event that must be sent again; that event and all after it
/// wait for a backoff with jitter. Delivered and refused events are never sent again; an event
/// whose delivery is not yet recorded when the agent stops (even by `kill -9`) is, with the same
/// `shmwarden.event_id`.
///
/// Delivery is background work. The thread that makes the events' JSON and the event loops of the
/// outputs' connections run at nice `backgroundNice` (about a tenth of a CPU another process keeps
/// busy: delivery never starves, as it could under SCHED_IDLE), and while the store
/// commits more than `busyCommandsPerSecond` (a flood of alerts or files) an output sends one
/// batch a second: capture and intake keep the machine, the outbox takes up the difference, and
/// it is sent once the load eases. An output with half the outbox's limit pending stops yielding:
/// past that point delivery competes with intake rather than let the full outbox drop events.
public final class FleetForwarder: Service, Sendable {
    private let clients: [FleetClient]
    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private let database: EvidenceDatabase
    private let outbox: Outbox
    private let record: @Sendable (StoreCommand) -> Bool
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp
    private let storeCommands: @Sendable () -> UInt64
    private let busy = Atomic<Bool>(false)
    private let pool = WorkPool(name: "warden-fleet", threads: 1, queued: 16)
    public let metrics: FleetMetrics

    /// Events read per round.
    static let batchSize = 512
    /// How often an output with nothing to send looks again.
    static let idleMilliseconds: UInt64 = 100
    public static let backgroundNice: Int32 = 10
    /// Above this many store commands a second, delivery yields (one batch a second per output).
    public static let busyCommandsPerSecond = 2_000

    /// Makes each output's client (its connections on event loop threads of the forwarder's own,
    /// at `backgroundNice`). `storeCommands` counts the store's commits (`StoreWriter.appliedCommands`).
    ///
    /// - Throws: why an output cannot be used (an unreadable token file or TLS file).
    public init(
        outputs: [FleetOutput], database: EvidenceDatabase, outbox: Outbox, logger: Logger,
        clock: @escaping @Sendable () -> Timestamp, storeCommands: @escaping @Sendable () -> UInt64 = { 0 },
        record: @escaping @Sendable (StoreCommand) -> Bool
    ) throws(FleetClient.SetupError) {
        self.storeCommands = storeCommands
        // One loop thread per CPU: one thread's HTTP client work bounds a drain at about 4,000
        // events a second on this kind of machine; both run at `backgroundNice`.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        for loop in group.makeIterator() { loop.execute { try? sys_setThreadNice(Self.backgroundNice) } }
        var clients: [FleetClient] = []
        do {
            for output in outputs { clients.append(try FleetClient(output, eventLoopGroup: group)) }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.eventLoopGroup = group
        self.clock = clock
        self.clients = clients
        self.database = database
        self.outbox = outbox
        self.logger = logger
        self.record = record
        self.metrics = FleetMetrics(outputs: clients.map(\.output.name), outbox: outbox)
    }

    public func run() async throws {
        let cursors = try await pool.run { [database] in try database.outboxCursors() }
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for client in self.clients {
                    let start = cursors[client.output.name] ?? 0
                    group.addTask { await self.deliver(client, from: start) }
                }
                group.addTask { await self.watchDepth() }
                group.addTask { await self.watchLoad() }
            }
        }
        for client in clients { await client.shutdown() }
        try? await eventLoopGroup.shutdownGracefully()
        pool.close()
    }

    /// Keeps the outbox's size in the metrics, once a second.
    private func watchDepth() async {
        while !Task.isCancelled {
            if let bounds = try? await pool.run({ [database] in try database.outboxBounds() }) {
                metrics.setBounds(head: bounds.head, tail: bounds.tail)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Samples the store's commit rate every 50 ms into `busy`.
    private func watchLoad() async {
        var last = storeCommands()
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            let now = storeCommands()
            busy.store(Int(now &- last) * 20 > Self.busyCommandsPerSecond, ordering: .relaxed)
            last = now
        }
    }

    /// Waits while the agent is busy, a second at most, unless `output` has half the outbox's
    /// limit waiting.
    private func yieldWhileBusy(_ output: String) async {
        var waited = 0
        while busy.load(ordering: .relaxed) && waited < 1000 && !Task.isCancelled
            && metrics.pending(output) < outbox.limit / 2
        {
            try? await Task.sleep(for: .milliseconds(50))
            waited += 50
        }
    }

    private func deliver(_ client: FleetClient, from start: Int64) async {
        let name = client.output.name
        var cursor = start
        var backoff = RetryBackoff()
        metrics.setCursor(name, cursor)
        while !Task.isCancelled {
            await yieldWhileBusy(name)
            let entries: [OutboxEntry]
            do {
                entries = try await pool.run { [database, cursor, hostname = outbox.hostname, output = client.output] in
                    try? sys_setThreadNice(Self.backgroundNice)
                    return try database.outboxEntries(
                        after: cursor, limit: Self.batchSize, hostname: hostname, wanted: output.accepts)
                }
            } catch {
                logger.error("cannot read the outbox", metadata: ["output": "\(name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let last = entries.last else {
                try? await Task.sleep(for: .milliseconds(Self.idleMilliseconds))
                continue
            }
            var work: [(seq: Int64, body: String)] = []
            if entries[0].seq > cursor + 1 {
                // The full outbox dropped these before this output had them.
                let missed = entries[0].seq - cursor - 1
                let notice = OutboxEvents.overflow(
                    output: name, missed: missed, before: entries[0].id, limit: outbox.limit,
                    at: clock())
                work.append((entries[0].seq - 1, notice.json(hostname: outbox.hostname)))
            }
            // Those whose record was pruned (retention) before this output took them.
            var gone: [Int64] = []
            for entry in entries where client.output.accepts(type: entry.type, priority: entry.priority) {
                guard let body = entry.body else {
                    gone.append(entry.seq)
                    continue
                }
                work.append((entry.seq, body))
            }
            let outcomes = await client.post(work.map(\.body))
            var through = last.seq
            var retryReason: String?
            for (index, outcome) in outcomes.enumerated() {
                switch outcome {
                case .delivered: metrics.add(.delivered, name)
                case .rejected(let reason):
                    metrics.add(.failed, name)
                    logger.warning(
                        "an output refused an event; it is not sent again",
                        metadata: ["output": "\(name)", "reason": "\(reason)"])
                case .retry(let reason):
                    if retryReason == nil {
                        retryReason = reason
                        through = work[index].seq - 1
                    }
                }
            }
            for seq in gone where seq <= through { metrics.add(.failed, name) }
            if through > cursor {
                cursor = through
                metrics.setCursor(name, cursor)
                if !record(.outboxDelivered(output: name, through: cursor)) {
                    logger.warning(
                        "the store's queue is full: a delivery cursor waits", metadata: ["output": "\(name)"])
                }
            }
            if let retryReason {
                metrics.add(.retries, name)
                let wait = backoff.next()
                if backoff.failures == 1 || backoff.failures % 10 == 0 {
                    logger.warning(
                        "an output did not take events; they are kept and sent again",
                        metadata: [
                            "output": "\(name)", "reason": "\(retryReason)", "attempts": "\(backoff.failures)",
                            "retry.seconds": "\((wait * 1000).rounded() / 1000)",
                        ])
                }
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            } else {
                if backoff.failures > 0 {
                    logger.notice("an output takes events again", metadata: ["output": "\(name)"])
                }
                backoff.reset()
            }
        }
    }
}

/// The forwarder's counters and gauges, per output.
public final class FleetMetrics: Sendable {
    public enum Counter: String, Sendable, CaseIterable {
        case delivered, failed, retries
    }

    private let outputs: [String]
    private let outbox: Outbox
    private let state: Mutex<State>

    struct State {
        var counts: [String: [Counter: Int]] = [:]
        var cursors: [String: Int64] = [:]
        var head: Int64?
        var tail: Int64?
    }

    init(outputs: [String], outbox: Outbox) {
        self.outputs = outputs
        self.outbox = outbox
        state = Mutex(State())
    }

    func add(_ counter: Counter, _ output: String) {
        state.withLock { $0.counts[output, default: [:]][counter, default: 0] += 1 }
    }

    func setCursor(_ output: String, _ seq: Int64) { state.withLock { $0.cursors[output] = seq } }

    func setBounds(head: Int64?, tail: Int64?) {
        state.withLock {
            $0.head = head
            $0.tail = tail
        }
    }

    public subscript(_ counter: Counter, output output: String) -> Int {
        state.withLock { $0.counts[output]?[counter] ?? 0 }
    }

    /// Events not yet past `output`'s cursor (its filter may skip some of them).
    public func pending(_ output: String) -> Int {
        state.withLock { state in
            guard let tail = state.tail, let cursor = state.cursors[output] else { return 0 }
            return Int(max(0, tail - cursor))
        }
    }

    /// Prometheus text: the outbox's size, and each output's counters and pending events.
    public func prometheusText() -> String {
        let snapshot = state.withLock { $0 }
        let held = snapshot.head.flatMap { head in snapshot.tail.map { Int($0 - head + 1) } } ?? 0
        var text = PrometheusGauge.text([
            PrometheusGauge(
                "shmwarden_outbox_events", held, help: "Events in the outbox (not yet sent to every output).")
        ])
        text += "# HELP shmwarden_outbox_queued_total Events queued for the outputs since the agent started.\n"
        text += "# TYPE shmwarden_outbox_queued_total counter\nshmwarden_outbox_queued_total \(outbox.queuedCount)\n"
        text += "# HELP shmwarden_outbox_dropped_total Events dropped because the outbox was full (outbox.limit).\n"
        text += "# TYPE shmwarden_outbox_dropped_total counter\nshmwarden_outbox_dropped_total \(outbox.droppedCount)\n"
        let helps: [Counter: String] = [
            .delivered: "Events an output took (2xx).",
            .failed: "Events an output refused for what they are (400, 413, 415, 422); not sent again.",
            .retries: "Rounds that ended with an event to send again (no answer, 5xx, 401, 429, ...).",
        ]
        for counter in Counter.allCases {
            let name = "shmwarden_output_events_\(counter.rawValue)_total"
            text += "# HELP \(name) \(helps[counter] ?? "")\n# TYPE \(name) counter\n"
            for output in outputs {
                text += "\(name){output=\"\(output)\"} \(snapshot.counts[output]?[counter] ?? 0)\n"
            }
        }
        text += "# HELP shmwarden_output_pending Events after an output's delivery cursor.\n"
        text += "# TYPE shmwarden_output_pending gauge\n"
        for output in outputs {
            let pending =
                snapshot.tail.flatMap { tail in snapshot.cursors[output].map { Int(max(0, tail - $0)) } } ?? 0
            text += "shmwarden_output_pending{output=\"\(output)\"} \(pending)\n"
        }
        return text
    }
}
