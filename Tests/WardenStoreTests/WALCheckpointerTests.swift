// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import Synchronization
import Testing

@testable import WardenStore

@Suite struct WALCheckpointerTests {
    /// The checkpointer beside the store writer copies the WAL into the database while a write
    /// transaction is open, so commits never wait for it (a checkpoint that needs the write lock
    /// would wait here until the transaction ends).
    @Test func itCopiesTheWALWhileTheWriterHoldsTheWriteLock() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let padding = String(repeating: "x", count: 400)
        for index in 0..<300 {
            try temporary.database.apply([
                .record(sampleRecord("/dev/shm/\(padding)/f\(index)", inode: UInt64(index)), nil)
            ])
        }
        func databaseBytes() throws -> Int64 {
            try #require(try FileManager.default.attributesOfItem(atPath: temporary.database.path)[.size] as? Int64)
        }
        let before = try databaseBytes()
        let errors = Mutex<[String]>([])
        let checkpointer = try #require(
            try temporary.database.makeWALCheckpointer(onError: { error in errors.withLock { $0.append("\(error)") } }))
        defer { checkpointer.stop() }
        try temporary.database.dbWriter.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            try db.execute(sql: "DELETE FROM file WHERE id = 1")
            checkpointer.start()
            let deadline = ContinuousClock.now + .seconds(5)
            while checkpointer.current != .finished && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.001)
            }
            #expect(checkpointer.current == .finished, "the checkpoint waited for the write lock")
            try db.execute(sql: "COMMIT")
        }
        #expect(try databaseBytes() > before + 100_000, "the WAL's pages were copied into the database")
        #expect(errors.withLock { $0 } == [])
        #expect(try temporary.database.files().count == 299)
    }

    /// A command's single connection has no checkpointer: nothing commits beside its writer.
    @Test func aSingleConnectionHasNone() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let single = try EvidenceDatabase(path: temporary.database.path, connections: .single)
        #expect(try single.makeWALCheckpointer(onError: { _ in }) == nil)
    }
}
