// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenLinux

@Suite struct InotifyRecordDecoderTests {
    @Test func roundTripsRecordsWithPaddedNames() {
        let records = [
            InotifyRecord(watch: 1, mask: [.create], cookie: 0, name: Array("a".utf8)),
            InotifyRecord(watch: 2, mask: [.movedFrom], cookie: 77, name: [0xff, 0x0a, 0x41, 0x42]),
            InotifyRecord(watch: -1, mask: [.queueOverflow], cookie: 0, name: []),
            InotifyRecord(watch: 3, mask: [.create, .isDirectory], cookie: 0, name: Array("dir".utf8)),
        ]
        let bytes = InotifyRecordDecoder.encode(records)
        // 16-byte headers; names padded: "a" → 4, 4 bytes → 8, none → 0, "dir" → 4.
        #expect(bytes.count == 16 * 4 + 4 + 8 + 0 + 4)
        let decoded = bytes.withUnsafeBytes { InotifyRecordDecoder.decode($0) }
        #expect(decoded == records)
    }

    @Test func stopsAtATruncatedRecord() {
        var bytes = InotifyRecordDecoder.encode([
            InotifyRecord(watch: 1, mask: [.closeWrite], cookie: 0, name: Array("complete".utf8)),
            InotifyRecord(watch: 1, mask: [.closeWrite], cookie: 0, name: Array("cut-short".utf8)),
        ])
        bytes.removeLast(5)
        let decoded = bytes.withUnsafeBytes { InotifyRecordDecoder.decode($0) }
        #expect(decoded.map(\.name) == [Array("complete".utf8)])
    }

    @Test func readsRealKernelEvents() throws {
        let directory = "/dev/shm/shmwarden-inotify-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inotify = try Inotify()
        let watch = try inotify.addWatch(Array(directory.utf8), mask: .sensorDirectory)
        let name: [UInt8] = Array("drop".utf8) + [0xff, 0x0a]
        let path = Array(directory.utf8) + [UInt8(ascii: "/")] + name
        let fd = try sys_create(path, flags: O_WRONLY, permissions: 0o755)
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try sys_writeAll(fd, $0) }
        sys_close(fd)
        try sys_unlink(path)
        let records = try inotify.readRecords()
        #expect(records.allSatisfy { $0.watch == watch && $0.name == name })
        #expect(records.map(\.mask) == [[.create], [.closeWrite], [.delete]])
    }
}

@Suite struct FanotifyEventDecoderTests {
    static func metadata(length: UInt32 = 24, version: UInt8, mask: UInt64, fd: Int32, pid: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: length) { bytes += $0 }
        bytes += [version, 0]
        withUnsafeBytes(of: UInt16(24)) { bytes += $0 }
        withUnsafeBytes(of: mask) { bytes += $0 }
        withUnsafeBytes(of: fd) { bytes += $0 }
        withUnsafeBytes(of: pid) { bytes += $0 }
        bytes += [UInt8](repeating: 0, count: Int(length) - 24)
        return bytes
    }

    @Test func decodesRecordsWalkingByEventLength() throws {
        let real = FanotifyEventDecoder.metadataVersion
        let bytes =
            Self.metadata(version: real, mask: FanotifyMask.closeWrite.rawValue, fd: 7, pid: 100)
            + Self.metadata(length: 32, version: real, mask: FanotifyMask.openExec.rawValue, fd: 8, pid: 101)
            + Self.metadata(version: real, mask: FanotifyMask.queueOverflow.rawValue, fd: -1, pid: 0)
        let records = bytes.withUnsafeBytes { FanotifyEventDecoder.decode($0) }
        #expect(records.map(\.fd) == [7, 8, -1])
        #expect(records.map(\.pid) == [100, 101, 0])
        #expect(records[1].mask == FanotifyMask.openExec.rawValue)
    }

    @Test func stopsAtAWrongVersionOrAShortRecord() throws {
        let real = FanotifyEventDecoder.metadataVersion
        let wrongVersion = Self.metadata(version: real &+ 1, mask: 1, fd: 3, pid: 1)
        #expect(wrongVersion.withUnsafeBytes { FanotifyEventDecoder.decode($0) }.isEmpty)
        let short = Array(Self.metadata(version: real, mask: 1, fd: 3, pid: 1).prefix(20))
        #expect(short.withUnsafeBytes { FanotifyEventDecoder.decode($0) }.isEmpty)
        let lyingLength = Self.metadata(length: 24, version: real, mask: 1, fd: 3, pid: 1)
        var corrupted = lyingLength
        corrupted[0] = 200  // event_len past the buffer
        #expect(corrupted.withUnsafeBytes { FanotifyEventDecoder.decode($0) }.isEmpty)
    }
}
