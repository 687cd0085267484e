// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import ServiceLifecycle
import Testing
import WardenCore
import WardenDaemon
import WardenFleet
import WardenHTTP
import WardenStore

/// A database in a directory of its own with the outbox on, for one test.
private struct OutboxDatabase {
    let directory = makeStateDirectory()
    let database: EvidenceDatabase
    let outbox: Outbox

    init(limit: Int = 100_000, outputs: [String] = ["sidekick"]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        database = try EvidenceDatabase(path: directory + "/shmwarden.sqlite")
        outbox = Outbox(hostname: "node-7", limit: limit, outputs: outputs)
        database.setOutbox(outbox)
        try database.prepareOutbox()
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// Every event held, oldest first.
    func held() throws -> [OutboxEntry] { try database.outboxEntries(after: 0, limit: 100_000, hostname: "node-7") }
}

/// A forwarder for `outputs`, running until `stop`; its cursor moves go straight to the database.
private struct RunningForwarder {
    let forwarder: FleetForwarder
    let task: Task<Void, any Error>

    init(_ outputs: [FleetOutput], _ store: OutboxDatabase) throws {
        let database = store.database
        forwarder = try FleetForwarder(
            outputs: outputs, database: database, outbox: store.outbox,
            logger: silentLogger, clock: { Timestamp(nanosecondsSinceEpoch: 1_800_000_000_000_000_000) },
            record: { command in (try? database.apply([command])) != nil })
        let forwarder = self.forwarder
        task = Task { try await forwarder.run() }
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Waits until `condition` holds (10 s at most): a round's counters move once all its posts are
/// answered, a moment after the receiver has the last one.
private func eventually(_ condition: () -> Bool) async {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
}

private let sha1 = String(repeating: "a1", count: 32)
private let sha2 = String(repeating: "b2", count: 32)

private func stamp(_ seconds: Int64) -> Timestamp { Timestamp(seconds: 1_800_000_000 + seconds, nanoseconds: 5) }

private func file(_ path: String, sha: String, inode: UInt64, capture: ProcessCapture? = nil) -> FileRecord {
    FileRecord(
        path: PathBytes(path), mountPoint: PathBytes("/dev/shm"), fileType: .regular, device: 42, inode: inode,
        size: 4096, mode: 0o100755, uid: 1000, gid: 1000, linkCount: 1, modified: stamp(0), changed: stamp(0),
        firstSeen: stamp(1), lastSeen: stamp(1), kind: .elf, reasons: [.execBit, .elf], hashStatus: .ok,
        sha256: sha, capture: capture)
}

private func blob(_ sha: String) -> BlobRecord {
    BlobRecord(sha256: sha, size: 4096, kind: .elf, elf: nil, script: nil, evidencePath: nil, firstSeen: stamp(1))
}

private func refusedExec(_ index: Int) -> ExecRecord {
    ExecRecord(
        time: stamp(Int64(index)), pid: Int32(5000 + index), ppid: 1, uid: 1000,
        path: PathBytes("/dev/shm/x\(index)"), sha256: sha1, device: 42, inode: 7, verdict: .deny, wouldBe: .deny,
        mode: .enforce, rule: "unknown-binaries", reason: "not on the allowlist", cached: false,
        decisionNanoseconds: 90_000)
}

/// Every record that makes an event, applied as the agent applies them.
private func everyKindOfRecord(in database: EvidenceDatabase) throws {
    try database.apply([.record(file("/dev/shm/implant", sha: sha1, inode: 1), blob(sha1))])
    try database.apply([.evidenceStored(sha256: sha1, path: "/var/lib/shmwarden/evidence/a1/\(sha1)")])
    let capture = ProcessCapture(
        kind: .memfd, source: "/proc/777/exe", pid: 777, ppid: 1, uid: 0, executable: PathBytes("/memfd:x (deleted)"),
        commandLine: ["[kworker]", "-d"], started: stamp(2), containerID: "0123456789ab")
    try database.apply([
        .record(file("/proc/777/exe", sha: sha2, inode: 2, capture: capture), blob(sha2)),
        .evidenceSkipped(sha256: sha2, reason: "the state directory is over its budget"),
    ])
    try database.apply([
        .exec(refusedExec(1)),
        .exec(
            ExecRecord(
                time: stamp(3), pid: 901, ppid: 1, uid: 0, path: PathBytes("/dev/shm/ok"), sha256: sha1, device: 42,
                inode: 1, verdict: .allow, wouldBe: .allow, mode: .enforce, rule: "allowlist", reason: "allowed",
                cached: true, decisionNanoseconds: 0)),
    ])
    let fileID = try #require(try database.files().first { $0.path == PathBytes("/dev/shm/implant") }?.id)
    try database.apply([
        .action(
            ActionRecord(
                time: stamp(4), alertId: nil, fileId: fileID, rule: "drops", action: "quarantine", mode: .enforce,
                outcome: .performed, target: "/dev/shm/implant", detail: "moved into the quarantine")),
        .sandboxRun(
            SandboxRunRecord(
                id: "run-1", time: stamp(5), sha256: sha1, fileId: fileID, alertId: nil,
                verdict: ["It exited with code 0 after 3 ms."], reportJSON: "{}")),
    ])
    // A YARA match, stored twice (the guard and the capture pipeline both scanned it): one
    // event; a scan that found nothing: none.
    let matched = YaraVerdict(
        sha256: sha1, ruleset: "0123456789abcdef", status: .complete,
        matches: [
            YaraMatch(rule: "shmwarden_upx_packed", namespace: "/etc/shmwarden/yara/shmwarden.yar", tags: ["packer"])
        ],
        scannedBytes: 4096, size: 4096, time: stamp(5))
    try database.apply([.yaraVerdict(matched)])
    try database.apply([.yaraVerdict(matched)])
    try database.apply([
        .yaraVerdict(YaraVerdict(sha256: sha2, ruleset: "0123456789abcdef", status: .complete, time: stamp(5)))
    ])
    // A Falco alert about that file, whose sender also wrote a shmwarden.* field of its own.
    let alert = try FalcoAlert.decode(
        Data(
            """
            {"rule":"Execution from /dev/shm","priority":"warning","time":"2027-01-15T08:00:06.000000001Z",
             "output":"08:00:06.000000001: Warning File execution detected from /dev/shm (proc.exepath=/dev/shm/implant)",
             "source":"syscall","hostname":"node-7","tags":["mitre_execution"],
             "output_fields":{"proc.exepath":"/dev/shm/implant","proc.pid":4242,"shmwarden.sha256":"forged"}}
            """.utf8), acceptingAnyTime: true)
    try database.apply([
        .correlateAndStore(
            AlertRecord(id: "alert-1", alert: alert, receivedAt: stamp(6)), tmpfsMounts: [PathBytes("/dev/shm")])
    ])
}

extension AgentIntegration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct FleetTests {
        /// Each kind of record queues its event in its own transaction, and a receiver that
        /// applies Falcosidekick's checks takes every one of them.
        @Test func everyEventKindIsQueuedWithItsRecordAndTaken() async throws {
            let store = try OutboxDatabase()
            defer { store.remove() }
            // Before its evidence copy is settled, an executable's event waits.
            try store.database.apply([.record(file("/dev/shm/early", sha: sha1, inode: 9), blob(sha1))])
            #expect(try store.held().isEmpty)
            try everyKindOfRecord(in: store.database)
            let held = try store.held()
            #expect(
                held.map(\.type) == [.executable, .executable, .fileless, .guard, .action, .sandbox, .yara, .alert],
                "\(held.map(\.type))")
            let receiver = FalcoReceiver()
            try await receiver.start()
            defer { Task { await receiver.stop() } }
            let forwarder = try RunningForwarder([FleetOutput(name: "sidekick", url: receiver.url)], store)
            #expect(await receiver.wait { $0.deliveries.count == held.count })
            // Everything was delivered to the only output: the table empties once its cursor moves.
            let deadline = ContinuousClock.now + .seconds(5)
            while try !store.held().isEmpty && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try store.held().isEmpty)
            await forwarder.stop()
            await receiver.stop()
            let taken = receiver.taken
            #expect(taken.refused.isEmpty, "\(taken.refused)")
            #expect(Set(taken.deliveries.keys) == Set(held.map(\.id)))
            let events = receiver.events
            func event(_ rule: String) -> [String: any Sendable]? { events.first { $0["rule"] as? String == rule } }
            func fields(_ rule: String) -> [String: Any] {
                let text = event(rule)?["fields"] as? String ?? "{}"
                return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            }
            #expect(
                events.allSatisfy { $0["source"] as? String == "shmwarden" && $0["hostname"] as? String == "node-7" })
            #expect(events.allSatisfy { ($0["uuid"] as? String)?.count == 36 })
            let dropped = fields("Executable dropped on tmpfs")
            #expect(dropped["shmwarden.sha256"] as? String == sha1)
            #expect(dropped["shmwarden.evidence"] as? String == "/var/lib/shmwarden/evidence/a1/\(sha1)")
            #expect(
                dropped["fd.name"] as? String == "/dev/shm/implant" || dropped["fd.name"] as? String == "/dev/shm/early"
            )
            #expect(event("Executable dropped on tmpfs")?["priority"] as? String == "Warning")
            let fileless = fields("Fileless executable captured")
            #expect(fileless["proc.pid"] as? Int == 777 && fileless["container.id"] as? String == "0123456789ab")
            #expect(fileless["shmwarden.capture.kind"] as? String == "memfd")
            #expect(fileless["shmwarden.evidence_missing"] as? String == "the state directory is over its budget")
            #expect(event("Fileless executable captured")?["priority"] as? String == "Critical")
            let refused = fields("Exec refused on tmpfs")
            #expect(refused["proc.exepath"] as? String == "/dev/shm/x1" && refused["proc.pid"] as? Int == 5001)
            #expect(refused["shmwarden.guard.rule"] as? String == "unknown-binaries")
            let action = fields("Response action")
            #expect(action["shmwarden.action"] as? String == "quarantine")
            #expect(action["shmwarden.action.outcome"] as? String == "performed")
            #expect(action["shmwarden.sha256"] as? String == sha1 && action["fd.name"] as? String == "/dev/shm/implant")
            let sandbox = fields("Sandbox run finished")
            #expect(sandbox["shmwarden.sandbox.verdict"] as? String == "It exited with code 0 after 3 ms.")
            let yara = fields("YARA rule matched")
            #expect(yara["shmwarden.yara.rules"] as? String == "shmwarden_upx_packed")
            #expect(yara["shmwarden.yara.tags"] as? String == "packer" && yara["shmwarden.sha256"] as? String == sha1)
            #expect(
                yara["fd.name"] as? String == "/dev/shm/implant"
                    && yara["shmwarden.yara.status"] as? String == "complete")
            #expect(event("YARA rule matched")?["priority"] as? String == "Warning")
            let alert = fields("Execution from /dev/shm")
            #expect(alert["proc.exepath"] as? String == "/dev/shm/implant" && alert["proc.pid"] as? Int == 4242)
            #expect(alert["shmwarden.sha256"] as? String == sha1, "the sender's shmwarden.* field is not kept")
            #expect(alert["shmwarden.correlation.basis"] as? String == "kernel")
            #expect(alert["shmwarden.sandbox.verdict"] as? String == "It exited with code 0 after 3 ms.")
            #expect(event("Execution from /dev/shm")?["priority"] as? String == "Warning")
            #expect(
                (event("Execution from /dev/shm")?["output"] as? String)?.hasPrefix(
                    "08:00:06.000000001: Warning File execution detected") == true)
        }

        /// An output's filter: only what it asked for goes, and its cursor still passes the rest.
        @Test func anOutputGetsOnlyTheTypesAndPrioritiesItAskedFor() async throws {
            let store = try OutboxDatabase(outputs: ["all", "refusals"])
            defer { store.remove() }
            try everyKindOfRecord(in: store.database)
            let everything = FalcoReceiver()
            let refusals = FalcoReceiver()
            try await everything.start()
            try await refusals.start()
            var filtered = FleetOutput(name: "refusals", url: refusals.url)
            filtered.types = [.guard, .action]
            filtered.minimumPriority = .critical
            let forwarder = try RunningForwarder([FleetOutput(name: "all", url: everything.url), filtered], store)
            #expect(await everything.wait { $0.deliveries.count == 7 })
            #expect(await refusals.wait { $0.deliveries.count == 1 })
            let deadline = ContinuousClock.now + .seconds(5)
            while try !store.held().isEmpty && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            await forwarder.stop()
            await everything.stop()
            await refusals.stop()
            #expect(refusals.events.map { $0["rule"] as? String } == ["Exec refused on tmpfs"])
            #expect(try store.held().isEmpty, "both cursors passed every event")
        }

        /// The receiver down for 30 s while events keep coming: once it is back every event
        /// arrives, each at least once, and by id exactly once.
        @Test func aReceiverDownForThirtySecondsMissesNothing() async throws {
            let store = try OutboxDatabase()
            defer { store.remove() }
            let receiver = FalcoReceiver()
            try await receiver.start()
            await receiver.stop()  // its port is known and nobody listens there
            let forwarder = try RunningForwarder([FleetOutput(name: "sidekick", url: receiver.url)], store)
            let outage = ContinuousClock.now + .seconds(30)
            var queued = 0
            while ContinuousClock.now < outage {
                try store.database.apply((0..<10).map { .exec(refusedExec(queued + $0)) })
                queued += 10
                try await Task.sleep(for: .milliseconds(250))
            }
            let ids = Set(try store.held().map(\.id))
            #expect(ids.count == queued)
            #expect(forwarder.forwarder.metrics[.retries, output: "sidekick"] >= 3, "it kept trying")
            try await receiver.start()
            #expect(await receiver.wait(timeout: .seconds(60)) { Set($0.deliveries.keys).isSuperset(of: ids) })
            await eventually { forwarder.forwarder.metrics[.delivered, output: "sidekick"] >= queued }
            await forwarder.stop()
            await receiver.stop()
            let taken = receiver.taken
            #expect(Set(taken.deliveries.keys) == ids)
            #expect(taken.deliveries.values.allSatisfy { $0 >= 1 })
            #expect(forwarder.forwarder.metrics[.delivered, output: "sidekick"] >= queued)
        }

        /// Past `outbox.limit` the oldest events go, counted; the output is told how many it missed.
        @Test func aFullOutboxDropsTheOldestAndSaysSo() async throws {
            let store = try OutboxDatabase(limit: 10)
            defer { store.remove() }
            for index in 0..<25 { try store.database.apply([.exec(refusedExec(index))]) }
            let held = try store.held()
            #expect(held.count == 10 && store.outbox.droppedCount == 15 && store.outbox.queuedCount == 25)
            let receiver = FalcoReceiver()
            try await receiver.start()
            let forwarder = try RunningForwarder([FleetOutput(name: "sidekick", url: receiver.url)], store)
            #expect(await receiver.wait { $0.deliveries.count == 11 })
            await eventually { forwarder.forwarder.metrics[.delivered, output: "sidekick"] == 11 }
            let metrics = forwarder.forwarder.metrics.prometheusText()
            await forwarder.stop()
            await receiver.stop()
            let notice = try #require(receiver.events.first { $0["type"] as? String == "outbox" })
            #expect(notice["rule"] as? String == "Outbox overflow" && notice["priority"] as? String == "Warning")
            #expect((notice["fields"] as? String)?.contains("\"shmwarden.outbox.missed\":15") == true)
            let pids = receiver.events.compactMap { event -> Int? in
                let fields = (try? JSONSerialization.jsonObject(with: Data((event["fields"] as? String ?? "").utf8)))
                return (fields as? [String: Any])?["proc.pid"] as? Int
            }
            #expect(Set(pids) == Set((15..<25).map { 5000 + $0 }), "the newest ten were kept")
            #expect(metrics.contains("shmwarden_outbox_dropped_total 15"))
            #expect(metrics.contains("shmwarden_output_events_delivered_total{output=\"sidekick\"} 11"))
        }

        /// The agent killed with SIGKILL while its receiver is down and events are queued: the
        /// restarted agent delivers every one of them.
        @Test func killNineWithEventsQueuedLosesNone() async throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            defer { mount.remove() }
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let receiver = FalcoReceiver()
            try await receiver.start()
            await receiver.stop()
            let config = state + ".yaml"
            defer { unlink(config) }
            try "outputs:\n  - name: sidekick\n    url: \(receiver.url)\n".write(
                toFile: config, atomically: true, encoding: .utf8)
            func startAgent() throws -> Process {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: Binary.path)
                process.arguments = [
                    "run", "--state-dir", state, "--config", config, "--no-discover", "--watch", mount.path,
                    "--no-listen", "--no-exec-monitor",
                ]
                process.standardError = FileHandle.nullDevice
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                return process
            }
            func queued() throws -> [OutboxEntry] {
                guard FileManager.default.fileExists(atPath: state + "/shmwarden.sqlite") else { return [] }
                let database = try EvidenceDatabase(path: state + "/shmwarden.sqlite", connections: .single)
                defer { try? database.close() }
                return try database.outboxEntries(after: 0, limit: 1000, hostname: "-").filter {
                    $0.type == .executable
                }
            }
            var agent = try startAgent()
            defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
            // Ready once its pid file is written.
            let ready = ContinuousClock.now + .seconds(20)
            while !FileManager.default.fileExists(atPath: state + "/shmwarden.pid") && ContinuousClock.now < ready {
                try await Task.sleep(for: .milliseconds(20))
            }
            for index in 0..<20 { try drop(trueBinary + [UInt8(index)], at: mount.child("drop\(index)")) }
            let deadline = ContinuousClock.now + .seconds(30)
            var ids: Set<String> = []
            while ids.count < 20 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                ids = Set(try queued().map(\.id))
            }
            try #require(ids.count == 20, "20 events queued before the kill")
            kill(agent.processIdentifier, SIGKILL)
            agent.waitUntilExit()
            #expect(agent.terminationReason == .uncaughtSignal)
            try await receiver.start()
            agent = try startAgent()
            #expect(await receiver.wait { Set($0.deliveries.keys).isSuperset(of: ids) })
            kill(agent.processIdentifier, SIGTERM)
            agent.waitUntilExit()
            await receiver.stop()
            #expect(receiver.taken.refused.isEmpty)
        }

        /// The whole agent: a dropped ELF, the policy's sandbox run and a correlated alert reach
        /// the receiver as events, and /metrics counts them.
        @Test(.enabled(if: TestEnvironment.isRoot))
        func theAgentSendsItsDetectionsAndActions() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let receiver = FalcoReceiver()
            try await receiver.start()
            defer { Task { await receiver.stop() } }
            let policy = try PolicyParser.merge([
                try PolicyParser.parse(
                    """
                    mode: enforce
                    rules:
                      - {name: detonate, on: dropped-executable, match: {file: {kind: elf}}, actions: [{action: sandbox, timeout: 5}]}
                    """, file: "test.yaml"
                ).get()
            ]).get()
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true), policy: policy,
                    configure: { $0.outputs = [FleetOutput(name: "sidekick", url: receiver.url)] })
            ) { agent in
                let path = mount.child("implant")
                let sha = try drop(trueBinary, at: path)
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                let port = await agent.services.listening.port()
                let (status, _, _) = try await post("http://127.0.0.1:\(port)/falco", devShmAlert(exepath: path))
                #expect(status == 200)
                let rules = [
                    "Executable dropped on tmpfs", "Response action", "Sandbox run finished", "Execution from /dev/shm",
                ]
                #expect(
                    await receiver.wait {
                        Set($0.events.values.compactMap { $0["rule"] as? String }).isSuperset(of: rules)
                    })
                for event in receiver.events {
                    #expect((event["fields"] as? String)?.contains(sha) == true, "\(event)")
                }
                let (_, metrics) = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains("shmwarden_output_events_delivered_total{output=\"sidekick\"}"))
                #expect(receiver.taken.refused.isEmpty)
            }
        }

        /// `shmwarden outputs test`: one test event per output, and its answer.
        @Test func outputsTestSendsOneEventAndSaysWhatCameBack() async throws {
            try #require(Binary.exists, "build first: swift build")
            let receiver = FalcoReceiver()
            try await receiver.start()
            let config = makeStateDirectory() + ".yaml"
            defer { unlink(config) }
            try "outputs:\n  - {name: sidekick, url: \"\(receiver.url)\"}\n".write(
                toFile: config, atomically: true, encoding: .utf8)
            let (status, output, errors) = try await runProcessOffPool(
                Binary.path, ["outputs", "test", "--config", config], errors: true)
            #expect(status == 0, "\(errors)")
            #expect(output.contains("sidekick") && output.contains("taken (HTTP 200)"), "\(output)")
            #expect(receiver.events.map { $0["rule"] as? String } == ["shmwarden output test"])
            await receiver.stop()
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let (statusCode, statusOutput, statusErrors) = try await runProcessOffPool(
                Binary.path, ["outputs", "status", "--json", "--config", config, "--state-dir", state], errors: true)
            #expect(statusCode == 0, "\(statusErrors)")
            let backlog = try #require(try Binary.json(statusOutput))
            #expect(backlog["outboxEvents"] as? Int == 0)
            #expect((backlog["outputs"] as? [[String: Any]])?.first?["output"] as? String == "sidekick")
            let (down, downOutput, _) = try await runProcessOffPool(
                Binary.path, ["outputs", "test", "--config", config], errors: true)
            #expect(down == 1 && downOutput.contains("not taken"), "\(downOutput)")
            try "outputs: []\n".write(toFile: config, atomically: true, encoding: .utf8)
            let (none, _, noneErrors) = try await runProcessOffPool(
                Binary.path, ["outputs", "test", "--config", config], errors: true)
            #expect(none == 2 && noneErrors.contains("no outputs"), "\(noneErrors)")
        }

        /// An event whose record retention pruned before it left is counted as failed, and the
        /// ones after it still go.
        @Test func anEventWhoseRecordWasPrunedIsCountedAndSkipped() async throws {
            let store = try OutboxDatabase()
            defer { store.remove() }
            try store.database.apply([.exec(refusedExec(1))])
            _ = try store.database.prune(
                olderThan: stamp(1_000), evidenceBudget: nil, protected: [], dryRun: false)
            try store.database.apply([.exec(refusedExec(2_000))])
            #expect(try store.held().map { $0.body == nil } == [true, false])
            let receiver = FalcoReceiver()
            try await receiver.start()
            let forwarder = try RunningForwarder([FleetOutput(name: "sidekick", url: receiver.url)], store)
            #expect(await receiver.wait { $0.deliveries.count == 1 })
            await eventually { forwarder.forwarder.metrics[.failed, output: "sidekick"] == 1 }
            await forwarder.stop()
            await receiver.stop()
            #expect(forwarder.forwarder.metrics[.failed, output: "sidekick"] == 1)
            #expect((receiver.events.first?["fields"] as? String)?.contains("\"proc.pid\":7000") == true)
        }

        /// Mutual TLS: an output with the CA and a client certificate is taken; one without the
        /// client certificate is not, and keeps its events.
        @Test func mutualTLSOutputsNeedTheirClientCertificate() async throws {
            let directory = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let issued = try IntakeCertificates.issue(directory: directory + "/tls", clients: ["shmwarden"])
            let client = try #require(issued.clients.first)
            let receiver = FalcoReceiver(
                tls: try IntakeTLSContext(
                    IntakeTLS(
                        certificate: issued.server.certificate, key: issued.server.key,
                        clientCA: issued.server.clientCA)))
            try await receiver.start()
            let store = try OutboxDatabase(outputs: ["mtls", "no-client-certificate"])
            defer { store.remove() }
            try store.database.apply([.exec(refusedExec(1))])
            var mutual = FleetOutput(name: "mtls", url: receiver.url)
            mutual.caFile = issued.server.clientCA
            mutual.certificateFile = client.certificate
            mutual.keyFile = client.key
            var anonymous = FleetOutput(name: "no-client-certificate", url: receiver.url)
            anonymous.caFile = issued.server.clientCA
            let forwarder = try RunningForwarder([mutual, anonymous], store)
            #expect(await receiver.wait { $0.deliveries.count == 1 })
            try await Task.sleep(for: .seconds(1))
            let metrics = forwarder.forwarder.metrics
            await forwarder.stop()
            await receiver.stop()
            #expect(receiver.taken.deliveries.values.allSatisfy { $0 == 1 })
            #expect(metrics[.delivered, output: "mtls"] == 1)
            #expect(metrics[.delivered, output: "no-client-certificate"] == 0)
            #expect(metrics[.retries, output: "no-client-certificate"] >= 1)
            #expect(metrics.pending("no-client-certificate") == 1)
            #expect(try store.held().count == 1, "kept for the output that has not taken it")
        }

        /// A header token: sent from token-file; a receiver that wants another one gets nothing
        /// through (401 is retried, never dropped).
        @Test func aHeaderTokenIsSentAndAWrongOneLosesNothing() async throws {
            let store = try OutboxDatabase(outputs: ["right", "wrong"])
            defer { store.remove() }
            try "s3cret\n".write(toFile: store.directory + "/token", atomically: true, encoding: .utf8)
            try "other".write(toFile: store.directory + "/wrong", atomically: true, encoding: .utf8)
            let receiver = FalcoReceiver(token: "s3cret")
            try await receiver.start()
            try store.database.apply([.exec(refusedExec(1)), .exec(refusedExec(2))])
            var right = FleetOutput(name: "right", url: receiver.url)
            right.tokenFile = store.directory + "/token"
            right.headers = [.init(name: "X-Scope-OrgID", value: "tenant-a")]
            var wrong = FleetOutput(name: "wrong", url: receiver.url)
            wrong.tokenFile = store.directory + "/wrong"
            let forwarder = try RunningForwarder([right, wrong], store)
            #expect(await receiver.wait { $0.deliveries.count == 2 && $0.unauthorized > 0 })
            let metrics = forwarder.forwarder.metrics
            await eventually { metrics[.delivered, output: "right"] == 2 }
            await forwarder.stop()
            await receiver.stop()
            #expect(metrics[.delivered, output: "right"] == 2 && metrics[.failed, output: "wrong"] == 0)
            #expect(try store.held().count == 2)
        }
    }
}
