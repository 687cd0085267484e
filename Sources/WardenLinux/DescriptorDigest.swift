// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import SystemPackage

/// SHA-256 over what a descriptor holds, read by `pread` with one reused buffer (the offset is
/// never moved), and a copy that hashes the bytes as it writes them.
///
/// - Important: Not thread-safe (it owns its buffer); give each thread its own.
public final class DescriptorDigest {
    private let buffer: UnsafeMutableRawBufferPointer

    public init(bufferSize: Int = 1 << 20) {
        buffer = .allocate(byteCount: bufferSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// The SHA-256 of everything `fd` holds from offset 0 to end of file, as lowercase hex.
    public func sha256(of fd: FileDescriptor) throws(SystemCallError) -> String {
        var hasher = SHA256()
        var offset: Int64 = 0
        while true {
            let count = try sys_pread(fd, into: buffer, at: offset)
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            offset += Int64(count)
        }
        return Self.hex(hasher.finalize())
    }

    /// Copies all of `source` (from offset 0) to `destination`'s current offset; returns the
    /// SHA-256 of the bytes copied and their count.
    public func copy(from source: FileDescriptor, to destination: FileDescriptor) throws(SystemCallError)
        -> (sha256: String, bytes: Int64)
    {
        var hasher = SHA256()
        var offset: Int64 = 0
        while true {
            let count = try sys_pread(source, into: buffer, at: offset)
            if count == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            hasher.update(bufferPointer: chunk)
            try sys_writeAll(destination, chunk)
            offset += Int64(count)
        }
        return (Self.hex(hasher.finalize()), offset)
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
