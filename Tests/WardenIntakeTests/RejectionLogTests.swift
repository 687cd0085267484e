// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Logging
import Synchronization
import Testing
import WardenIntake
import WardenStore

/// Falco's http_output does not look at the answer's status: a refused alert must show in the
/// agent's log, or a misconfigured Falco loses every alert in silence. Once a minute at most.
@Suite struct RejectionLogTests {
    /// Keeps what is logged at warning and above.
    struct CapturingHandler: LogHandler {
        let captured: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            guard event.level >= .warning else { return }
            let extra = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            captured.lines.withLock { $0.append("\(event.message)" + (extra.isEmpty ? "" : " " + extra)) }
        }
    }

    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
    }

    @Test func refusedAlertsAreLoggedOnceAMinuteWithACount() async throws {
        let fixture = try IngestFixture()
        defer { fixture.remove() }
        let writer = StoreWriter(database: fixture.database, clock: { 0 }, onError: { _ in })
        writer.start()
        defer { writer.finish() }
        let captured = Lines()
        let intake = AlertIntake(
            database: fixture.database, writer: writer, mounts: TmpfsMountCache(extra: []),
            logger: Logger(label: "test", factory: { _ in CapturingHandler(captured: captured) }))
        // What Falco's http_output sends with json_output: false (text/plain).
        let text = "10:20:05.408091526: Warning Sensitive file opened for reading by non-trusted program (user=root)"
        for _ in 0..<3 {
            guard case .rejected(let reason) = await intake.submit(Data(text.utf8)) else {
                Issue.record("Falco's text output was not refused")
                return
            }
            #expect(reason.contains("set json_output: true"))
        }
        let lines = captured.lines.withLock { $0 }
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.hasPrefix("refused an alert (400): this is Falco's text output") == true)
        #expect(intake.metrics.prometheusText().contains("rejected"))
    }
}
