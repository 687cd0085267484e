// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// Content-addressed evidence copies: `evidence/sha256/<aa>/<hash>`, mode 0400, directories 0700.
///
/// A copy is written to `evidence/tmp/`, fsynced, verified by hashing the copy, and only then
/// renamed into place (and the directory fsynced), so a name under `sha256/` always holds exactly
/// the bytes its name says. Copies are deduplicated: a hash already stored is not copied again.
///
/// - Important: Not thread-safe (its hasher owns a buffer); the capture thread owns it.
public final class EvidenceVault {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The copy's hash differs from the source's: the source changed after it was hashed.
        case copyMismatch(expected: String, got: String)
        case system(SystemCallError)

        public var description: String {
            switch self {
            case .copyMismatch(let expected, let got): "evidence copy hash \(got) does not match \(expected)"
            case .system(let error): error.description
            }
        }
    }

    public let root: PathBytes
    private let hasher = FileHasher(bufferSize: 1 << 20, maxAttempts: 1)
    private var serial = 0
    private var preparedDirectories: Set<[UInt8]> = []

    public init(root: PathBytes) throws(SystemCallError) {
        self.root = root
        try sys_mkdir(root.bytes, permissions: 0o700)
        try sys_mkdir(root.appending(Array("sha256".utf8)).bytes, permissions: 0o700)
        try sys_mkdir(root.appending(Array("tmp".utf8)).bytes, permissions: 0o700)
    }

    /// Where the copy of `sha256` lives (whether or not it exists yet).
    public func path(for sha256: String) -> PathBytes {
        root.appending(Array("sha256".utf8)).appending(Array(sha256.utf8.prefix(2))).appending(Array(sha256.utf8))
    }

    /// Copies `source` (whose bytes hash to `sha256`) into the vault unless it is already there.
    ///
    /// - Returns: the evidence path, and whether a new copy was written.
    public func store(_ source: FileDescriptor, sha256: String) throws(Failure) -> (PathBytes, Bool) {
        let final = path(for: sha256)
        if let existing = try? sys_lstat(final.bytes), existing.isRegularFile { return (final, false) }
        do {
            let directory = root.appending(Array("sha256".utf8)).appending(Array(sha256.utf8.prefix(2)))
            if !preparedDirectories.contains(directory.bytes) {
                try sys_mkdir(directory.bytes, permissions: 0o700)
                preparedDirectories.insert(directory.bytes)
            }
            serial += 1
            let temporary = root.appending(Array("tmp".utf8)).appending(Array("\(sha256).\(getpid()).\(serial)".utf8))
            let copy = try sys_create(temporary.bytes, flags: O_RDWR, permissions: 0o600)
            var keep = false
            defer {
                sys_close(copy)
                if !keep { try? sys_unlink(temporary.bytes) }
            }
            var offset: Int64 = 0
            while try sys_sendfile(to: copy, from: source, offset: &offset, count: 1 << 30) > 0 {}
            try sys_fsync(copy)
            let got = try hasher.digestOf(copy)
            guard got == sha256 else { throw Failure.copyMismatch(expected: sha256, got: got) }
            try sys_fchmod(copy, 0o400)
            try sys_rename(temporary.bytes, final.bytes)
            keep = true
            let directoryFD = try sys_open(directory.bytes, flags: O_RDONLY | O_DIRECTORY)
            defer { sys_close(directoryFD) }
            try sys_fsync(directoryFD)
            return (final, true)
        } catch let failure as Failure {
            throw failure
        } catch let error as SystemCallError {
            throw .system(error)
        } catch {
            throw .system(SystemCallError(syscall: "evidence copy", errno: .ioError))
        }
    }
}
