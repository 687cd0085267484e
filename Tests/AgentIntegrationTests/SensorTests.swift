// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenLinux
import WardenSensors
import WardenStore

extension AgentIntegration {
    /// The sensor against the real kernel: real tmpfs mounts, real inotify, real SQLite files.
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct SensorTests {
        @Test(
            .enabled(
                if: TestEnvironment.isRoot, "write-close-unlink faster than inotify needs fanotify (CAP_SYS_ADMIN)"))
        func writeExecuteDeleteKeepsTheEvidence() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                let path = mount.child("dropper")
                try drop(trueBinary, at: path)
                let expected = try sha256sum(path)
                let (status, _) = try runProcess(path, [])
                #expect(status == 0)
                try FileManager.default.removeItem(atPath: path)

                // Dropped, closed and unlinked within microseconds, and one unlinked before its close.
                var rapid: [String: String] = [:]
                for index in 0..<25 {
                    let name = mount.child("rapid-\(index)")
                    let bytes = trueBinary + Array("unique-\(index)".utf8)
                    rapid[name] = try drop(bytes, at: name)
                    _ = unlink(name)
                }
                let early = mount.child("unlinked-before-close")
                let fd = try sys_create(Array(early.utf8), flags: O_WRONLY, permissions: 0o700)
                _ = unlink(early)
                let earlyBytes = trueBinary + Array("early".utf8)
                try earlyBytes.withUnsafeBytes { try sys_writeAll(fd, $0) }
                sys_close(fd)

                let expectedPaths = [path, early] + Array(rapid.keys)
                let records = try await agent.waitForFiles { records in
                    expectedPaths.allSatisfy { expected in
                        records.contains {
                            $0.path == PathBytes(expected) && $0.state == .deleted && $0.sha256 != nil
                                && $0.evidencePath != nil
                        }
                    }
                }
                // One observation per file: events that arrive after the unlink do not record it again.
                #expect(records.count == expectedPaths.count)
                let dropper = try #require(records.first { $0.path == PathBytes(path) })
                #expect(dropper.sha256 == expected)
                #expect(dropper.kind == .elf)
                #expect(dropper.state == .deleted)
                #expect(dropper.reasons == [.execBit, .elf])
                #expect(dropper.elf?.bits == 64)
                let evidence = try #require(dropper.evidencePath)
                #expect(try sha256sum(evidence) == expected)
                let attributes = try FileManager.default.attributesOfItem(atPath: evidence)
                #expect(attributes[.posixPermissions] as? Int == 0o400)
                for (name, sha) in rapid {
                    let record = records.first { $0.path == PathBytes(name) }
                    #expect(record?.sha256 == sha, "\(name)")
                    #expect(record?.evidencePath.map { (try? sha256sum($0)) == sha } == true)
                }
                let earlyRecord = records.first { $0.path == PathBytes(early) }
                #expect(earlyRecord?.sha256 == sha256Hex(earlyBytes))
                #expect(earlyRecord?.state == .deleted)
            }
        }

        @Test func chmodAfterWriteMakesItAnExecutable() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                let path = mount.child("payload.bin")
                let sha = try drop(Array("plain data, not ELF, no shebang".utf8), at: path, mode: 0o644)
                let marker = mount.child("marker.sh")
                try drop(Array("#!/bin/sh\n".utf8), at: marker, mode: 0o644)
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(marker) } }
                #expect(try agent.database.files(FileQuery(path: path)).isEmpty, "not executable yet")
                #expect(chmod(path, 0o755) == 0)
                let records = try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                let record = try #require(records.first { $0.path == PathBytes(path) })
                #expect(record.reasons == [.execBit])
                #expect(record.kind == .other)
                #expect(record.sha256 == sha)
                #expect(record.mode & 0o777 == 0o755)
            }
        }

        @Test func renameIntoTheWatchedDirectory() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try FileManager.default.createDirectory(atPath: mount.child("watched"), withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: mount.child("staging"), withIntermediateDirectories: false)
            try await withAgent(AgentHarness(watch: [mount.child("watched")])) { agent in
                let staged = mount.child("staging/.tmp-x")
                let sha = try drop(trueBinary, at: staged)
                let final = mount.child("watched/x")
                #expect(rename(staged, final) == 0)
                let records = try await agent.waitForFiles { $0.contains { $0.path == PathBytes(final) } }
                #expect(records.first { $0.path == PathBytes(final) }?.sha256 == sha)
                #expect(!records.contains { $0.path == PathBytes(staged) }, "staging is not watched")
            }
        }

        @Test func nestedDirectoriesCreatedLaterAreWatched() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                // No pause between mkdir and the drop: the file can land before the watch does.
                try FileManager.default.createDirectory(
                    atPath: mount.child("a/b/c/d"), withIntermediateDirectories: true)
                let deep = mount.child("a/b/c/d/deep")
                let deepSHA = try drop(trueBinary + [1], at: deep)
                _ = mkdir(mount.child("x"), 0o755)
                let quick = mount.child("x/quick.sh")
                let quickSHA = try drop(Array("#!/bin/sh\necho quick\n".utf8), at: quick)
                // And a file dropped later into the new tree arrives through the new watch.
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(deep) } }
                let later = mount.child("a/b/c/later")
                let laterSHA = try drop(trueBinary + [2], at: later)
                let records = try await agent.waitForFiles { records in
                    [deep, quick, later].allSatisfy { path in records.contains { $0.path == PathBytes(path) } }
                }
                let byPath = Dictionary(records.map { ($0.path.displayString, $0.sha256) }, uniquingKeysWith: { $1 })
                #expect(byPath[deep] == deepSHA)
                #expect(byPath[quick] == quickSHA)
                #expect(byPath[later] == laterSHA)
            }
        }

        @Test func hostileNamesAreRecordedByteExact() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                try await Self.recordsHostileNamesByteExact(agent, on: mount)
            }
        }

        /// The body of `hostileNamesAreRecordedByteExact` (a function of its own: as a closure,
        /// it crashed the compiler's SendNonSendable pass).
        private static func recordsHostileNamesByteExact(_ agent: AgentHarness, on mount: TestMount) async throws {
            let names: [[UInt8]] = [
                [0xff, 0xfe, 0x41],
                Array("new\nline".utf8),
                Array("with space and 'quote\"".utf8),
                Array("tab\there\u{7f}".utf8),
            ]
            var expected: [PathBytes: String] = [:]
            for (index, name) in names.enumerated() {
                let path = Array(mount.path.utf8) + [UInt8(ascii: "/")] + name
                expected[PathBytes(path)] = try drop(trueBinary + [UInt8(index)], at: path)
            }
            let records = try await agent.waitForFiles { records in
                expected.keys.allSatisfy { path in records.contains { $0.path == path } }
            }
            for (path, sha) in expected {
                #expect(records.first { $0.path == path }?.sha256 == sha, "\(path.displayString)")
            }
            let json = try JSONEncoder().encode(records.first { $0.path.bytes.contains(0xff) })
            let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            let base64 = try #require(object["pathBase64"] as? String)
            #expect(
                Data(base64Encoded: base64).map(Array.init) == Array(mount.path.utf8) + [UInt8(ascii: "/")]
                    + names[0])
        }

        @Test func fifosSocketsAndSymlinksAreRecordedNeverOpenedOrFollowed() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                let fifo = mount.child("pipe")
                #expect(mkfifo(fifo, 0o644) == 0)
                let link = mount.child("link-to-ls")
                #expect(symlink("/bin/ls", link) == 0)
                // The sensor must still be serving after the FIFO: this ELF proves it.
                let after = mount.child("after")
                try drop(trueBinary + [9], at: after)
                let records = try await agent.waitForFiles { records in
                    [fifo, link, after].allSatisfy { path in records.contains { $0.path == PathBytes(path) } }
                }
                let fifoRecord = try #require(records.first { $0.path == PathBytes(fifo) })
                #expect(fifoRecord.fileType == .fifo)
                #expect(fifoRecord.hashStatus == .notRegular)
                let linkRecord = try #require(records.first { $0.path == PathBytes(link) })
                #expect(linkRecord.fileType == .symlink)
                #expect(linkRecord.linkTarget == PathBytes("/bin/ls"))
                #expect(linkRecord.sha256 == nil)
                let lsSHA = try sha256sum("/bin/ls")
                #expect(try agent.database.blob(sha256: lsSHA) == nil, "the symlink's target was never read")
            }
        }

        @Test func filesAboveTheCapAreRecordedAsTooLarge() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], hashSizeCap: 1 << 20)) { agent in
                let big = mount.child("big")
                try drop(trueBinary + [UInt8](repeating: 7, count: 2 << 20), at: big)
                let small = mount.child("small")
                let smallSHA = try drop(trueBinary, at: small)
                let records = try await agent.waitForFiles { records in
                    [big, small].allSatisfy { path in records.contains { $0.path == PathBytes(path) } }
                }
                let bigRecord = try #require(records.first { $0.path == PathBytes(big) })
                #expect(bigRecord.hashStatus == .tooLarge)
                #expect(bigRecord.size == Int64(trueBinary.count + (2 << 20)))
                #expect(bigRecord.sha256 == nil)
                #expect(bigRecord.kind == .elf)
                #expect(records.first { $0.path == PathBytes(small) }?.sha256 == smallSHA)
            }
        }

        @Test func hardLinksAndDuplicateContentShareOneEvidenceCopy() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                let first = mount.child("first")
                let sha = try drop(trueBinary + [3], at: first)
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(first) } }
                let linked = mount.child("linked")
                #expect(link(first, linked) == 0)
                let copy = mount.child("copy")
                try drop(trueBinary + [3], at: copy)
                let records = try await agent.waitForFiles { records in
                    [linked, copy].allSatisfy { path in
                        records.contains { $0.path == PathBytes(path) && $0.evidencePath != nil }
                    }
                }
                #expect(Set(records.compactMap(\.sha256)) == [sha])
                #expect(Set(records.compactMap(\.evidencePath)).count == 1)
                #expect(agent.metrics[.evidenceCopies] == 1)
                let linkedRecord = try #require(records.first { $0.path == PathBytes(linked) })
                #expect(linkedRecord.inode == records.first { $0.path == PathBytes(first) }?.inode)
            }
        }

        @Test func shutdownFlushesEveryEventAlreadyQueued() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let (state, expected) = try await withAgent(AgentHarness(watch: [mount.path]), keepState: true) { agent in
                var expected: Set<PathBytes> = []
                for index in 0..<300 {
                    let path = mount.child("f\(index).sh")
                    try drop(Array("#!/bin/sh\n# \(index)\n".utf8), at: path)
                    expected.insert(PathBytes(path))
                }
                return (agent.stateDirectory, expected)
            }
            defer { try? FileManager.default.removeItem(atPath: state) }
            let database = try EvidenceDatabase(path: state + "/shmwarden.sqlite")
            let recorded = Set(try database.files().map(\.path))
            #expect(expected.isSubset(of: recorded), "\(expected.subtracting(recorded).count) missing")
        }

        @Test func scanRecordsWhatIsAlreadyThere() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let elf = mount.child("elf")
            let elfSHA = try drop(trueBinary, at: elf)
            try FileManager.default.createDirectory(atPath: mount.child("d"), withIntermediateDirectories: false)
            let script = mount.child("d/s")
            let scriptSHA = try drop(Array("#!/usr/bin/env python3\n".utf8), at: script, mode: 0o600)
            try drop(Array("not executable".utf8), at: mount.child("data"), mode: 0o644)
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let configuration = AgentConfigurationForTests.make(state: state, watch: [mount.path])
            let summary = try Agent.scan(configuration: configuration, logger: silentLogger)
            #expect(summary.entriesExamined == 3)
            let byPath = Dictionary(summary.files.map { ($0.path.displayString, $0) }, uniquingKeysWith: { $1 })
            #expect(byPath.count == 2)
            #expect(byPath[elf]?.sha256 == elfSHA)
            #expect(byPath[script]?.sha256 == scriptSHA)
            #expect(byPath[script]?.script?.interpreter == "/usr/bin/env")
            #expect(byPath[script]?.reasons == [.shebang])
            #expect(try byPath[elf]?.evidencePath.map(sha256sum) == elfSHA)
            // A second scan after a deletion reconciles: the file is now deleted.
            try FileManager.default.removeItem(atPath: elf)
            _ = try Agent.scan(configuration: configuration, logger: silentLogger)
            let database = try EvidenceDatabase(path: state + "/shmwarden.sqlite")
            #expect(try database.files(FileQuery(path: elf)).first?.state == .deleted)
            #expect(try database.files(FileQuery(path: script)).first?.state == .present)
        }
    }
}
