// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Logging
import Synchronization
import Testing
import WardenCore
import WardenIntake
import WardenStore

/// Alerts whose file was not recorded yet wait (as the JSON they came in) and are looked at
/// again; the responder hears of each once, with the whole alert.
@Suite struct LateCorrelationTests {
    static let time = "2026-11-29T12:00:00.123456789Z"

    static func alert(path: String) -> String {
        """
        {"hostname":"node-a","output":"Executing \(path)","priority":"Critical","rule":"Drop and execute new binary in container",\
        "source":"syscall","tags":["container","mitre_execution"],"time":"\(time)",\
        "output_fields":{"proc.exepath":"\(path)","proc.pid":4242,"proc.exe_ino.ctime":18446744073709551615,\
        "container.id":"host","evt.arg.flags":"EXE_WRITABLE","user.name":null,"proc.is_exe_upper_layer":false}}
        """
    }

    static func record(_ path: String) -> FileRecord {
        let seen = Timestamp(rfc3339: time) ?? Timestamp(nanosecondsSinceEpoch: 0)
        return FileRecord(
            path: PathBytes(path), mountPoint: PathBytes("/dev/shm"), fileType: .regular, device: 42, inode: 7,
            size: 100, mode: 0o100755, uid: 0, gid: 0, linkCount: 1, modified: seen, changed: seen, firstSeen: seen,
            lastSeen: seen, deletedAt: nil, state: .present, kind: .elf, reasons: [.execBit, .elf], hashStatus: .ok,
            sha256: String(repeating: "cd", count: 32))
    }

    @Test func theResponderHearsOfEachWaitingAlertOnceWithTheWholeAlert() async throws {
        let fixture = try IngestFixture()
        defer { fixture.remove() }
        let writer = StoreWriter(database: fixture.database, clock: { 0 }, onError: { _ in })
        writer.start()
        defer { writer.finish() }
        let heard = Mutex<[AlertRecord]>([])
        let intake = AlertIntake(
            database: fixture.database, writer: writer, mounts: TmpfsMountCache(extra: [PathBytes("/dev/shm")]),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            // Long enough that the file is recorded before the first look even on a loaded machine.
            retryDelays: [.milliseconds(500), .seconds(1)],
            onStored: { record in heard.withLock { $0.append(record) } })
        let unique = "/dev/shm/shmwarden-late-\(UUID().uuidString.prefix(8))"
        let bodies = ["found": Self.alert(path: unique + "-found"), "never": Self.alert(path: unique + "-never")]
        var ids: [String: String] = [:]
        for (name, body) in bodies {
            guard case .accepted(let id, false, 0) = await intake.submit(Data(body.utf8)) else {
                Issue.record("\(name) not accepted as new and without evidence")
                return
            }
            ids[name] = id
        }
        writer.submit(.record(Self.record(unique + "-found"), nil))

        let deadline = ContinuousClock.now + .seconds(10)
        while heard.withLock({ $0.count }) < 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Nothing waits for another look any more: nothing more can come.
        while intake.alertsWaitingForEvidence > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(intake.alertsWaitingForEvidence == 0)
        let records = Dictionary(grouping: heard.withLock { $0 }, by: \.id)
        #expect(records.count == 2 && records.values.allSatisfy { $0.count == 1 }, "each heard of once")

        let found = try #require(records[ids["found"] ?? ""]?.first)
        #expect(found.correlations.map(\.path) == [PathBytes(unique + "-found")])
        #expect(found.noEvidenceReason == nil)
        let never = try #require(records[ids["never"] ?? ""]?.first)
        #expect(never.correlations.isEmpty && never.noEvidenceReason == .neverSeen)
        for (name, record) in [("found", found), ("never", never)] {
            let original = try FalcoAlert.decode(Data(bodies[name]!.utf8))
            #expect(record.alert.raw == bodies[name], "\(name): the JSON as it came")
            #expect(record.alert.outputFields == original.outputFields)
            #expect(record.alert.outputFields["proc.exe_ino.ctime"] == .unsigned(UInt64.max))
            #expect(record.alert.tags == original.tags && record.alert.rule == original.rule)
            #expect(record.alert.time == original.time && record.alert.hostname == "node-a")
        }
        #expect(try fixture.database.alert(id: ids["found"]!)?.correlations.count == 1, "stored too")
    }
}
