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

    /// Hashes `fd` if it is at most `sizeCap` bytes.
    public func hash(_ fd: FileDescriptor, sizeCap: Int64) throws(SystemCallError) -> HashResult {
        var before = try sys_fstat(fd)
        var digest = ""
        for attempt in 1...maxAttempts {
            if before.size > sizeCap {
                return HashResult(sha256: nil, status: .tooLarge, fileStatus: before, attempts: attempt)
            }
            digest = try digestOf(fd)
            let after = try sys_fstat(fd)
            if after.contentVersion == before.contentVersion {
                return HashResult(sha256: digest, status: .ok, fileStatus: after, attempts: attempt)
            }
            before = after
        }
        return HashResult(sha256: digest, status: .unstable, fileStatus: before, attempts: maxAttempts)
    }

    /// The SHA-256 of everything `fd` holds from offset 0 to end of file, as lowercase hex.
    public func digestOf(_ fd: FileDescriptor) throws(SystemCallError) -> String {
        try reader.sha256(of: fd)
    }
}
