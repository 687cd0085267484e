// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Logging
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// `ingest --follow` will not read a file that others could write alerts into.
public struct FollowRefusal: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String {
        "refusing to follow \(path): \(reason); only a file that nobody but root can write (nor replace) may feed alerts"
    }
}

/// What one `ingest` run took in.
public struct IngestReport: Sendable {
    public var accepted = 0
    public var duplicates = 0
    public var badLines = 0

    public init() {}
}

/// Reads newline-delimited Falco JSON (what `program_output` pipes and `file_output` writes),
/// one alert per line, and stores each through the same decode-and-correlate path as HTTP.
///
/// Lines are committed in batches (durably: the batch's commit is fsynced); a bad line is
/// reported with its number and skipped, and the rest still go in.
public final class NDJSONIngester {
    private let database: EvidenceDatabase
    private let mounts: TmpfsMountCache
    private let onBadLine: (Int, String) -> Void
    private var lineNumber = 0
    private var pending: [StoreCommand] = []
    public private(set) var report = IngestReport()
    /// Told of each batch of alerts once it is committed (the responder's trigger).
    private let onCommitted: (([AlertRecord]) -> Void)?
    /// Who the lines come from (stored with each alert).
    private let sender: AlertSender
    static let batchSize = 1000

    public init(
        database: EvidenceDatabase, mounts: TmpfsMountCache, onBadLine: @escaping (Int, String) -> Void,
        onCommitted: (([AlertRecord]) -> Void)? = nil, sender: AlertSender = .unrecorded
    ) {
        self.sender = sender
        self.database = database
        self.mounts = mounts
        self.onBadLine = onBadLine
        self.onCommitted = onCommitted
    }

    /// Reads `fd` to its end.
    public func ingest(_ fd: FileDescriptor) throws {
        var reader = LineReader(fd: fd)
        while let chunk = try reader.readLines() {
            for line in chunk { try take(line) }
            try flush()
        }
        if let last = reader.remainder() { try take(last) }
        try flush()
    }

    /// Tails the file at `path` like `tail -F`: follows appends, starts over when the file is
    /// truncated, and reopens it when it is replaced (rotation), until `shouldStop` says so.
    ///
    /// - Throws: `FollowRefusal` when the file, or a directory on its path, may be written by
    ///   anyone but root (checked again at each rotation): whoever can write it could forge
    ///   alerts as Falco.
    public func follow(path: String, shouldStop: () -> Bool) throws {
        var fd = try Self.open(path)
        var identity = try sys_fstat(fd)
        var reader = LineReader(fd: fd)
        var offset: Int64 = 0
        while !shouldStop() {
            if let lines = try reader.readLines() {
                offset = reader.offset
                for line in lines { try take(line) }
                try flush()
                continue
            }
            usleep(200_000)
            let current = try? sys_lstat(Array(path.utf8))
            if let current, current.inode != identity.inode || current.device != identity.device {
                // Rotated: finish the old file, then start the new one from its beginning.
                while let lines = try reader.readLines() { for line in lines { try take(line) } }
                if let last = reader.remainder() { try take(last) }
                try flush()
                sys_close(fd)
                fd = try Self.open(path)
                identity = try sys_fstat(fd)
                reader = LineReader(fd: fd)
                offset = 0
            } else if let size = try? sys_fstat(fd).size, size < offset || !reader.tailIsUnchanged() {
                // Truncated in place (copytruncate): read again from the start. Written again
                // past where we were before this poll saw it, the file is no shorter, but the
                // bytes before our offset are no longer the ones we read.
                try sys_lseek(fd, to: 0)
                reader = LineReader(fd: fd)
                offset = 0
            }
        }
        if let last = reader.remainder() { try take(last) }
        try flush()
        sys_close(fd)
    }

    private static func open(_ path: String) throws -> FileDescriptor {
        let fd = try sys_open(Array(path.utf8), flags: O_RDONLY, followingSymlinks: true)
        if let reason = distrust(ofOpened: fd) {
            sys_close(fd)
            throw FollowRefusal(path: path, reason: reason)
        }
        return fd
    }

    /// Why the file open at `fd` could be written by someone other than root, or nil.
    ///
    /// Judged from the descriptor's own file and the kernel's name for it (no symbolic link
    /// left to swap), up to `/`.
    public static func distrust(ofOpened fd: FileDescriptor) -> String? {
        guard let status = try? sys_fstat(fd),
            let resolved = try? sys_readlink(Array("/proc/self/fd/\(fd.rawValue)".utf8))
        else { return "it cannot be examined" }
        let directories = DirectoryChain.statuses(above: resolved, device: nil) ?? []
        return OwnershipChain.distrust(
            file: .init(uid: status.uid, mode: status.mode),
            directories: directories.map { .init(uid: $0.uid, mode: $0.mode) }, trustedOwners: [])
    }

    private func take(_ line: [UInt8]) throws {
        lineNumber += 1
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0d }) else { return }
        do {
            pending.append(
                .correlateAndStore(try AlertIntake.decode(Data(line), from: sender), tmpfsMounts: mounts.mounts))
            if pending.count >= Self.batchSize { try flush() }
        } catch let error as AlertDecodingError {
            report.badLines += 1
            onBadLine(lineNumber, error.reason)
        }
    }

    /// Commits the pending alerts; each is correlated in the same transaction, and a repeat of
    /// one stored before (or earlier in the batch) is counted as a duplicate.
    private func flush() throws {
        guard !pending.isEmpty else { return }
        let applied = try database.applyBatch(pending)
        var stored: [AlertRecord] = []
        for index in pending.indices {
            guard let alert = applied.alerts[index] else { continue }
            if alert.duplicate {
                report.duplicates += 1
            } else {
                report.accepted += 1
                stored.append(alert.record)
            }
        }
        if !stored.isEmpty { onCommitted?(stored) }
        pending.removeAll(keepingCapacity: true)
    }
}

/// Splits what a descriptor yields into lines, keeping a partial last line for the next read.
struct LineReader {
    let fd: FileDescriptor
    private var buffer: [UInt8] = []
    private(set) var offset: Int64 = 0
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)
    /// The last bytes read (a whole Falco alert line, typically, its time included).
    private var tail: [UInt8] = []
    static let tailLength = 4096

    init(fd: FileDescriptor) { self.fd = fd }

    /// Whether the bytes before `offset` are still the ones read there.
    func tailIsUnchanged() -> Bool {
        guard !tail.isEmpty else { return true }
        var now = [UInt8](repeating: 0, count: tail.count)
        let count = now.withUnsafeMutableBytes { raw in
            (try? sys_pread(fd, into: raw, at: offset - Int64(tail.count))) ?? -1
        }
        return count == tail.count && now == tail
    }

    /// The complete lines from the next read; nil at end of file (for now).
    mutating func readLines() throws -> [[UInt8]]? {
        let count = try chunk.withUnsafeMutableBytes { raw throws -> Int in try sys_read(fd, into: raw) ?? 0 }
        guard count > 0 else { return nil }
        offset += Int64(count)
        tail =
            count >= Self.tailLength
            ? Array(chunk[(count - Self.tailLength)..<count])
            : Array((tail + chunk[0..<count]).suffix(Self.tailLength))
        buffer.append(contentsOf: chunk[0..<count])
        var lines: [[UInt8]] = []
        var start = 0
        while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(Array(buffer[start..<newline]))
            start = newline + 1
        }
        buffer.removeFirst(start)
        return lines
    }

    /// A last line with no newline after it.
    mutating func remainder() -> [UInt8]? {
        defer { buffer.removeAll() }
        return buffer.isEmpty ? nil : buffer
    }
}
