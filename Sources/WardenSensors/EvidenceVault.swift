// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// Content-addressed evidence copies: `evidence/sha256/<aa>/<hash>`, mode 0400, directories 0700.
///
/// Copies are made in batches: each new hash is copied to `evidence/tmp/`, the batch is made
/// durable with one `syncfs`, each copy is verified by hashing it and only then renamed into
/// place, and a second `syncfs` makes the renames durable. So a name under `sha256/` always holds
/// exactly the bytes its name says, and a burst of drops costs two journal commits, not two per
/// file. A hash already stored is not copied again.
///
/// - Important: Not thread-safe (its hasher owns a buffer); one thread owns it.
public final class EvidenceVault {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The copy's hash differs from the source's: the source changed after it was hashed.
        case copyMismatch(expected: String, got: String)
        /// Not copied: the state directory's budget (or its file system's free share) says no.
        case overBudget(String)
        case system(SystemCallError)

        public var description: String {
            switch self {
            case .copyMismatch(let expected, let got): "evidence copy hash \(got) does not match \(expected)"
            case .overBudget(let reason): reason
            case .system(let error): error.description
            }
        }
    }

    /// One file to keep: a descriptor whose first `size` bytes hash to `sha256`. The caller
    /// keeps ownership.
    public struct Item {
        public var source: FileDescriptor
        public var sha256: String
        /// The bytes that were hashed: the copy takes these and no more, however much the file
        /// has grown since.
        public var size: Int64

        public init(source: FileDescriptor, sha256: String, size: Int64) {
            self.source = source
            self.sha256 = sha256
            self.size = size
        }
    }

    public let root: PathBytes
    /// Asked before each copy; nil for no budget.
    private let budget: StateBudget?
    private let hasher = FileHasher(bufferSize: 1 << 20, maxAttempts: 1)
    private var serial = 0
    private var preparedDirectories: Set<[UInt8]> = []
    /// Hashes known to be stored, so a repeat costs no `lstat`.
    private var stored: Set<String> = []
    private static let storedLimit = 1_000_000

    public init(root: PathBytes, budget: StateBudget? = nil) throws(SystemCallError) {
        self.root = root
        self.budget = budget
        try sys_mkdir(root.bytes, permissions: 0o700)
        try sys_mkdir(root.appending(Array("sha256".utf8)).bytes, permissions: 0o700)
        try sys_mkdir(root.appending(Array("tmp".utf8)).bytes, permissions: 0o700)
    }

    /// Where the copy of `sha256` lives (whether or not it exists yet).
    public func path(for sha256: String) -> PathBytes {
        directory(for: sha256).appending(Array(sha256.utf8))
    }

    private func directory(for sha256: String) -> PathBytes {
        root.appending(Array("sha256".utf8)).appending(Array(sha256.utf8.prefix(2)))
    }

    /// Stores every item not already stored.
    ///
    /// - Returns: per hash, the evidence path and whether a new copy was written, or the failure.
    public func store(_ items: [Item]) -> [String: Result<(PathBytes, Bool), Failure>] {
        var results: [String: Result<(PathBytes, Bool), Failure>] = [:]
        var pending: [(item: Item, temporary: PathBytes, copy: FileDescriptor)] = []
        for item in items where results[item.sha256] == nil {
            let final = path(for: item.sha256)
            if stored.contains(item.sha256) || (try? sys_lstat(final.bytes))?.isRegularFile == true {
                remember(item.sha256)
                results[item.sha256] = .success((final, false))
                continue
            }
            if let refusal = budget?.admit(item.size) {
                results[item.sha256] = .failure(.overBudget(refusal))
                continue
            }
            do throws(SystemCallError) {
                serial += 1
                let temporary = root.appending(Array("tmp".utf8))
                    .appending(Array("\(item.sha256).\(getpid()).\(serial)".utf8))
                let copy = try sys_create(temporary.bytes, flags: O_RDWR, permissions: 0o600)
                do throws(SystemCallError) {
                    var offset: Int64 = 0
                    while offset < item.size,
                        try sys_sendfile(
                            to: copy, from: item.source, offset: &offset, count: Int(min(item.size - offset, 1 << 30)))
                            > 0
                    {}
                } catch {
                    sys_close(copy)
                    try? sys_unlink(temporary.bytes)
                    throw error
                }
                pending.append((item, temporary, copy))
                results[item.sha256] = .success((final, true))
            } catch {
                results[item.sha256] = .failure(.system(error))
            }
        }
        guard !pending.isEmpty else { return results }
        do throws(SystemCallError) {
            try sys_syncfs(pending[0].copy)
        } catch {
            for entry in pending {
                sys_close(entry.copy)
                try? sys_unlink(entry.temporary.bytes)
                results[entry.item.sha256] = .failure(.system(error))
            }
            return results
        }
        var placed = false
        for entry in pending {
            defer { sys_close(entry.copy) }
            do throws(Failure) {
                try verifyAndPlace(
                    entry.item.sha256, size: entry.item.size, temporary: entry.temporary, copy: entry.copy)
                placed = true
                remember(entry.item.sha256)
            } catch {
                try? sys_unlink(entry.temporary.bytes)
                results[entry.item.sha256] = .failure(error)
            }
        }
        // The renames (directory entries) are durable after a second commit.
        if placed, let directoryFD = try? sys_open(root.bytes, flags: O_RDONLY | O_DIRECTORY) {
            _ = try? sys_syncfs(directoryFD)
            sys_close(directoryFD)
        }
        return results
    }

    private func verifyAndPlace(_ sha256: String, size: Int64, temporary: PathBytes, copy: FileDescriptor)
        throws(Failure)
    {
        let got: String
        do throws(SystemCallError) {
            got = try hasher.digest(of: copy, size: size) ?? "longer than \(size) bytes"
        } catch {
            throw .system(error)
        }
        guard got == sha256 else { throw .copyMismatch(expected: sha256, got: got) }
        do throws(SystemCallError) {
            try sys_fchmod(copy, 0o400)
            let directory = directory(for: sha256)
            if !preparedDirectories.contains(directory.bytes) {
                try sys_mkdir(directory.bytes, permissions: 0o700)
                preparedDirectories.insert(directory.bytes)
            }
            try sys_rename(temporary.bytes, path(for: sha256).bytes)
        } catch {
            throw .system(error)
        }
    }

    private func remember(_ sha256: String) {
        if stored.count >= Self.storedLimit { stored.removeAll(keepingCapacity: true) }
        stored.insert(sha256)
    }
}
