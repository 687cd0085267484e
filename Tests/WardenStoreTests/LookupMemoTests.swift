// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenStore

/// The store writer's memo of correlation lookups must never answer from rows that changed:
/// each test makes the memo hold an answer, changes the rows behind it one way, and checks the
/// next alert sees the change.
@Suite struct LookupMemoTests {
    static let mounts = [PathBytes("/dev/shm")]

    static func alert(_ id: String, path: String, at nanos: Int64) throws -> StoreCommand {
        let json = """
            {"rule":"Execution from /dev/shm","priority":"Warning",\
            "time":"\(Timestamp(nanosecondsSinceEpoch: nanos).rfc3339)","output_fields":{"proc.exepath":"\(path)"}}
            """
        return .correlateAndStore(
            AlertRecord(
                id: id, alert: try FalcoAlert.decode(Data(json.utf8)),
                receivedAt: Timestamp(nanosecondsSinceEpoch: nanos)),
            tmpfsMounts: mounts)
    }

    static let time: Int64 = 1_795_000_000_000_000_000

    @Test func aFileRecordedAfterALookupIsFoundInTheSameBatchAndTheNext() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo()
        let applied = try temporary.database.applyBatch(
            [
                try Self.alert("a", path: "/dev/shm/x", at: Self.time),
                .record(sampleRecord("/dev/shm/x", at: Self.time), nil),
                try Self.alert("b", path: "/dev/shm/x", at: Self.time + 1),
            ], memo: memo)
        #expect(applied.alerts[0]?.record.noEvidenceReason == .neverSeen)
        #expect(applied.alerts[2]?.record.correlations.map(\.path) == [PathBytes("/dev/shm/x")])
        #expect(memo.count > 0, "the lookup after the record is remembered")
        let next = try temporary.database.applyBatch(
            [try Self.alert("c", path: "/dev/shm/x", at: Self.time + 2)], memo: memo)
        #expect(next.alerts[0]?.record.correlations.count == 1)
        // A deletion mark is a change of the file row: the memo forgets, and the next lookup
        // reads the row as it is now.
        try temporary.database.applyBatch(
            [.markDeleted(PathBytes("/dev/shm/x"), at: Timestamp(nanosecondsSinceEpoch: Self.time + 3))], memo: memo)
        #expect(memo.count == 0)
        let late = try temporary.database.applyBatch(
            [try Self.alert("d", path: "/dev/shm/x", at: Self.time + 60_000_000_000)], memo: memo)
        #expect(late.alerts[0]?.record.noEvidenceReason == .neverSeen, "deleted a minute before the alert")
    }

    @Test func aFileRecordedByAnotherConnectionIsFound() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo()
        let before = try temporary.database.applyBatch(
            [try Self.alert("a", path: "/dev/shm/y", at: Self.time)], memo: memo)
        #expect(before.alerts[0]?.record.noEvidenceReason == .neverSeen)
        #expect(memo.count > 0, "the empty answer is remembered")
        let other = try EvidenceDatabase(path: temporary.database.path, connections: .single)
        try other.apply([.record(sampleRecord("/dev/shm/y", at: Self.time), nil)])
        let after = try temporary.database.applyBatch(
            [try Self.alert("b", path: "/dev/shm/y", at: Self.time + 1)], memo: memo)
        #expect(after.alerts[0]?.record.correlations.map(\.path) == [PathBytes("/dev/shm/y")])
    }

    @Test func retentionOnTheWritersConnectionIsSeen() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo()
        let old: Int64 = 1_000
        try temporary.database.apply([.record(sampleRecord("/dev/shm/z", at: old, state: .deleted), nil)])
        // Deleted long before this alert: looked up and remembered, but not evidence for it.
        let later = try temporary.database.applyBatch(
            [try Self.alert("a", path: "/dev/shm/z", at: Self.time)], memo: memo)
        #expect(later.alerts[0]?.record.noEvidenceReason == .neverSeen)
        #expect(memo.count > 0)
        let report = try temporary.database.prune(
            olderThan: Timestamp(nanosecondsSinceEpoch: Self.time), evidenceBudget: nil, protected: [], dryRun: false)
        #expect(report.files == 1)
        #expect(memo.count == 0, "the pruned row is forgotten")
        // An alert from when the pruned file existed: a remembered row would be correlated, and
        // its correlation would point at a row that is gone.
        let then = try temporary.database.applyBatch([try Self.alert("b", path: "/dev/shm/z", at: old)], memo: memo)
        #expect(then.alerts[0]?.record.correlations.isEmpty == true)
    }

    @Test func whatAFailedBatchReadIsForgotten() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo()
        // The batch records a file, looks it up, then fails (a correlation to a file row that
        // does not exist breaks a foreign key): everything it did is rolled back.
        let bogus = CorrelationResult(
            correlations: [
                Correlation(fileID: 999_999, sha256: nil, path: PathBytes("/dev/shm/w"), matchedBy: "t", confidence: 1)
            ],
            noEvidenceReason: nil)
        #expect(throws: (any Error).self) {
            try temporary.database.applyBatch(
                [
                    .record(sampleRecord("/dev/shm/w", at: Self.time), nil),
                    try Self.alert("a", path: "/dev/shm/w", at: Self.time),
                    .correlations(alertID: "a", bogus),
                ], memo: memo)
        }
        #expect(memo.count == 0)
        #expect(try temporary.database.files().isEmpty)
        let after = try temporary.database.applyBatch(
            [try Self.alert("b", path: "/dev/shm/w", at: Self.time)], memo: memo)
        #expect(after.alerts[0]?.record.noEvidenceReason == .neverSeen)
    }

    /// "No exec record for this pid" is remembered too; the guard recording an exec of that pid
    /// makes the memo forget it, and the next alert about the pid is correlated through it.
    @Test func anExecRecordedAfterALookupIsFound() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo()
        let path = "/dev/shm/guarded"
        let file = sampleRecord(path, inode: 77, at: Self.time)
        try temporary.database.apply([.record(file, nil)])
        func alert(_ id: String) throws -> StoreCommand {
            // Names only the pid: the exec record is the one way to the file.
            let json = """
                {"rule":"r","priority":"Warning","time":"\(Timestamp(nanosecondsSinceEpoch: Self.time).rfc3339)",\
                "output_fields":{"proc.pid":4242}}
                """
            return .correlateAndStore(
                AlertRecord(
                    id: id, alert: try FalcoAlert.decode(Data(json.utf8)),
                    receivedAt: Timestamp(nanosecondsSinceEpoch: Self.time)),
                tmpfsMounts: Self.mounts)
        }
        let before = try temporary.database.applyBatch([try alert("a")], memo: memo)
        #expect(before.alerts[0]?.record.correlations.isEmpty == true)
        #expect(memo.count > 0, "no exec of pid 4242 is remembered")
        try temporary.database.applyBatch(
            [
                .exec(
                    ExecRecord(
                        time: Timestamp(nanosecondsSinceEpoch: Self.time), pid: 4242, ppid: 1, uid: 0,
                        path: PathBytes(path), sha256: file.sha256, device: file.device, inode: file.inode,
                        verdict: .allow, wouldBe: .allow, mode: .monitor, rule: "r", reason: "test", cached: false,
                        decisionNanoseconds: 1))
            ], memo: memo)
        let after = try temporary.database.applyBatch([try alert("b")], memo: memo)
        #expect(after.alerts[0]?.record.correlations.map(\.matchedBy) == ["exec-record:proc.pid"])
    }

    @Test func theMemoStaysBounded() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let memo = LookupMemo(capacity: 8)
        let alerts = try (0..<50).map { try Self.alert("a\($0)", path: "/dev/shm/n\($0)", at: Self.time + Int64($0)) }
        try temporary.database.applyBatch(alerts, memo: memo)
        #expect(memo.count <= 2 * 8, "paths and pids, each at most the capacity")
    }
}
