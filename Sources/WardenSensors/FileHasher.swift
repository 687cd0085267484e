// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import SystemPackage
import WardenCore
import WardenLinux

/// What hashing one descriptor gave.
public struct HashResult: Sendable {
    /// Lowercase hex; nil when the file was too large or unreadable.
    public var sha256: String?
    public var status: HashStatus
    /// The file's status as of the end of the last attempt.
    public var fileStatus: FileStatus
    /// How many passes it took (more than one when the file changed under us).
    public var attempts: Int
}

/// Hashes a descriptor (swift-crypto, SHA-NI where the CPU has it, through `DescriptorDigest`)
/// and decides what the result means: too large, stable, or changing under us.
///
/// A file that changes while it is hashed (size, mtime or ctime differ before and after) is
/// hashed again, up to `maxAttempts`; then it is `unstable`.
///
/// - Important: Not thread-safe (it owns its buffer); give each thread its own.
public final class FileHasher {
    private let reader: DescriptorDigest
    public let maxAttempts: Int

    public init(bufferSize: Int = 1 << 20, maxAttempts: Int = 3) {
        reader = DescriptorDigest(bufferSize: bufferSize)
        self.maxAttempts = max(1, maxAttempts)
    }

    /// Hashes `fd` if it holds at most `sizeCap` bytes, read within `seconds`.
    ///
    /// The cap holds while reading: a file that grows past it is `tooLarge` and read no further,
    /// whatever its size was when it was opened. A digest is returned only for a read that
    /// covered the whole file as `fileStatus` describes it.
    public func hash(_ fd: FileDescriptor, sizeCap: Int64, seconds: Double? = nil) throws(SystemCallError)
        -> HashResult
    {
        var before = try sys_fstat(fd)
        var digest: String?
        let limit = ReadLimit.bytes(sizeCap, seconds: seconds)
        for attempt in 1...maxAttempts {
            if before.size > sizeCap {
                return HashResult(sha256: nil, status: .tooLarge, fileStatus: before, attempts: attempt)
            }
            switch try reader.sha256(of: fd, limit: limit) {
            case .tooLarge:
                return HashResult(sha256: nil, status: .tooLarge, fileStatus: try sys_fstat(fd), attempts: attempt)
            case .outOfTime:
                return HashResult(sha256: nil, status: .timedOut, fileStatus: try sys_fstat(fd), attempts: attempt)
            case .complete(let sha256, let bytes):
                let after = try sys_fstat(fd)
                if after.contentVersion == before.contentVersion && bytes == after.size {
                    return HashResult(sha256: sha256, status: .ok, fileStatus: after, attempts: attempt)
                }
                digest = sha256
                before = after
            }
        }
        return HashResult(sha256: digest, status: .unstable, fileStatus: before, attempts: maxAttempts)
    }

    /// The SHA-256 of `fd` when it holds exactly `size` bytes (a copy of our own); nil when it
    /// holds more.
    public func digest(of fd: FileDescriptor, size: Int64) throws(SystemCallError) -> String? {
        try reader.sha256(of: fd, limit: ReadLimit(maxBytes: size)).sha256
    }
}
