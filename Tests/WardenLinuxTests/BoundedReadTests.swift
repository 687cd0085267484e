// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
@preconcurrency import Glibc
import SystemPackage
import Testing
import WardenLinux

/// Reads of untrusted files stop at their cap, counted in bytes read, and at their deadline.
@Suite struct BoundedReadTests {
    func withFile(_ body: (FileDescriptor) throws -> Void) throws {
        let path = "/dev/shm/shmwarden-bounded-\(UUID().uuidString.prefix(8))"
        let fd = try FileDescriptor.open(
            path, .readWrite, options: [.create, .exclusiveCreate], permissions: .ownerReadWrite)
        defer {
            try? fd.close()
            unlink(path)
        }
        try body(fd)
    }

    @Test func aCompleteReadHashesEveryByte() throws {
        try withFile { fd in
            let bytes = (0..<300_000).map { UInt8($0 % 253) }
            _ = try fd.writeAll(bytes)
            let read = try DescriptorDigest(bufferSize: 4096).sha256(of: fd, limit: ReadLimit(maxBytes: 300_000))
            let expected = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            #expect(read == .complete(sha256: expected, bytes: 300_000))
        }
    }

    /// A sparse file of a petabyte (free on tmpfs) is read one byte past the cap, no more.
    @Test func aHugeSparseFileStopsOneBytePastTheCap() throws {
        try withFile { fd in
            #expect(ftruncate(fd.rawValue, 1 << 50) == 0)
            let started = ContinuousClock.now
            let read = try DescriptorDigest().sha256(of: fd, limit: ReadLimit(maxBytes: 4 << 20))
            #expect(read == .tooLarge(bytesRead: (4 << 20) + 1))
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(read.sha256 == nil)
        }
    }

    @Test func aReadStopsAtItsDeadline() throws {
        try withFile { fd in
            #expect(ftruncate(fd.rawValue, 1 << 40) == 0)
            let read = try DescriptorDigest().sha256(
                of: fd, limit: ReadLimit(maxBytes: .max, deadline: sys_monotonicNanoseconds() + 20_000_000))
            guard case .outOfTime(let bytes) = read else {
                Issue.record("not stopped by its deadline: \(read)")
                return
            }
            #expect(bytes > 0 && bytes < 1 << 40)
        }
    }

    /// A copy takes the bytes under the cap, and says when there were more.
    @Test func aCopyIsBoundedToo() throws {
        try withFile { source in
            _ = try source.writeAll(Array(repeating: UInt8(7), count: 10_000))
            try withFile { destination in
                let read = try DescriptorDigest(bufferSize: 4096).copy(
                    from: source, to: destination, limit: ReadLimit(maxBytes: 5000))
                #expect(read == .tooLarge(bytesRead: 5001))
            }
        }
    }
}
