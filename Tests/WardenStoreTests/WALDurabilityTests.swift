// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenStore

/// What the store commits is in the WAL where SQLite and every other connection look for it: at
/// once for a reader, and on disk for a crash right after.
@Suite struct WALDurabilityTests {
    static let time: Int64 = 1_795_000_000_000_000_000

    static func alert(_ n: Int, outputBytes: Int = 100) throws -> StoreCommand {
        let output = String(repeating: "x", count: outputBytes)
        let json = """
            {"rule":"r","priority":"Warning","time":"\(Timestamp(nanosecondsSinceEpoch: time + Int64(n)).rfc3339)",\
            "output":"\(output)","output_fields":{}}
            """
        return .alert(
            AlertRecord(
                id: "a\(n)", alert: try FalcoAlert.decode(Data(json.utf8)),
                receivedAt: Timestamp(nanosecondsSinceEpoch: time)))
    }

    /// Commits without an fsync (file records are `synchronous=NORMAL`): another connection
    /// reads them at once.
    @Test func anotherConnectionSeesEachCommitAtOnce() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let reader = try EvidenceDatabase(path: temporary.database.path, connections: .single)
        for n in 1...40 {
            try temporary.database.apply([.record(sampleRecord("/dev/shm/f\(n)", inode: UInt64(n)), nil)])
            #expect(try reader.files().count == n)
        }
    }

    /// A copy of the database and its WAL taken right after the commits, as a crash would leave
    /// them: opening it replays the WAL, which checks every frame's checksum and stops at the
    /// first bad or missing one. Small commits, and one transaction larger than SQLite's page
    /// cache (SQLite spills pages to the WAL before the commit).
    @Test func theWALOnDiskHoldsEveryCommittedFrame() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        for n in 0..<30 { try temporary.database.apply([try Self.alert(n)]) }
        try temporary.database.apply(try (30..<130).map { try Self.alert($0, outputBytes: 100_000) })
        for n in 130..<140 { try temporary.database.apply([try Self.alert(n)]) }

        let copy = temporary.directory + "/copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(
                atPath: temporary.database.path + suffix, toPath: copy + "/shmwarden.sqlite" + suffix)
        }
        let walBytes = try #require(
            try FileManager.default.attributesOfItem(atPath: copy + "/shmwarden.sqlite-wal")[.size] as? Int)
        #expect(walBytes > 10_000_000, "the commits are in the WAL, not checkpointed away")
        let recovered = try EvidenceDatabase(path: copy + "/shmwarden.sqlite", connections: .single)
        #expect(try recovered.alertCount() == 140)
        #expect(try recovered.integrityCheck() == ["ok"])
    }
}
