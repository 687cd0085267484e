// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// Moves samples into `<state>/quarantine` without ever losing one, and puts them back.
///
/// A move copies the file (from the descriptor opened once, never by path again), fsyncs the
/// copy, reads it back to verify its SHA-256, writes the sidecar, and only then takes the
/// original away: it renames the name to a private one in the same directory and checks that it
/// is still the inode it copied before unlinking it; anything else is put back. A journal entry
/// written first lets `recover()` finish or undo a move that a crash interrupted, so a sample is
/// always either in place or in the quarantine.
public final class QuarantineVault: Sendable {
    public let directory: String
    private let journalDirectory: String
    /// Called at each step of a move (tests stop or meddle there).
    private let onStep: (@Sendable (QuarantineStep) -> Void)?
    /// The largest sample a move copies, counted in bytes read: a file that is larger, or grows
    /// past it while copied, is left in place.
    public let maxSampleBytes: Int64
    /// How long one copy may take.
    public static let copySeconds = 120.0
    /// The quarantine's own limit and the state directory's: a move that does not fit is
    /// refused (and audited by the caller); no sample is ever deleted to make room.
    private let budget: StateBudget?

    public init(
        directory: String, maxSampleBytes: Int64 = 1 << 30, budget: StateBudget? = nil,
        onStep: (@Sendable (QuarantineStep) -> Void)? = nil
    ) throws(SystemCallError) {
        self.budget = budget
        self.maxSampleBytes = maxSampleBytes
        self.directory = directory
        self.journalDirectory = directory + "/journal"
        self.onStep = onStep
        for path in [directory, journalDirectory] {
            do {
                try sys_mkdir(Array(path.utf8), permissions: 0o700)
            } catch  where error.errno == .fileExists {
            }
            try sys_chmod(Array(path.utf8), 0o700)
        }
    }

    /// The journal's record of a move in progress.
    struct JournalEntry: Codable {
        var id: String
        var pathBase64: String
        var device: UInt64
        var inode: UInt64
    }

    // MARK: Quarantine

    /// Moves the regular file at `path` into the quarantine.
    ///
    /// - Parameter expecting: the device and inode the evidence recorded: a different file now at
    ///   `path` is left alone.
    public func quarantine(
        _ path: PathBytes, alertIDs: [String] = [], fileID: Int64? = nil,
        expecting: (device: UInt64, inode: UInt64)? = nil
    ) throws(QuarantineError) -> QuarantineEntry {
        let (parent, name) = try Self.split(path)
        let directoryFD = try wrap("open the directory of \(path)") { () throws(SystemCallError) in
            try sys_open(parent, flags: O_RDONLY | O_DIRECTORY)
        }
        defer { sys_close(directoryFD) }
        let sourceFD: FileDescriptor
        do {
            sourceFD = try sys_openAt(directoryFD, name, flags: O_RDONLY | O_NONBLOCK)
        } catch {
            switch error.errno {
            case .noSuchFileOrDirectory: throw QuarantineError(.notFound, "\(path) does not exist", errno: ENOENT)
            case .tooManySymbolicLinkLevels:
                throw QuarantineError(
                    .isSymlink, "\(path) is a symlink; quarantine moves files, not links", errno: ELOOP)
            default: throw QuarantineError(.io, "open \(path): \(error)", errno: error.errno.rawValue)
            }
        }
        defer { sys_close(sourceFD) }
        let status = try wrap("fstat \(path)") { () throws(SystemCallError) in try sys_fstat(sourceFD) }
        guard status.mode & UInt32(S_IFMT) == UInt32(S_IFREG) else {
            throw QuarantineError(.notRegularFile, "\(path) is not a regular file")
        }
        if let expecting, expecting.device != status.device || expecting.inode != status.inode {
            throw QuarantineError(
                .replaced, "\(path) is now another file (inode \(status.inode), not \(expecting.inode)); left alone")
        }

        if let refusal = budget?.admitQuarantine(status.size, quarantineDirectory: directory) {
            throw QuarantineError(.full, "\(refusal); \(path) left in place")
        }
        let id = Self.newID()
        let journalPath = Array("\(journalDirectory)/\(id).json".utf8)
        let journal = JournalEntry(id: id, pathBase64: path.base64, device: status.device, inode: status.inode)
        try wrap("write the journal") { () throws(SystemCallError) in
            try sys_writeFileDurably(journalPath, Self.encode(journal), permissions: 0o600)
        }
        step(.journaled)

        let partial = Array("\(directory)/\(id).partial".utf8)
        let digest = DescriptorDigest()
        let read = try wrap("copy \(path) into the quarantine") { () throws(SystemCallError) in
            let out = try sys_create(partial, flags: O_WRONLY, permissions: 0)
            defer { sys_close(out) }
            let result = try digest.copy(
                from: sourceFD, to: out, limit: .bytes(maxSampleBytes, seconds: Self.copySeconds))
            try sys_fsync(out)
            return result
        }
        guard case .complete(let copiedSHA256, let copiedBytes) = read else {
            abandon(id)
            let why =
                if case .outOfTime(let bytes) = read {
                    "could not be copied within \(Int(Self.copySeconds)) s (\(bytes) bytes read)"
                } else { "is larger than the quarantine takes (\(maxSampleBytes) bytes), or grew past it while copied" }
            throw QuarantineError(.tooLarge, "\(path) \(why); left in place")
        }
        let copied = (sha256: copiedSHA256, bytes: copiedBytes)
        step(.copied)
        let after = try wrap("fstat \(path)") { () throws(SystemCallError) in try sys_fstat(sourceFD) }
        let verified = try wrap("read the copy back") { () throws(SystemCallError) in
            let copy = try sys_open(partial, flags: O_RDONLY)
            defer { sys_close(copy) }
            return try digest.sha256(of: copy, limit: ReadLimit(maxBytes: copied.bytes)).sha256
        }
        guard after.contentVersion == status.contentVersion, copied.bytes == after.size else {
            abandon(id)
            throw QuarantineError(.changedWhileCopying, "\(path) changed while it was copied; left in place")
        }
        guard verified == copied.sha256 else {
            abandon(id)
            throw QuarantineError(.copyMismatch, "the copy of \(path) does not hash like the original; left in place")
        }
        step(.verified)

        let sample = "\(directory)/\(id).sample"
        var entry = QuarantineEntry(
            id: id, state: .quarantined, originalPath: path.displayString, originalPathBase64: path.base64,
            sha256: copied.sha256, size: copied.bytes, mode: status.mode & 0o7777, uid: status.uid, gid: status.gid,
            device: status.device, inode: status.inode, linkCount: status.linkCount,
            modified: Timestamp(seconds: status.modifiedSeconds, nanoseconds: status.modifiedNanoseconds).rfc3339,
            changed: Timestamp(seconds: status.changedSeconds, nanoseconds: status.changedNanoseconds).rfc3339,
            accessed: Timestamp(seconds: status.accessedSeconds, nanoseconds: status.accessedNanoseconds).rfc3339,
            quarantinedAt: Self.now().rfc3339, samplePath: sample, alertIds: alertIDs, fileId: fileID)
        try wrap("write the sidecar") { () throws(SystemCallError) in try writeSidecar(entry) }
        step(.sidecarWritten)
        try wrap("put the sample in place") { () throws(SystemCallError) in
            try sys_rename(partial, Array(sample.utf8))
            try sys_fsyncDirectory(containing: Array(sample.utf8))
        }
        step(.sampleInPlace)

        // The copy is safe: now take the original away, but only the inode that was copied.
        if let problem = removeOriginal(directoryFD, name: name, id: id, expecting: status) {
            entry.state = .copyOnly
            entry.note = problem
            try? writeSidecar(entry)
            finish(id)
            throw QuarantineError(.replaced, problem)
        }
        finish(id)
        return entry
    }

    /// Renames `name` to a private name, checks it is the copied inode, and unlinks it; puts
    /// anything else back. Returns why the original was not removed, or nil when it was.
    private func removeOriginal(_ directoryFD: FileDescriptor, name: [UInt8], id: String, expecting: FileStatus)
        -> String?
    {
        let claim = Self.claimName(id)
        do {
            try sys_renameNoReplace(directoryFD, name, directoryFD, claim)
        } catch  where error.errno == .noSuchFileOrDirectory {
            return nil  // already gone (the dropper deleted it): the sample is safe with us
        } catch {
            return "could not take the original away (\(error)); it is still in place"
        }
        step(.claimed)
        return settleClaim(directoryFD, name: name, claim: claim, device: expecting.device, inode: expecting.inode)
    }

    /// The private name holds what was at the original name: unlink it when it is the copied
    /// inode, else put it back.
    private func settleClaim(
        _ directoryFD: FileDescriptor, name: [UInt8], claim: [UInt8], device: UInt64, inode: UInt64
    )
        -> String?
    {
        guard let claimed = try? sys_statAt(directoryFD, claim) else { return nil }
        if claimed.device == device && claimed.inode == inode {
            do {
                try sys_unlinkAt(directoryFD, claim)
                try? sys_fsync(directoryFD)
                step(.unlinked)
                return nil
            } catch {
                return "could not unlink the original (\(error)); it is at \(PathBytes(claim)) in the same directory"
            }
        }
        // Someone replaced the file after it was copied: that new file is not ours to remove.
        do {
            try sys_renameNoReplace(directoryFD, claim, directoryFD, name)
            return "the file was replaced (another inode is there now) before it could be removed; the new file "
                + "was left in place and only the copy of the original is kept"
        } catch {
            return "the file was replaced before it could be removed, and its name is taken again; the new file "
                + "is left at \(PathBytes(claim)) in the same directory"
        }
    }

    // MARK: Recovery

    /// Finishes or undoes the moves a crash interrupted; returns one line per move handled.
    @discardableResult
    public func recover() -> [String] {
        guard let fd = try? sys_open(Array(journalDirectory.utf8), flags: O_RDONLY | O_DIRECTORY),
            let names = try? {
                defer { sys_close(fd) }; return try sys_readDirectory(fd)
            }()
        else { return [] }
        var report: [String] = []
        for (name, _) in names where name.count > 5 && name.suffix(5).elementsEqual(".json".utf8) {
            let path = Array(journalDirectory.utf8) + [UInt8(ascii: "/")] + name
            guard let bytes = try? sys_readFile(path),
                let journal = try? JSONDecoder().decode(JournalEntry.self, from: Data(bytes)),
                let pathBytes = Data(base64Encoded: journal.pathBase64).map({ PathBytes(Array($0)) })
            else {
                try? sys_unlink(path)
                continue
            }
            let sample = Array("\(directory)/\(journal.id).sample".utf8)
            if (try? sys_lstat(sample)) != nil, let entry = try? self.entry(journal.id) {
                // The verified copy and its sidecar exist: finish taking the original away.
                var problem: String?
                if let (parent, name) = try? Self.split(pathBytes),
                    let directoryFD = try? sys_open(parent, flags: O_RDONLY | O_DIRECTORY)
                {
                    defer { sys_close(directoryFD) }
                    let claim = Self.claimName(journal.id)
                    if (try? sys_statAt(directoryFD, claim)) != nil {
                        problem = settleClaim(
                            directoryFD, name: name, claim: claim, device: journal.device, inode: journal.inode)
                    } else if let current = try? sys_statAt(directoryFD, name), current.device == journal.device,
                        current.inode == journal.inode
                    {
                        problem = removeOriginal(
                            directoryFD, name: name, id: journal.id,
                            expecting: current)
                    }
                }
                if let problem {
                    var updated = entry
                    updated.state = .copyOnly
                    updated.note = problem
                    try? writeSidecar(updated)
                }
                report.append("finished quarantine \(journal.id) of \(pathBytes)" + (problem.map { ": \($0)" } ?? ""))
            } else if (try? sys_lstat(sample)) != nil {
                // A verified copy without a readable sidecar: never delete a sample, whatever
                // became of the original.
                report.append("kept sample \(journal.id) of \(pathBytes): its sidecar is unreadable")
            } else {
                // The copy was not complete: the original was never touched.
                abandon(journal.id)
                report.append("undid unfinished quarantine \(journal.id) of \(pathBytes); the file was not moved")
            }
            finish(journal.id)
        }
        return report
    }

    // MARK: Listing and restore

    /// Every sidecar, oldest first.
    public func entries() throws(SystemCallError) -> [QuarantineEntry] { try Self.entries(in: directory) }

    /// Every sidecar in a quarantine directory, read only (no directory is created, nothing recovered).
    public static func entries(in directory: String) throws(SystemCallError) -> [QuarantineEntry] {
        let fd = try sys_open(Array(directory.utf8), flags: O_RDONLY | O_DIRECTORY)
        defer { sys_close(fd) }
        let names = try sys_readDirectory(fd)
        return names.compactMap { name, _ -> QuarantineEntry? in
            guard name.count > 5, name.suffix(5).elementsEqual(".json".utf8) else { return nil }
            return try? entry(String(decoding: name.dropLast(5), as: UTF8.self), in: directory)
        }.sorted { ($0.quarantinedAt, $0.id) < ($1.quarantinedAt, $1.id) }
    }

    public func entry(_ id: String) throws(SystemCallError) -> QuarantineEntry { try Self.entry(id, in: directory) }

    static func entry(_ id: String, in directory: String) throws(SystemCallError) -> QuarantineEntry {
        guard isValidID(id) else { throw SystemCallError(syscall: "open", errno: .noSuchFileOrDirectory) }
        let path = Array("\(directory)/\(id).json".utf8)
        let bytes = try sys_readFile(path)
        guard let entry = try? JSONDecoder().decode(QuarantineEntry.self, from: Data(bytes)) else {
            throw SystemCallError(syscall: "read", path: path, errno: .ioError)
        }
        return entry
    }

    /// Puts sample `id` back at `destination` (default: where it came from) with its owner, mode
    /// and times; refuses to overwrite anything, and verifies the hash first.
    public func restore(_ id: String, to destination: PathBytes? = nil) throws(QuarantineError) -> QuarantineEntry {
        var entry: QuarantineEntry
        do {
            entry = try self.entry(id)
        } catch {
            throw QuarantineError(.unknownID, "no quarantined sample has id '\(id)'")
        }
        guard entry.state != .restored else {
            throw QuarantineError(.alreadyRestored, "sample \(id) was restored to \(entry.restoredTo ?? "?") already")
        }
        let target = destination ?? entry.originalPathBytes
        let (parent, name) = try Self.split(target)
        let sampleFD = try wrap("open sample \(id)") { () throws(SystemCallError) in
            try sys_open(Array(entry.samplePath.utf8), flags: O_RDONLY)
        }
        defer { sys_close(sampleFD) }
        let digest = DescriptorDigest()
        let actual = try wrap("hash sample \(id)") { () throws(SystemCallError) in
            try digest.sha256(of: sampleFD, limit: ReadLimit(maxBytes: entry.size)).sha256
                ?? "(longer than \(entry.size) bytes)"
        }
        guard actual == entry.sha256 else {
            throw QuarantineError(.corruptSample, "sample \(id) hashes to \(actual), not \(entry.sha256); not restored")
        }
        let directoryFD = try wrap("open the directory of \(target)") { () throws(SystemCallError) in
            try sys_open(parent, flags: O_RDONLY | O_DIRECTORY)
        }
        defer { sys_close(directoryFD) }
        if (try? sys_statAt(directoryFD, name)) != nil {
            throw QuarantineError(.exists, "\(target) exists; restore never overwrites (use --to PATH)", errno: EEXIST)
        }
        let temporary = Array(".shmwarden-restore-\(id)".utf8)
        try? sys_unlinkAt(directoryFD, temporary)
        try wrap("write \(target)") { () throws(SystemCallError) in
            let out = try sys_createAt(directoryFD, temporary, flags: O_WRONLY, permissions: 0o600)
            defer { sys_close(out) }
            let copied = try digest.copy(from: sampleFD, to: out, limit: ReadLimit(maxBytes: entry.size))
            guard copied.sha256 == entry.sha256 else {
                throw SystemCallError(syscall: "read", errno: .ioError)
            }
            try sys_fchown(out, uid: entry.uid, gid: entry.gid)
            // After chown: chown clears set-id bits, and the mode must come back exactly.
            try sys_fchmod(out, mode_t(entry.mode))
            if let accessed = Timestamp(rfc3339: entry.accessed), let modified = Timestamp(rfc3339: entry.modified) {
                try sys_futimens(out, accessed: Self.split(accessed), modified: Self.split(modified))
            }
            try sys_fsync(out)
        }
        do {
            try sys_renameNoReplace(directoryFD, temporary, directoryFD, name)
        } catch {
            try? sys_unlinkAt(directoryFD, temporary)
            if error.errno == .fileExists {
                throw QuarantineError(.exists, "\(target) appeared meanwhile; restore never overwrites", errno: EEXIST)
            }
            throw QuarantineError(.io, "rename into \(target): \(error)", errno: error.errno.rawValue)
        }
        try? sys_fsync(directoryFD)
        entry.state = .restored
        entry.restoredAt = Self.now().rfc3339
        entry.restoredTo = target.displayString
        entry.restoredToBase64 = target.base64
        try wrap("update the sidecar") { () throws(SystemCallError) in try writeSidecar(entry) }
        try? sys_unlink(Array(entry.samplePath.utf8))
        return entry
    }

    // MARK: Helpers

    private func step(_ step: QuarantineStep) { onStep?(step) }

    private func writeSidecar(_ entry: QuarantineEntry) throws(SystemCallError) {
        try sys_writeFileDurably(Array("\(directory)/\(entry.id).json".utf8), Self.encode(entry), permissions: 0o600)
    }

    /// Removes what an unfinished move left in the vault: never the original, and never a
    /// `.sample` (once one exists, the move is finished, not undone).
    private func abandon(_ id: String) {
        for suffix in [".partial", ".json.tmp", ".json"] { try? sys_unlink(Array("\(directory)/\(id)\(suffix)".utf8)) }
        finish(id)
    }

    private func finish(_ id: String) {
        let path = Array("\(journalDirectory)/\(id).json".utf8)
        try? sys_unlink(path)
        try? sys_fsyncDirectory(containing: path)
    }

    private func wrap<T>(_ what: String, _ body: () throws(SystemCallError) -> T) throws(QuarantineError) -> T {
        do {
            return try body()
        } catch {
            throw QuarantineError(.io, "\(what): \(error)", errno: error.errno.rawValue)
        }
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data())
    }

    static func split(_ path: PathBytes) throws(QuarantineError) -> (parent: [UInt8], name: [UInt8]) {
        let bytes = path.bytes
        guard bytes.first == UInt8(ascii: "/"), let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else {
            throw QuarantineError(.notFound, "\(path) is not an absolute path")
        }
        let name = Array(bytes[(slash + 1)...])
        guard !name.isEmpty, name != Array(".".utf8), name != Array("..".utf8) else {
            throw QuarantineError(.notRegularFile, "\(path) does not name a file")
        }
        return (slash == 0 ? [UInt8(ascii: "/")] : Array(bytes[..<slash]), name)
    }

    static func claimName(_ id: String) -> [UInt8] { Array(".shmwarden-quarantine-\(id)".utf8) }

    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let time = Self.now()
        let stamp = String(time.nanosecondsSinceEpoch / 1_000_000_000, radix: 36)
        return "q\(stamp)-" + String(generator.next() as UInt64, radix: 16)
    }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == UInt8(ascii: "-") }
    }

    static func now() -> Timestamp {
        let now = sys_realtime()
        return Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds)
    }

    static func split(_ time: Timestamp) -> (seconds: Int64, nanoseconds: Int64) {
        let seconds = time.nanosecondsSinceEpoch.quotientAndRemainder(dividingBy: 1_000_000_000)
        return seconds.remainder < 0 ? (seconds.quotient - 1, seconds.remainder + 1_000_000_000) : seconds
    }
}
