// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenResponse
import WardenSandbox
import WardenStore
import WardenTestSupport

/// The responder end to end: a real store, a real dropped binary running on a real tmpfs, a
/// Falco alert about it, and a policy in each mode.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, "needs root for tmpfs and quarantine"))
struct ResponderTests {
    let mount: TestMount
    let state: String
    let database: EvidenceDatabase
    let binary: String

    init() throws {
        mount = try TestMount()
        state = makeStateDirectory()
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        database = try EvidenceDatabase(path: state + "/shmwarden.sqlite")
        binary = mount.child("miner")
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: binary)
        chmod(binary, 0o755)
    }

    func cleanUp() {
        mount.remove()
        try? FileManager.default.removeItem(atPath: state)
    }

    /// Records the binary as the sensor would, and an alert about `pid` correlated with it.
    func recordEvidenceAndAlert(pid: Int32) throws -> AlertRecord {
        let status = try #require(lstatOf(Array(binary.utf8)))
        let now = Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9))
        let sha = sha256Hex(try Data(contentsOf: URL(fileURLWithPath: binary)))
        let file = FileRecord(
            path: PathBytes(binary), mountPoint: PathBytes(mount.path), fileType: .regular,
            device: UInt64(status.st_dev), inode: UInt64(status.st_ino), size: Int64(status.st_size),
            mode: UInt32(status.st_mode), uid: 0, gid: 0, linkCount: 1, modified: now, changed: now, firstSeen: now,
            lastSeen: now, kind: .elf, reasons: [.elf, .execBit], hashStatus: .ok, sha256: sha)
        try database.apply([.record(file, nil)])
        let stored = try #require(try database.files(FileQuery(path: binary)).first)
        let json = """
            {"rule":"Execution from /dev/shm","priority":"Warning","time":"\(now.rfc3339)","source":"syscall",
             "hostname":"h","tags":["mitre_execution"],"output":"x",
             "output_fields":{"proc.pid":\(pid),"proc.exepath":"\(binary)","container.id":"host"}}
            """
        let alert = try FalcoAlert.decode(Data(json.utf8))
        let record = AlertRecord(
            id: "alert-\(pid)", alert: alert, receivedAt: now,
            correlations: [
                Correlation(
                    fileID: stored.id!, sha256: sha, path: PathBytes(binary), matchedBy: "proc.exepath", confidence: 1)
            ])
        try database.apply([.alert(record)])
        return record
    }

    func responder(
        _ mode: PolicyMode, sandbox: Bool = false,
        actions: String = "record, quarantine, kill-process, advise-noexec, sandbox"
    ) throws -> Responder {
        let policy = try PolicyParser.merge([
            try PolicyParser.parse(
                """
                mode: \(mode.rawValue)
                rules:
                  - name: shm-exec
                    match: {rule: Execution from /dev/shm, priority: ">=Warning", file: {kind: elf}}
                    actions: [\(actions)]
                """, file: "test.yaml"
            ).get()
        ]).get()
        let database = self.database
        return Responder(
            policy: SharedPolicy(policy), database: database,
            vault: try QuarantineVault(directory: state + "/quarantine"),
            sandbox: sandbox ? SandboxRunner(directory: state + "/sandbox") : nil,
            logger: quietLogger, clock: { Timestamp(nanosecondsSinceEpoch: 1) },
            record: { commands in _ = try? database.apply(commands) })
    }

    /// However many alerts ask for the same sample, it is run in the sandbox once.
    @Test func aSampleIsRunInTheSandboxOnce() throws {
        defer { cleanUp() }
        let alert = try recordEvidenceAndAlert(pid: 999_999)
        let responder = try responder(.enforce, sandbox: true, actions: "sandbox")
        let first = responder.respond(to: responder.subject(for: alert)).filter { $0.action == "sandbox" }
        let second = responder.respond(to: responder.subject(for: alert)).filter { $0.action == "sandbox" }
        #expect(first.map(\.outcome) == [.performed], "\(first.map(\.detail))")
        #expect(second.map(\.outcome) == [.skipped])
        #expect(second.first?.detail.contains("was run in the sandbox already") == true, "\(second.map(\.detail))")
    }

    @Test func enforceQuarantinesKillsAdvisesAndAuditsEverything() throws {
        defer { cleanUp() }
        let child = try launch(binary, ["30"])
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        let alert = try recordEvidenceAndAlert(pid: child.processIdentifier)
        let responder = try responder(.enforce)
        let rows = responder.respond(to: responder.subject(for: alert))

        #expect(rows.map(\.action) == ["record", "quarantine", "kill-process", "advise-noexec", "sandbox"])
        #expect(
            rows.map(\.outcome) == [.performed, .performed, .performed, .performed, .skipped], "\(rows.map(\.detail))")
        child.waitUntilExit()
        #expect(child.terminationStatus == SIGKILL)
        #expect(lstatOf(Array(binary.utf8)) == nil, "quarantined away")
        #expect(try database.files(FileQuery(path: binary)).first?.state == .quarantined)
        #expect(rows[3].detail.contains("mount -o remount,noexec,nosuid,nodev \(mount.path)"))
        let stored = try #require(try database.alert(id: alert.id))
        #expect(stored.actions.map(\.action) == rows.map(\.action))
        #expect(stored.actions.allSatisfy { $0.alertId == alert.id && $0.rule == "shm-exec" && $0.mode == .enforce })
    }

    @Test func monitorTouchesNothingAndRecordsThePlan() throws {
        defer { cleanUp() }
        let child = try launch(binary, ["30"])
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        let alert = try recordEvidenceAndAlert(pid: child.processIdentifier)
        let responder = try responder(.monitor)
        let rows = responder.respond(to: responder.subject(for: alert))
        #expect(rows.map(\.outcome) == [.performed, .planned, .planned, .performed, .planned])
        #expect(rows[1].detail.hasPrefix("would quarantine \(binary)"))
        #expect(rows[2].detail.contains("would send SIGKILL to pid \(child.processIdentifier)"))
        #expect(child.isRunning)
        #expect(lstatOf(Array(binary.utf8)) != nil)
        #expect(try database.files(FileQuery(path: binary)).first?.state == .present)
        #expect(try database.actions(alertID: alert.id).count == 5)
    }
}
