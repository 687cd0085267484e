// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import SystemPackage
import WardenCore
import WardenLinux

/// Scans what a descriptor holds with the rule set in force: reads it (by `pread`, never
/// mapped: a file truncated under a mapping would fault the agent) into a buffer of its own,
/// up to `yara.max-file-size` and a deadline, checks that the bytes are the ones hashed, and
/// scans them.
///
/// - Important: Not thread-safe; each thread scans with its own.
public final class YaraFileScanner {
    private let rules: SharedYaraRules
    private let settings: YaraSettings
    private var scanner: YaraScanner?
    private var scannerGeneration = -1
    private var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// A buffer grown past this is given back after its scan: an idle agent holds little.
    private static let keptBufferBytes = 4 << 20

    public init(rules: SharedYaraRules, settings: YaraSettings) {
        self.rules = rules
        self.settings = settings
    }

    deinit { buffer.deallocate() }

    /// The verdict on `fd`'s bytes (nil when no rule set is loaded).
    ///
    /// - Parameters:
    ///   - expectedSHA256: the hash the caller recorded for these bytes: a complete read that
    ///     hashes otherwise is `changed`. Nil: the verdict carries the hash of what was read.
    ///   - deadline: `sys_monotonicNanoseconds()` by which reading must end (the scan itself is
    ///     bounded by `yara.timeout`).
    ///   - hashing: hash what was read (to check it against `expectedSHA256`, or to name it);
    ///     off only for a scan whose verdict is not stored (`scan --yara`).
    ///   - known: asked with the hash of a file read whole, before the scan: a verdict it
    ///     returns (another scan's of the same bytes) is returned instead of scanning again.
    public func scan(
        _ fd: FileDescriptor, expectedSHA256: String?, deadline: Int64? = nil, hashing: Bool = true,
        now: () -> Timestamp, known: (String) -> YaraVerdict? = { _ in nil }
    ) -> YaraVerdict? {
        guard let set = currentRules() else { return nil }
        let started = sys_monotonicNanoseconds()
        var verdict = YaraVerdict(
            sha256: expectedSHA256 ?? "", ruleset: set.fingerprint, status: .failed, time: now())
        scan(fd, into: &verdict, expectedSHA256: expectedSHA256, deadline: deadline, hashing: hashing, known: known)
        if buffer.count > Self.keptBufferBytes { release() }
        verdict.durationNanoseconds = sys_monotonicNanoseconds() - started
        return verdict
    }

    /// The verdict on `fd`'s bytes, mapped by libyara rather than read (a file larger than
    /// `yara.max-file-size` is read, as a capture is): `scan --yara`, whose verdicts are shown,
    /// not stored, and need no hash.
    public func scanMapped(_ fd: FileDescriptor, now: () -> Timestamp) -> YaraVerdict? {
        guard let status = try? sys_fstat(fd), status.size > 0, status.size <= settings.maxFileSize else {
            return scan(fd, expectedSHA256: nil, hashing: false, now: now)
        }
        guard let set = currentRules() else { return nil }
        let started = sys_monotonicNanoseconds()
        var verdict = YaraVerdict(
            sha256: "", ruleset: set.fingerprint, status: .failed, scannedBytes: status.size, size: status.size,
            time: now())
        switch scanner?.scanMapped(descriptor: fd.rawValue) ?? .failed("libyara could not make a scanner") {
        case .matched(let matches):
            verdict.status = .complete
            verdict.matches = matches
        case .timeout:
            verdict.status = .timeout
            verdict.detail = "the scan took longer than yara.timeout (\(settings.timeoutSeconds) s)"
        case .failed(let why):
            verdict.detail = why
        }
        verdict.durationNanoseconds = sys_monotonicNanoseconds() - started
        return verdict
    }

    private func scan(
        _ fd: FileDescriptor, into verdict: inout YaraVerdict, expectedSHA256: String?, deadline: Int64?,
        hashing: Bool, known: (String) -> YaraVerdict?
    ) {
        guard let scanner else {
            verdict.detail = "libyara could not make a scanner"
            return
        }
        guard let before = try? sys_fstat(fd) else {
            verdict.detail = "cannot fstat the file"
            return
        }
        verdict.size = before.size
        let read: (bytes: Int, more: Bool)
        do {
            guard let done = try readPrefix(fd, sizeHint: before.size, deadline: deadline) else {
                verdict.status = .timeout
                verdict.detail = "not read before its deadline"
                return
            }
            read = done
        } catch {
            verdict.detail = "cannot read the file: \(error)"
            return
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<read.bytes])
        verdict.scannedBytes = Int64(read.bytes)
        if read.more {
            // Not every byte was read, so the bytes cannot be hashed whole: the file must not
            // have changed between the two looks at it.
            guard let after = try? sys_fstat(fd), after.contentVersion == before.contentVersion else {
                verdict.status = .changed
                verdict.detail = "the file changed while it was read"
                return
            }
        } else if hashing {
            verdict.size = Int64(read.bytes)
            let digest = DescriptorDigest.hex(SHA256.hash(data: bytes))
            if let expectedSHA256, digest != expectedSHA256 {
                verdict.status = .changed
                verdict.detail =
                    "the bytes read hash to \(digest), not \(expectedSHA256): the file changed after it was hashed"
                return
            }
            verdict.sha256 = digest
            if let found = known(digest) {
                verdict = found
                return
            }
        } else {
            verdict.size = Int64(read.bytes)
        }
        switch scanner.scan(bytes, fileSize: max(verdict.size, Int64(read.bytes))) {
        case .matched(let matches):
            verdict.status = read.more ? .truncated : .complete
            verdict.matches = matches
            if read.more { verdict.detail = "larger than yara.max-file-size (\(settings.maxFileSize) bytes)" }
        case .timeout:
            verdict.status = .timeout
            verdict.detail = "the scan took longer than yara.timeout (\(settings.timeoutSeconds) s)"
        case .failed(let why):
            verdict.detail = why
        }
    }

    /// The rule set in force, with this thread's scanner made for it.
    private func currentRules() -> YaraRuleSet? {
        guard let set = rules.current else { return nil }
        let generation = rules.generation
        if scanner == nil || generation != scannerGeneration || scanner?.rules !== set.rules {
            scanner = YaraScanner(rules: set.rules, timeoutSeconds: settings.timeoutSeconds)
            scannerGeneration = generation
        }
        return set
    }

    /// Reads from offset 0 up to `yara.max-file-size` bytes; `more` when the file holds more.
    /// Nil when the deadline passed first.
    private func readPrefix(_ fd: FileDescriptor, sizeHint: Int64, deadline: Int64?) throws(SystemCallError) -> (
        bytes: Int, more: Bool
    )? {
        let cap = Int(min(settings.maxFileSize, Int64(Int.max / 2)))
        // Room for the whole file and one byte more: a file that did not grow is read in place.
        ensure(capacity: min(cap, max(Int(clamping: sizeHint) + 1, 64 << 10)))
        var offset = 0
        while true {
            if let deadline, sys_monotonicNanoseconds() > deadline { return nil }
            if offset == buffer.count {
                if offset >= cap {
                    // One byte past the cap tells whether there is more.
                    let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                    defer { probe.deallocate() }
                    let more = try sys_pread(fd, into: probe, at: Int64(offset))
                    return (offset, more > 0)
                }
                ensure(capacity: min(cap, buffer.count * 2))
            }
            let count = try sys_pread(
                fd,
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<min(buffer.count, offset + (4 << 20))]),
                at: Int64(offset))
            if count == 0 { return (offset, false) }
            offset += count
        }
    }

    private func ensure(capacity: Int) {
        guard capacity > buffer.count else { return }
        let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 4096)
        if buffer.count > 0, let source = buffer.baseAddress, let target = grown.baseAddress {
            target.copyMemory(from: source, byteCount: buffer.count)
        }
        buffer.deallocate()
        buffer = grown
    }

    private func release() {
        buffer.deallocate()
        buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }
}
