// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization
import Testing
import WardenCore

@testable import WardenStore

/// The store writer commits durable batches without syncing the WAL and hands their waiters to
/// the WAL syncer: a waiter hears `.committed` only after the sync, and the writer commits the
/// next batches meanwhile.
@Suite struct WALSyncerTests {
    /// A sync that blocks until the test opens the gate, and counts its calls; and the errors
    /// the writer syncing through it reported.
    final class Gate: Sendable {
        let calls = Atomic<Int>(0)
        let open = Atomic<Bool>(false)
        let errors = Mutex<[String]>([])
        let failing: Bool

        init(failing: Bool = false) { self.failing = failing }

        func sync() throws {
            calls.add(1, ordering: .relaxed)
            while !open.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.001) }
            if failing { throw POSIXError(.EIO) }
        }
    }

    /// What a `commit` answered, once it has.
    final class Answer: Sendable {
        let outcome = Mutex<String?>(nil)

        init(_ writer: StoreWriter, _ command: StoreCommand) {
            Task.detached { [self] in
                let result: String
                switch await writer.commit(command) {
                case .committed: result = "committed"
                case .busy: result = "busy"
                case .failed: result = "failed"
                }
                outcome.withLock { $0 = result }
            }
        }

        var current: String? { outcome.withLock { $0 } }
    }

    /// A started writer on `database` whose WAL syncs go through `gate` (its errors too).
    static func writer(_ database: EvidenceDatabase, syncingThrough gate: Gate) -> StoreWriter {
        let writer = StoreWriter(
            database: database, clock: { 0 }, onError: { error in gate.errors.withLock { $0.append("\(error)") } },
            syncWAL: { try gate.sync() })
        writer.start()
        return writer
    }

    /// Polls `condition` without holding a thread of the pool the commits are answered on.
    static func waitFor(_ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    @Test func aDurableCommitIsAnsweredOnlyAfterTheWALSyncAndCommitsGoOnMeanwhile() async throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let gate = Gate()
        let writer = Self.writer(temporary.database, syncingThrough: gate)
        let first = Answer(writer, try WALDurabilityTests.alert(1))
        #expect(
            try await Self.waitFor { try temporary.database.alert(id: "a1") != nil }, "the first alert was committed")
        #expect(try await Self.waitFor { gate.calls.load(ordering: .relaxed) == 1 }, "its WAL sync started")
        // The writer is not held by the sync: the next alert commits while it waits.
        let second = Answer(writer, try WALDurabilityTests.alert(2))
        #expect(
            try await Self.waitFor { try temporary.database.alert(id: "a2") != nil }, "the second alert was committed")
        try await Task.sleep(for: .milliseconds(50))
        #expect(first.current == nil, "answered before its commit was synced")
        #expect(second.current == nil, "answered before its commit was synced")
        #expect(writer.awaitingSync == 2)
        gate.open.store(true, ordering: .releasing)
        #expect(try await Self.waitFor { first.current == "committed" && second.current == "committed" })
        #expect(writer.awaitingSync == 0)
        // One sync for the first batch, and one for the second, which was committed while the
        // first waited.
        #expect(gate.calls.load(ordering: .relaxed) == 2)
        writer.finish()
        #expect(gate.errors.withLock { $0 } == [])
    }

    @Test func aFailedWALSyncAnswersFailed() async throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let gate = Gate(failing: true)
        gate.open.store(true, ordering: .releasing)
        let writer = Self.writer(temporary.database, syncingThrough: gate)
        let answer = Answer(writer, try WALDurabilityTests.alert(1))
        #expect(try await Self.waitFor { answer.current != nil })
        #expect(answer.current == "failed")
        writer.finish()
        #expect(gate.errors.withLock { $0.contains { $0.contains("fdatasync of the WAL failed") } })
    }

    /// File records need no sync (NORMAL): their batches are answered without one.
    @Test func fileRecordsDoNotWaitForASync() async throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let gate = Gate()
        let writer = Self.writer(temporary.database, syncingThrough: gate)
        let answer = Answer(writer, .record(sampleRecord("/dev/shm/f", inode: 1), nil))
        #expect(try await Self.waitFor { answer.current == "committed" })
        #expect(gate.calls.load(ordering: .relaxed) == 0)
        writer.finish()
    }

    /// The real syncer holds a descriptor of the WAL file while it runs, and closes it.
    @Test func theSyncerSyncsTheWALFile() async throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        func descriptorsOfTheWAL() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))
                    == temporary.database.path + "-wal"
            }.count
        }
        let before = try descriptorsOfTheWAL()
        let ignore: @Sendable (any Error) -> Void = { _ in }
        let syncer = try #require(temporary.database.makeWALSyncer(onError: ignore))
        #expect(try descriptorsOfTheWAL() == before + 1)
        let answered = Atomic<Bool>(false)
        syncer.enqueue([
            (
                { outcome in if case .committed = outcome { answered.store(true, ordering: .releasing) } },
                .committed(nil)
            )
        ])
        #expect(try await Self.waitFor { answered.load(ordering: .acquiring) })
        syncer.stop()
        #expect(try descriptorsOfTheWAL() == before)
        let single = try EvidenceDatabase(path: temporary.database.path, connections: .single)
        #expect(single.makeWALSyncer(onError: ignore) == nil, "a command's connection syncs inside its commits")
    }
}
