// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization
import WardenCore
import WardenFleet
import WardenLinux
import WardenStore

/// `fleet-sink --port P`: a receiver that answers each `POST /` as Falcosidekick's input checks
/// it (400 or 200) and counts what it took (`GET /count`): what `scripts/bench-fleet` drains to.
struct FleetSink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-sink", abstract: "A Falcosidekick-like receiver that counts the events it takes.")

    @Option var port: Int = 28070

    func run() async throws {
        let taken = Atomic<Int>(0)
        let router = Router()
        router.post("/") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 4 << 20)
            if let refusal = FalcosidekickAcceptance.refusal(Data(body.readableBytesView)) {
                return BareDecodeServer.reply(.badRequest, #"{"error":"\#(refusal)"}"#)
            }
            taken.add(1, ordering: .relaxed)
            return Response(status: .ok)
        }
        router.get("/count") { _, _ -> Response in
            BareDecodeServer.reply(.ok, "\(taken.load(ordering: .relaxed))")
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}

/// `fleet-drain --url U --events N`: queues N events in a fresh outbox, then times the
/// forwarder delivering all of them to U; prints one JSON line.
struct FleetDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-drain", abstract: "Time the delivery of a full outbox to one output.")

    @Option var url: String
    @Option var events = 50_000

    func run() async throws {
        let directory = NSTemporaryDirectory() + "shmwarden-fleet-drain-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try EvidenceDatabase(path: directory + "/shmwarden.sqlite")
        let outbox = Outbox(hostname: sys_hostname(), limit: events, outputs: ["sink"])
        database.setOutbox(outbox)
        try database.prepareOutbox()
        let now = Timestamp(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)
        var queued = 0
        while queued < events {
            let batch = min(1000, events - queued)
            try database.apply(
                (0..<batch).map { index in
                    .exec(
                        ExecRecord(
                            time: now, pid: Int32(1000 + (queued + index) % 30_000), ppid: 1, uid: 0,
                            path: PathBytes("/dev/shm/payload-\(queued + index)"),
                            sha256: String(repeating: "ab", count: 32), device: 42, inode: UInt64(queued + index),
                            verdict: .deny, wouldBe: .deny, mode: .enforce, rule: "unknown-binaries",
                            reason: "not on the allowlist", cached: false, decisionNanoseconds: 80_000))
                })
            queued += batch
        }
        let forwarder = try FleetForwarder(
            outputs: [FleetOutput(name: "sink", url: url)], database: database, outbox: outbox,
            logger: Logger(label: "drain", factory: { _ in SwiftLogNoOpLogHandler() }), clock: { now },
            record: { command in (try? database.apply([command])) != nil })
        let started = sys_monotonicNanoseconds()
        let task = Task { try await forwarder.run() }
        while forwarder.metrics[.delivered, output: "sink"] < events {
            try await Task.sleep(for: .milliseconds(5))
        }
        let seconds = Double(sys_monotonicNanoseconds() - started) / 1e9
        task.cancel()
        _ = try? await task.value
        let failed = forwarder.metrics[.failed, output: "sink"]
        print(
            #"{"events":\#(events),"seconds":\#(seconds),"perSecond":\#(Double(events) / seconds),"failed":\#(failed)}"#
        )
    }
}
