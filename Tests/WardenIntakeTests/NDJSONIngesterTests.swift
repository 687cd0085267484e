// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Logging
import SystemPackage
import Testing
import WardenCore
import WardenIntake
import WardenStore

/// A state directory with a fresh database, and a scratch directory for NDJSON files.
struct IngestFixture {
    let directory: String
    let database: EvidenceDatabase

    init() throws {
        directory = NSTemporaryDirectory() + "shmwarden-ingest-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        database = try EvidenceDatabase(path: directory + "/shmwarden.sqlite")
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    func line(rule: String = "Execution from /dev/shm", second: Int, path: String = "/dev/shm/x") -> String {
        #"{"rule":"\#(rule)","priority":"Warning","time":"2026-11-29T12:00:\#(String(format: "%02d", second % 60)).\#(second)Z","output":"o\#(second)","output_fields":{"proc.exepath":"\#(path)"}}"#
    }
}

@Suite struct NDJSONIngesterTests {
    @Test func goodLinesGoInBadLinesAreReportedByNumber() throws {
        let fixture = try IngestFixture()
        defer { fixture.remove() }
        let text = [
            fixture.line(second: 1), "", "{broken", fixture.line(second: 2),
            #"{"rule":"r","priority":"Warning"}"#, fixture.line(second: 1), fixture.line(second: 3),
        ].joined(separator: "\n")
        let path = fixture.directory + "/alerts.ndjson"
        try text.write(toFile: path, atomically: true, encoding: .utf8)  // no trailing newline on purpose
        var bad: [(Int, String)] = []
        let ingester = NDJSONIngester(database: fixture.database, mounts: TmpfsMountCache()) { bad.append(($0, $1)) }
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        try ingester.ingest(fd)
        #expect(bad.map(\.0) == [3, 5])
        #expect(bad[0].1 == "malformed JSON")
        #expect(bad[1].1 == "missing \"time\"")
        #expect(ingester.report.accepted == 3)
        #expect(ingester.report.duplicates == 1)
        #expect(try fixture.database.alertCount() == 3)
        #expect(try fixture.database.alerts().map(\.alert.output) == ["o1", "o2", "o3"])
    }

    @Test func followSurvivesTruncationAndRotation() async throws {
        let fixture = try IngestFixture()
        defer { fixture.remove() }
        let path = fixture.directory + "/events.json"
        try (fixture.line(second: 1) + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        let stop = StopSwitch()
        let database = fixture.database
        // follow() blocks between polls: give it a thread of its own, never a cooperative one.
        let finished = AsyncStream<Result<IngestReport, any Error>>.makeStream()
        Thread {
            let ingester = NDJSONIngester(database: database, mounts: TmpfsMountCache()) { _, _ in }
            finished.continuation.yield(
                Result {
                    try ingester.follow(path: path, shouldStop: { stop.isOn })
                    return ingester.report
                })
            finished.continuation.finish()
        }.start()
        func waitForCount(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while try database.alertCount() < count && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try database.alertCount() == count)
        }
        try await waitForCount(1)
        // Appended.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data((fixture.line(second: 2) + "\n").utf8))
        try handle.close()
        try await waitForCount(2)
        // Truncated in place (logrotate copytruncate), then written again.
        try (fixture.line(second: 3) + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        try await waitForCount(3)
        // Truncated and written again past the old end before the follower's next look: the
        // file is no shorter than where it was, yet every line in it is new.
        try (fixture.line(second: 4) + "\n" + fixture.line(second: 5) + "\n").write(
            toFile: path, atomically: false, encoding: .utf8)
        try await waitForCount(5)
        // Rotated: renamed away and a new file created under the name.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try (fixture.line(second: 6) + "\n" + fixture.line(second: 7) + "\n").write(
            toFile: path, atomically: false, encoding: .utf8)
        try await waitForCount(7)
        stop.turnOn()
        var iterator = finished.stream.makeAsyncIterator()
        let report = try #require(await iterator.next()).get()
        #expect(report.accepted == 7)
        #expect(report.badLines == 0)
    }

    @Test func metricsRenderAsPrometheusText() {
        let metrics = IntakeMetrics()
        metrics.add(.received, 3)
        metrics.observeLatency(seconds: 0.002)
        metrics.observeLatency(seconds: 0.2)
        let text = metrics.prometheusText()
        #expect(text.contains("shmwarden_alerts_received_total 3\n"))
        #expect(text.contains("shmwarden_alert_intake_seconds_bucket{le=\"0.0025\"} 1\n"))
        #expect(text.contains("shmwarden_alert_intake_seconds_bucket{le=\"0.25\"} 2\n"))
        #expect(text.contains("shmwarden_alert_intake_seconds_count 2\n"))
    }
}

final class StopSwitch: @unchecked Sendable {
    // Set once by the test task and read by the follower; a late read only costs one poll.
    private var value = false
    var isOn: Bool { value }
    func turnOn() { value = true }
}

@Suite struct AlertIntakeBackPressureTests {
    @Test func aFullStoreQueueAnswersBusyAndLosesNothingAccepted() async throws {
        let fixture = try IngestFixture()
        defer { fixture.remove() }
        // A writer whose one-slot queue is full and not yet draining.
        let writer = StoreWriter(database: fixture.database, capacity: 1, clock: { 0 }, onError: { _ in })
        writer.submit(
            .sensorEvent(
                SensorEvent(
                    time: Timestamp(nanosecondsSinceEpoch: 0), kind: .rescan, mountPoint: nil, detail: "filler")))
        let intake = AlertIntake(
            database: fixture.database, writer: writer, mounts: TmpfsMountCache(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), retryDelays: [])
        let body = Data(fixture.line(second: 7).utf8)
        #expect(await intake.submit(body) == .busy)
        #expect(intake.metrics[.busy] == 1)
        #expect(try fixture.database.alertCount() == 0)
        // Once the writer drains, the same alert is accepted and durable.
        writer.start()
        let deadline = ContinuousClock.now + .seconds(10)
        while writer.depth > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        guard case .accepted(_, let duplicate, _) = await intake.submit(body) else {
            Issue.record("not accepted after the queue drained")
            return
        }
        #expect(!duplicate)
        writer.finish()
        #expect(try fixture.database.alertCount() == 1)
    }
}
