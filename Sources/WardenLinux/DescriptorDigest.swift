// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import SystemPackage

/// Where a read of untrusted content stops: a cap on the bytes read and a deadline.
public struct ReadLimit: Sendable, Equatable {
    public var maxBytes: Int64
    /// `sys_monotonicNanoseconds()` after which reading stops; nil for none.
    public var deadline: Int64?

    public init(maxBytes: Int64, deadline: Int64? = nil) {
        self.maxBytes = max(0, maxBytes)
        self.deadline = deadline
    }

    /// At most `maxBytes`, for at most `seconds` from now.
    public static func bytes(_ maxBytes: Int64, seconds: Double?) -> ReadLimit {
        ReadLimit(
            maxBytes: maxBytes,
            deadline: seconds.map { sys_monotonicNanoseconds() &+ Int64(min($0, 86_400) * 1_000_000_000) })
    }
}

/// How a bounded read ended.
public enum BoundedRead: Sendable, Equatable {
    /// Read to the end: the SHA-256 of every byte and how many there were.
    case complete(sha256: String, bytes: Int64)
    /// More than the cap: reading stopped one byte past it.
    case tooLarge(bytesRead: Int64)
    /// The deadline passed first.
    case outOfTime(bytesRead: Int64)

    /// The digest when the read was complete.
    public var sha256: String? {
        if case .complete(let sha256, _) = self { return sha256 }
        return nil
    }
}

/// SHA-256 over what a descriptor holds, read by `pread` with one reused buffer (the offset is
/// never moved), and a copy that hashes the bytes as it writes them; both bounded.
///
/// - Important: Not thread-safe (it owns its buffer); give each thread its own.
public final class DescriptorDigest {
    private let buffer: UnsafeMutableRawBufferPointer

    public init(bufferSize: Int = 1 << 20) {
        buffer = .allocate(byteCount: bufferSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// The SHA-256 of what `fd` holds from offset 0 to end of file, read up to `limit`.
    ///
    /// The cap counts bytes actually read, not a size taken beforehand: a file that grows while
    /// it is read (a sparse file `ftruncate`d to a petabyte) stops being read one byte past the
    /// cap, and a digest is only ever of bytes that were read.
    public func sha256(of fd: FileDescriptor, limit: ReadLimit) throws(SystemCallError) -> BoundedRead {
        try read(fd, limit: limit, into: nil)
    }

    /// Copies what `source` holds (from offset 0) to `destination`'s current offset, up to
    /// `limit`; the digest is of the bytes copied. Past the cap or the deadline, `destination`
    /// holds a prefix and the caller must discard it.
    public func copy(from source: FileDescriptor, to destination: FileDescriptor, limit: ReadLimit)
        throws(SystemCallError) -> BoundedRead
    {
        try read(source, limit: limit, into: destination)
    }

    private func read(_ fd: FileDescriptor, limit: ReadLimit, into destination: FileDescriptor?)
        throws(SystemCallError) -> BoundedRead
    {
        var hasher = SHA256()
        var offset: Int64 = 0
        while true {
            if let deadline = limit.deadline, sys_monotonicNanoseconds() > deadline {
                return .outOfTime(bytesRead: offset)
            }
            // One byte past the cap at most: enough to know the file is larger.
            let (past, overflow) = limit.maxBytes.addingReportingOverflow(1)
            let room = overflow ? Int64.max : past
            let want = Int(min(Int64(buffer.count), room - offset))
            let count = try sys_pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: offset)
            if count == 0 { break }
            offset += Int64(count)
            if offset > limit.maxBytes { return .tooLarge(bytesRead: offset) }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            hasher.update(bufferPointer: chunk)
            if let destination { try sys_writeAll(destination, chunk) }
        }
        return .complete(sha256: Self.hex(hasher.finalize()), bytes: offset)
    }

    public static func hex(_ digest: SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        // Its bytes, not its Sequence conformance: iterating a digest looked up a protocol
        // conformance at first use (the runtime's scan of the binary's records).
        digest.withUnsafeBytes { bytes in
            for byte in bytes {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0xf)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Pays SHA-256's first-use costs on the calling thread: its first `SHA256()` looks up a
    /// protocol conformance of swift-crypto's (0.27 ms, a scan of the binary's records), which
    /// a thread with time to spare can pay before another hashes on a run's way.
    public static func payFirstUseCosts() {
        var hasher = SHA256()
        hasher.update(data: [UInt8]())
        _ = hex(hasher.finalize())
    }
}
