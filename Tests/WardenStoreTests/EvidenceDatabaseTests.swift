// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenStore

/// A fresh database file in its own directory, removed afterwards.
struct TemporaryDatabase {
    let directory: String
    let database: EvidenceDatabase

    init() throws {
        directory = NSTemporaryDirectory() + "shmwarden-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        database = try EvidenceDatabase(path: directory + "/shmwarden.sqlite")
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

func sampleRecord(
    _ path: String, inode: UInt64 = 10, sha: String? = String(repeating: "ab", count: 32), at nanos: Int64 = 1_000,
    state: FileState = .present
) -> FileRecord {
    FileRecord(
        path: PathBytes(path), mountPoint: PathBytes("/dev/shm"), fileType: .regular, device: 42, inode: inode,
        size: 100, mode: 0o100755, uid: 1000, gid: 1000, linkCount: state == .present ? 1 : 0,
        modified: Timestamp(nanosecondsSinceEpoch: nanos), changed: Timestamp(nanosecondsSinceEpoch: nanos),
        firstSeen: Timestamp(nanosecondsSinceEpoch: nanos), lastSeen: Timestamp(nanosecondsSinceEpoch: nanos),
        deletedAt: state == .deleted ? Timestamp(nanosecondsSinceEpoch: nanos) : nil, state: state,
        kind: .elf, reasons: [.execBit, .elf], hashStatus: sha == nil ? .tooLarge : .ok, sha256: sha)
}

func sampleBlob(_ sha: String) -> BlobRecord {
    BlobRecord(
        sha256: sha, size: 100, kind: .elf,
        elf: ELFFacts(
            bits: 64, endianness: "little", machine: "x86_64", type: "shared", interpreter: "/lib/ld.so",
            isStatic: false, isStripped: true),
        script: nil, evidencePath: "/state/evidence/sha256/\(sha.prefix(2))/\(sha)",
        firstSeen: Timestamp(nanosecondsSinceEpoch: 1))
}

@Suite struct EvidenceDatabaseTests {
    @Test func schemaIsMigratedInWALModeWithPrivateFiles() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        #expect(
            try temporary.database.appliedMigrations() == [
                "v1", "v2-alerts", "v3-internal-alert-time", "v4-actions", "v5-execs", "v6-sandbox", "v7-exec-held",
                "v8-file-inode", "v9-alert-seq", "v10-no-alert-time-index", "v11-alert-sender", "v12-evidence-skipped",
                "v13-process-capture", "v14-outbox", "v15-yara",
            ])
        #expect(try temporary.database.journalMode() == "wal")
        try temporary.database.apply([.record(sampleRecord("/dev/shm/x"), nil)])
        for suffix in ["", "-wal"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: temporary.database.path + suffix)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "mode of shmwarden.sqlite\(suffix)")
        }
        // Reopening an existing database migrates nothing twice.
        let again = try EvidenceDatabase(path: temporary.database.path)
        #expect(try again.files().count == 1)
    }

    /// What each command-line run does: open, write, close. The WAL stays (persistent); a
    /// command's close leaves a small one for the next opener and checkpoints (empties) one past
    /// `closingCheckpointBytes`, so it never grows run after run; the agent's pool empties it
    /// when it closes. `close()` (what `sandbox` calls before it exits with the database still
    /// referenced) does the same as the release.
    @Test(arguments: [false, true]) func closingConnectionsKeepTheWALSmall(explicitly: Bool) throws {
        let directory = NSTemporaryDirectory() + "shmwarden-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shmwarden.sqlite"
        func walSize() throws -> Int {
            try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? -1
        }
        _ = try EvidenceDatabase(path: path)  // created and migrated by the agent
        var sizes: [Int] = []  // what each run leaves behind
        for run in 0..<60 {
            do {
                let database = try EvidenceDatabase(path: path, connections: .single)
                try database.apply(
                    (0..<5).map {
                        .record(sampleRecord("/dev/shm/run\(run)-\($0)", inode: UInt64(run * 100 + $0)), nil)
                    })
                if explicitly { try database.close() }
            }
            sizes.append(try walSize())
        }
        #expect(sizes.first ?? 0 > 0, "the first run's commit is left in the WAL")
        #expect(zip(sizes, sizes.dropFirst()).contains { $1 < $0 }, "a close checkpointed the WAL past the limit")
        #expect(sizes.max() ?? 0 < 2 * EvidenceDatabase.closingCheckpointBytes, "and it never grew much past it")
        #expect(try EvidenceDatabase(path: path, connections: .single).files().count == 300, "nothing lost in the WAL")
    }

    @Test func theAgentsPoolEmptiesTheWALWhenItCloses() throws {
        let directory = NSTemporaryDirectory() + "shmwarden-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shmwarden.sqlite"
        _ = try EvidenceDatabase(path: path)
        do {
            let command = try EvidenceDatabase(path: path, connections: .single)
            try command.apply([.record(sampleRecord("/dev/shm/a"), nil)])
        }
        #expect(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? 0 > 0)
        do {
            let pool = try EvidenceDatabase(path: path)
            try pool.apply([.record(sampleRecord("/dev/shm/b", inode: 11), nil)])
        }
        #expect(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int == 0, "kept, empty")
        #expect(try EvidenceDatabase(path: path, connections: .single).files().count == 2)
    }

    /// A command's single connection creates the database the agent expects (WAL, migrated), and
    /// beside a running agent's pool it sees what the agent committed and its own writes reach
    /// the agent.
    @Test func aSingleConnectionWorksBesideTheAgentsPool() throws {
        let directory = NSTemporaryDirectory() + "shmwarden-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shmwarden.sqlite"
        let created = try EvidenceDatabase(path: path, connections: .single)
        #expect(try created.journalMode() == "wal")
        #expect(try created.appliedMigrations().last == "v15-yara")
        let agent = try EvidenceDatabase(path: path)
        try agent.apply([.record(sampleRecord("/dev/shm/by-agent"), nil)])
        let command = try EvidenceDatabase(path: path, connections: .single)
        #expect(try command.files().map(\.path) == [PathBytes("/dev/shm/by-agent")])
        try command.apply([.record(sampleRecord("/dev/shm/by-command", inode: 11), nil)])
        #expect(try agent.files().count == 2)
    }

    @Test func recordsRoundTripWithBlobFacts() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let sha = String(repeating: "cd", count: 32)
        let odd = PathBytes(Array("/dev/shm/".utf8) + [0xff, 0x0a, 0x00 + 0x41])
        var record = sampleRecord("/dev/shm/ignored", sha: sha)
        record.path = odd
        try temporary.database.apply([.record(record, sampleBlob(sha))])
        let stored = try #require(try temporary.database.files().first)
        #expect(stored.path == odd)
        #expect(stored.sha256 == sha)
        #expect(stored.elf?.interpreter == "/lib/ld.so")
        #expect(stored.evidencePath == "/state/evidence/sha256/cd/\(sha)")
        #expect(stored.reasons == [.execBit, .elf])
        #expect(stored.mode == 0o100755 && stored.uid == 1000 && stored.device == 42)
        #expect(try temporary.database.blob(sha256: sha)?.elf?.machine == "x86_64")
    }

    @Test func sameContentUpdatesNewContentReplaces() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let first = String(repeating: "11", count: 32)
        let second = String(repeating: "22", count: 32)
        try temporary.database.apply([.record(sampleRecord("/dev/shm/x", sha: first, at: 1), sampleBlob(first))])
        var chmodded = sampleRecord("/dev/shm/x", sha: first, at: 2)
        chmodded.mode = 0o100700
        try temporary.database.apply([.record(chmodded, nil)])
        var files = try temporary.database.files()
        #expect(files.count == 1)
        #expect(files[0].mode == 0o100700)
        #expect(files[0].firstSeen.nanosecondsSinceEpoch == 1 && files[0].lastSeen.nanosecondsSinceEpoch == 2)

        try temporary.database.apply([.record(sampleRecord("/dev/shm/x", sha: second, at: 3), sampleBlob(second))])
        files = try temporary.database.files()
        #expect(files.map(\.state) == [.deleted, .present])
        #expect(files.map(\.sha256) == [first, second])
        #expect(files[0].deletedAt?.nanosecondsSinceEpoch == 3)
    }

    @Test func anUnlinkedObservationDoesNotDisplaceThePresentFile() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let current = String(repeating: "33", count: 32)
        let old = String(repeating: "44", count: 32)
        try temporary.database.apply([
            .record(sampleRecord("/dev/shm/x", inode: 2, sha: current), nil),
            .record(sampleRecord("/dev/shm/x", inode: 1, sha: old, state: .deleted), nil),
        ])
        let files = try temporary.database.files()
        #expect(files.map(\.state) == [.present, .deleted])
    }

    @Test func deletionsSubtreesAndReconcile() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let paths = ["/dev/shm/a", "/dev/shm/dir/b", "/dev/shm/dir/c", "/dev/shm/dirx/d", "/dev/shm/e", "/dev/shm/f"]
        try temporary.database.apply(paths.enumerated().map { .record(sampleRecord($1, inode: UInt64($0)), nil) })
        try temporary.database.apply([
            .markDeleted(PathBytes("/dev/shm/a"), at: Timestamp(nanosecondsSinceEpoch: 5)),
            .markSubtreeDeleted(PathBytes("/dev/shm/dir"), at: Timestamp(nanosecondsSinceEpoch: 6)),
        ])
        var state = Dictionary(
            uniqueKeysWithValues: try temporary.database.files().map { ($0.path.displayString, $0.state) })
        #expect(state["/dev/shm/a"] == .deleted)
        #expect(state["/dev/shm/dir/b"] == .deleted && state["/dev/shm/dir/c"] == .deleted)
        #expect(state["/dev/shm/dirx/d"] == .present, "a sibling sharing the prefix is not below /dev/shm/dir")
        try temporary.database.apply([
            .reconcile(
                root: PathBytes("/dev/shm"), present: [PathBytes("/dev/shm/e"), PathBytes("/dev/shm/dirx/d")],
                at: Timestamp(nanosecondsSinceEpoch: 7))
        ])
        state = Dictionary(
            uniqueKeysWithValues: try temporary.database.files().map { ($0.path.displayString, $0.state) })
        #expect(state["/dev/shm/e"] == .present && state["/dev/shm/dirx/d"] == .present)
        #expect(state["/dev/shm/f"] == .deleted)
    }

    @Test func queriesBySHAPrefixPathAndGlob() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let shaA = "aaaa" + String(repeating: "0", count: 60)
        let shaB = "bbbb" + String(repeating: "0", count: 60)
        try temporary.database.apply([
            .record(sampleRecord("/dev/shm/one", inode: 1, sha: shaA), nil),
            .record(sampleRecord("/dev/shm/sub/two", inode: 2, sha: shaB), nil),
            .record(sampleRecord("/run/user/0/three", inode: 3, sha: shaA), nil),
        ])
        let db = temporary.database
        #expect(
            try db.files(FileQuery(sha256: shaA)).map(\.path.displayString) == ["/dev/shm/one", "/run/user/0/three"])
        #expect(try db.files(FileQuery(sha256: "BBBB")).map(\.path.displayString) == ["/dev/shm/sub/two"])
        #expect(try db.files(FileQuery(path: "/dev/shm/one")).count == 1)
        #expect(try db.files(FileQuery(path: "/dev/shm/*")).map(\.path.displayString) == ["/dev/shm/one"])
        #expect(try db.files(FileQuery(path: "/dev/shm/**")).count == 2)
        #expect(try db.files(FileQuery(sha256: shaA, path: "/run/**")).count == 1)
        #expect(try db.files(FileQuery(state: .deleted)).isEmpty)
    }

    @Test func auditRowsAndQuarantineStateAreKept() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let database = temporary.database
        try database.apply([
            .record(sampleRecord("/dev/shm/x"), nil), .record(sampleRecord("/dev/shm/y", inode: 11), nil),
        ])
        let row = ActionRecord(
            time: Timestamp(nanosecondsSinceEpoch: 5), alertId: "a1", fileId: 1, rule: "r", action: "quarantine",
            mode: .enforce, outcome: .failed, target: "/dev/shm/x", detail: "copy failed", errno: 28)
        try database.apply([
            .action(row), .quarantined(path: PathBytes("/dev/shm/x"), device: 42, inode: 10),
            // Another inode at that path is not the quarantined file.
            .quarantined(path: PathBytes("/dev/shm/y"), device: 42, inode: 99),
        ])
        let stored = try database.actions(alertID: "a1")
        #expect(stored.count == 1)
        #expect(stored.first?.errno == 28 && stored.first?.outcome == .failed && stored.first?.mode == .enforce)
        #expect(stored.first?.id != nil)
        #expect(try database.actions(alertID: "other").isEmpty)
        #expect(try database.files().map(\.state) == [.quarantined, .present])
        #expect(try database.files(ids: [2, 1, 77]).map(\.path) == [PathBytes("/dev/shm/x"), PathBytes("/dev/shm/y")])
    }

    @Test func pruneKeepsWhatAlertsAndQuarantineStillNeed() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let database = temporary.database
        let old: Int64 = 1_000
        let recent: Int64 = 10_000_000_000_000
        let sha = { (n: Int) in String(repeating: String(n), count: 64) }
        var blobs: [StoreCommand] = []
        for n in 1...5 {
            var blob = sampleBlob(sha(n))
            blob.evidencePath = "/evidence/\(n)"
            blob.firstSeen = Timestamp(nanosecondsSinceEpoch: Int64(n))
            blobs.append(
                .record(sampleRecord("/dev/shm/f\(n)", inode: UInt64(n), sha: sha(n), at: old, state: .deleted), blob))
        }
        // 1: deleted, old, unreferenced → goes. 2: referenced by a recent alert → stays.
        // 3: quarantined hash → row goes, blob and copy stay. 4: present → stays. 5: old alert only → goes.
        blobs[3] = .record(
            sampleRecord("/dev/shm/f4", inode: 4, sha: sha(4), at: old, state: .present),
            {
                var blob = sampleBlob(sha(4))
                blob.evidencePath = "/evidence/4"
                return blob
            }())
        try database.apply(blobs)
        func alert(_ id: String, at nanos: Int64, file: Int64) throws -> StoreCommand {
            let json =
                #"{"rule":"r","priority":"Warning","time":"\#(Timestamp(nanosecondsSinceEpoch: nanos).rfc3339)","output_fields":{}}"#
            return .alert(
                AlertRecord(
                    id: id, alert: try FalcoAlert.decode(Data(json.utf8)),
                    receivedAt: Timestamp(nanosecondsSinceEpoch: nanos),
                    correlations: [
                        Correlation(fileID: file, sha256: nil, path: PathBytes("/x"), matchedBy: "t", confidence: 1)
                    ]))
        }
        try database.apply([try alert("recent", at: recent, file: 2), try alert("old", at: old, file: 5)])
        let cutoff = Timestamp(nanosecondsSinceEpoch: recent - 1)
        let preview = try database.prunePreview(olderThan: cutoff, evidenceBudget: nil, protected: [sha(3)])
        #expect(try database.files().count == 5, "a dry run changes nothing")
        let report = try database.prune(olderThan: cutoff, evidenceBudget: nil, protected: [sha(3)], dryRun: false)
        #expect(report == preview)
        #expect(report.alerts == 1 && report.files == 3 && report.blobs == 2)
        #expect(Set(report.evidencePaths) == ["/evidence/1", "/evidence/5"])
        #expect(try database.files().map(\.path.displayString).sorted() == ["/dev/shm/f2", "/dev/shm/f4"])
        #expect(try database.alert(id: "recent") != nil && database.alert(id: "old") == nil)
        #expect(try database.blob(sha256: sha(3))?.evidencePath == "/evidence/3")

        // A budget of one blob's size: only copies nothing needs go (3 is protected, 2 is
        // referenced by an alert, 4 is present): nothing left to drop.
        let budget = try database.prune(olderThan: nil, evidenceBudget: 1, protected: [sha(3)], dryRun: false)
        #expect(budget.evidencePaths.isEmpty)
        let unprotected = try database.prune(olderThan: nil, evidenceBudget: 1, protected: [], dryRun: false)
        #expect(unprotected.evidencePaths == ["/evidence/3"])
    }

    @Test func sensorEventsAreKept() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        try temporary.database.apply([
            .sensorEvent(
                SensorEvent(
                    time: Timestamp(nanosecondsSinceEpoch: 9), kind: .overflow, mountPoint: nil, detail: "IN_Q_OVERFLOW"
                )),
            .sensorEvent(
                SensorEvent(
                    time: Timestamp(nanosecondsSinceEpoch: 10), kind: .rescan, mountPoint: PathBytes("/dev/shm"),
                    detail: "x")),
        ])
        #expect(try temporary.database.sensorEvents().map(\.kind) == [.overflow, .rescan])
        #expect(try temporary.database.sensorEvents(kind: .rescan).first?.mountPoint == PathBytes("/dev/shm"))
    }

    /// Every lookup an alert's correlation makes is served by an index, never a table scan.
    @Test func correlationLookupsUseIndexes() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let plans = try temporary.database.inReadTransaction { lookup in
            try ["path = x'2f'", "inode = 7", "sha256 = 'ab'"].map {
                try lookup.filePlan(where: $0).joined(separator: "; ")
            }
        }
        for plan in plans { #expect(plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"), "\(plan)") }
    }

    /// The correlation lookups read rows column by column: every field, null or not, comes back
    /// as `files()` (GRDB rows by name) reads it, blob facts aside.
    @Test func correlationLookupsReadEveryColumn() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        var deleted = sampleRecord("/dev/shm/gone", inode: 1 << 40, at: 2_000, state: .deleted)
        deleted.mode = 0o104755
        deleted.device = UInt64.max - 3  // stored as a negative Int64
        var link = sampleRecord("/dev/shm/link", inode: 12, sha: nil)
        link.fileType = .symlink
        link.linkTarget = PathBytes(Array("/dev/shm/".utf8) + [0xff, 0x41])
        link.mountPoint = nil
        link.hashStatus = .tooLarge
        try temporary.database.apply([.record(deleted, sampleBlob(deleted.sha256!)), .record(link, nil)])
        let stored = try temporary.database.files()
        let looked = try temporary.database.inReadTransaction { lookup in
            try lookup.files(atPath: PathBytes("/dev/shm/gone")) + lookup.files(inode: 12)
                + lookup.files(sha256: deleted.sha256!).filter { $0.path != PathBytes("/dev/shm/gone") }
        }
        var expected = stored
        for index in expected.indices {
            (expected[index].elf, expected[index].script, expected[index].evidencePath) = (nil, nil, nil)
        }
        #expect(looked == expected)
        #expect(
            looked.first?.deletedAt != nil && looked.last?.linkTarget == link.linkTarget && looked.last?.sha256 == nil)
        func exec(_ pid: Int32, at time: Int64, sha256: String?) -> StoreCommand {
            .exec(
                ExecRecord(
                    time: Timestamp(nanosecondsSinceEpoch: time), pid: pid, ppid: 1, uid: 0, path: link.linkTarget!,
                    sha256: sha256,
                    device: UInt64.max, inode: 12, verdict: .allow, wouldBe: .deny, mode: .monitor, rule: "r",
                    reason: "x",
                    cached: false, decisionNanoseconds: 5))
        }
        try temporary.database.apply([
            exec(4242, at: 5_000, sha256: nil), exec(4242, at: 50_000, sha256: "cd"), exec(7, at: 5_000, sha256: "ef"),
        ])
        let execs = try temporary.database.inReadTransaction { lookup in
            try lookup.execs(
                pid: 4242, from: Timestamp(nanosecondsSinceEpoch: 0), to: Timestamp(nanosecondsSinceEpoch: 10_000))
        }
        #expect(execs == [ExecFact(path: link.linkTarget!, device: UInt64.max, inode: 12, sha256: nil)])
    }

    @Test func writerCommitsEverythingSubmittedBeforeFinish() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let writer = StoreWriter(
            database: temporary.database, capacity: 16, batchLimit: 64, clock: { 0 }, onError: { _ in })
        writer.start()
        for index in 0..<500 { writer.submit(.record(sampleRecord("/dev/shm/f\(index)", inode: UInt64(index)), nil)) }
        writer.finish()
        let count = try temporary.database.files().count
        #expect(count == 500)
    }

    /// Under commits that never pause, the writer's own checkpoints still restart the WAL: it
    /// starts again from its beginning, again and again, instead of growing with every commit.
    ///
    /// Counted from the WAL header's checkpoint sequence number (bytes 12-15, big-endian), which
    /// SQLite increments at each restart: the WAL file's size alone depends on the disk (one
    /// fdatasync stalled for hundreds of ms let a working writer's WAL reach 1.3 times the
    /// database; without the writer's finishing pass it reached 2.4-2.6 times).
    @Test func writerKeepsTheWALSmallUnderSustainedCommits() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let clock: @Sendable () -> Int64 = { Int64(DispatchTime.now().uptimeNanoseconds) }
        let writer = StoreWriter(
            database: temporary.database, capacity: 256, batchLimit: 64, clock: clock, onError: { _ in })
        writer.start()
        let walPath = temporary.database.path + "-wal"
        let started = clock()
        var index = 0
        var largestWAL: Int64 = 0
        var restarts: UInt32 = 0
        while clock() - started < 1_500_000_000 {
            let padding = String(repeating: "x", count: 400)
            writer.submit(.record(sampleRecord("/dev/shm/\(padding)/f\(index)", inode: UInt64(index)), nil))
            index += 1
            if index % 500 == 0, let size = try? FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int64
            {
                largestWAL = max(largestWAL, size)
                restarts = max(restarts, Self.walCheckpointSequence(walPath))
            }
        }
        let database = try #require(
            try FileManager.default.attributesOfItem(atPath: temporary.database.path)[.size] as? Int64)
        writer.finish()
        #expect(database > 4 << 20, "enough written to tell (\(index) records)")
        #expect(
            restarts >= 5, "the WAL restarted \(restarts) times (\(largestWAL) bytes at most, database \(database))")
    }

    /// The checkpoint sequence number in a WAL's header (0 when there is no header yet).
    static func walCheckpointSequence(_ path: String) -> UInt32 {
        guard let handle = FileHandle(forReadingAtPath: path) else { return 0 }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 16), header.count == 16 else { return 0 }
        return header[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

@Suite struct AlertStoreTests {
    func alert(_ json: String) throws -> FalcoAlert { try FalcoAlert.decode(Data(json.utf8)) }

    @Test func alertsAreStoredOnceWithCorrelationsAndDropCaveats() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        try temporary.database.apply([.record(sampleRecord("/dev/shm/x"), nil)])
        let file = try #require(try temporary.database.files().first)
        let near = try alert(
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:00:05Z","hostname":"h1"}"#)
        let far = try alert(
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:05:00Z","hostname":"h1"}"#)
        let otherHost = try alert(
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:00:06Z","hostname":"h2"}"#)
        let drop = try alert(
            #"{"rule":"Falco internal: syscall event drop","priority":"Debug","time":"2026-11-29T12:00:00Z","hostname":"h1","output_fields":{"n_drops":"9"}}"#
        )
        let correlation = Correlation(
            fileID: try #require(file.id), sha256: file.sha256, path: file.path, matchedBy: "proc.exepath",
            confidence: 0.95)
        let now = Timestamp(nanosecondsSinceEpoch: 1)
        try temporary.database.apply([
            .alert(AlertRecord(id: "near", alert: near, receivedAt: now, correlations: [correlation])),
            .alert(AlertRecord(id: "near", alert: near, receivedAt: now, correlations: [])),
            .alert(AlertRecord(id: "far", alert: far, receivedAt: now, noEvidenceReason: .neverSeen)),
            .alert(AlertRecord(id: "other", alert: otherHost, receivedAt: now, noEvidenceReason: .neverSeen)),
            .alert(AlertRecord(id: "drop", alert: drop, receivedAt: now, noEvidenceReason: .internalEvent)),
        ])
        let stored = Dictionary(uniqueKeysWithValues: try temporary.database.alerts().map { ($0.id, $0) })
        #expect(stored.count == 4, "the repeated id is stored once")
        #expect(stored["near"]?.correlations.map(\.fileID) == file.id.map { [$0] })
        #expect(stored["near"]?.caveats.count == 1)
        #expect(stored["far"]?.caveats.isEmpty == true)
        #expect(stored["other"]?.caveats.isEmpty == true, "another host's drops say nothing about this one")
        #expect(stored["drop"]?.alert.isEventDrop == true)
        // A later look replaces the correlations and clears the reason.
        try temporary.database.apply([
            .correlations(alertID: "far", CorrelationResult(correlations: [correlation], noEvidenceReason: nil))
        ])
        let far2 = try #require(try temporary.database.alert(id: "far"))
        #expect(far2.correlations.count == 1 && far2.noEvidenceReason == nil)
        #expect(try temporary.database.alerts(limit: 2).map(\.id) == ["other", "drop"])
    }

    /// The writer correlates `correlateAndStore` alerts in its own transaction: a file record
    /// applied earlier in the same batch is found, and a repeat in the batch is a duplicate.
    @Test func alertsAreCorrelatedInsideTheWritersTransaction() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let time = Timestamp(nanosecondsSinceEpoch: 1_795_000_000_000_000_000)
        let named = try alert(
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-18T11:06:40Z","output_fields":{"proc.exepath":"/dev/shm/x"}}"#
        )
        let unknown = try alert(
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-18T11:06:40Z","output_fields":{"proc.exepath":"/dev/shm/gone"}}"#
        )
        let mounts = [PathBytes("/dev/shm")]
        let applied = try temporary.database.applyBatch([
            .record(sampleRecord("/dev/shm/x", at: time.nanosecondsSinceEpoch), nil),
            .correlateAndStore(AlertRecord(id: "named", alert: named, receivedAt: time), tmpfsMounts: mounts),
            .correlateAndStore(AlertRecord(id: "named", alert: named, receivedAt: time), tmpfsMounts: mounts),
            .correlateAndStore(AlertRecord(id: "unknown", alert: unknown, receivedAt: time), tmpfsMounts: mounts),
        ])
        #expect(applied.written == [PathBytes("/dev/shm/x")])
        #expect(applied.alerts.keys.sorted() == [1, 2, 3])
        let first = try #require(applied.alerts[1])
        #expect(!first.duplicate)
        #expect(first.record.correlations.map(\.path) == [PathBytes("/dev/shm/x")])
        #expect(first.record.correlations.first?.matchedBy == "proc.exepath")
        #expect(applied.alerts[2]?.duplicate == true)
        #expect(applied.alerts[2]?.record.correlations.count == 1, "a repeat still says what it is about")
        #expect(applied.alerts[3]?.duplicate == false)
        #expect(applied.alerts[3]?.record.noEvidenceReason == .neverSeen)
        let stored = Dictionary(uniqueKeysWithValues: try temporary.database.alerts().map { ($0.id, $0) })
        #expect(stored.count == 2)
        #expect(stored["named"]?.correlations.map(\.path) == [PathBytes("/dev/shm/x")])
        #expect(stored["unknown"]?.noEvidenceReason == .neverSeen)
    }
}
