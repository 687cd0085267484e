// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// One file observation an alert is about, and how we know.
public struct Correlation: Hashable, Sendable {
    /// The file observation's store id.
    public var fileID: Int64
    public var sha256: String?
    public var path: PathBytes
    /// The alert fields (and mapping) that led here, e.g. `proc.exepath` or
    /// `proc.exepath+container-shm-mount`.
    public var matchedBy: String
    /// 0…1: how sure the match is (kernel-resolved path and inode together are surest;
    /// argv-derived paths, which the process controls, least).
    public var confidence: Double

    public init(fileID: Int64, sha256: String?, path: PathBytes, matchedBy: String, confidence: Double) {
        self.fileID = fileID
        self.sha256 = sha256
        self.path = path
        self.matchedBy = matchedBy
        self.confidence = confidence
    }

    /// The strongest basis among the ways this file was matched.
    public var basis: CorrelationBasis { CorrelationBasis(matchedBy: matchedBy) }
}

/// What a correlation rests on: facts the kernel resolved, or words the alert's process chose.
///
/// `kernel`: the kernel-resolved executable path (`proc.exepath`), the file a descriptor names
/// (`fd.name`), an inode (`proc.exe_ino`, `fd.ino`) on a watched tmpfs, the exec guard's own
/// record of the pid, and a container's path mapped into that container's own shm mount (its id
/// in the mount's path). `text`: argv[0] (`proc.exe`), command-line words, paths joined to
/// `proc.cwd`, a bare 64-hex value, and paths mapped into a mount that no id in the alert names
/// (another container's shm, or the host's /dev/shm for a container not known to share it).
public enum CorrelationBasis: String, Hashable, Sendable, Codable, CaseIterable, Comparable {
    case text
    case kernel

    /// The basis of a `matchedBy` list: `kernel` when any one way is.
    public init(matchedBy: String) {
        let kernel = matchedBy.split(separator: ",").contains { Self.isKernelFact(Substring($0)) }
        self = kernel ? .kernel : .text
    }

    static let kernelFields: Set<Substring> = [
        "proc.exepath", "fd.name", "proc.exe_ino", "fd.ino", "exec-record:proc.pid", "process-capture:proc.pid",
    ]
    static let kernelMappings: Set<Substring> = ["container-shm-mount", "pod-sandbox-shm-mount"]

    static func isKernelFact(_ way: Substring) -> Bool {
        let parts = way.split(separator: "+")
        guard let field = parts.first, kernelFields.contains(field) else { return false }
        return parts.dropFirst().allSatisfy { kernelMappings.contains($0) }
    }

    public static func < (lhs: CorrelationBasis, rhs: CorrelationBasis) -> Bool { lhs == .text && rhs == .kernel }
}

/// Why an alert has no file evidence.
public enum NoEvidenceReason: String, Sendable, Codable, CaseIterable {
    /// Falco's own event (for example a syscall event drop), not about a file.
    case internalEvent
    /// The program ran from a memfd, whose bytes only the running process holds, and shmwarden
    /// did not look at the process when the alert arrived (no proc.pid, an unauthenticated
    /// sender, or the exec monitor off); nothing taken from it at its exec matched either.
    case memfdExecution
    /// The program ran from a memfd, and the process had exited when the alert arrived.
    case memfdProcessExited
    /// The program ran from a memfd, and the process was running when the alert arrived, but its
    /// bytes could not be taken (a read error or a full store queue, logged by the agent).
    case memfdNotCaptured
    /// The alert names no path or inode to look for.
    case noPathInAlert
    /// Every path the alert names is outside the tmpfs mounts we watch.
    case pathOutsideTmpfs
    /// The path is on a watched tmpfs, but no file was recorded there at that time.
    case neverSeen
    /// A container alert names a path in the container's /dev/shm (a tmpfs of its own), and no
    /// mount of it was found on this host; the host's /dev/shm had no such file either.
    case containerShmNotFound

    /// Whether a later look may still find the file: it may be recorded late, or the
    /// container's mount discovered late.
    /// A memfd program's capture may be on its way from the exec monitor.
    public var mayStillBeFound: Bool {
        switch self {
        case .neverSeen, .containerShmNotFound, .memfdExecution, .memfdProcessExited, .memfdNotCaptured: true
        case .internalEvent, .noPathInAlert, .pathOutsideTmpfs: false
        }
    }

    /// The program ran from a memfd.
    public var isMemfd: Bool { self == .memfdExecution || self == .memfdProcessExited || self == .memfdNotCaptured }
}

/// What the intake found of the process an alert names, when it looked before correlating.
public enum ProcessAtArrival: Sendable, Hashable {
    case running
    case gone
}

/// The outcome of correlating one alert.
public struct CorrelationResult: Hashable, Sendable {
    public var correlations: [Correlation]
    /// Set when `correlations` is empty.
    public var noEvidenceReason: NoEvidenceReason?

    public init(correlations: [Correlation], noEvidenceReason: NoEvidenceReason?) {
        self.correlations = correlations
        self.noEvidenceReason = noEvidenceReason
    }
}

/// Where the correlator looks for file observations: a port the store implements.
public protocol EvidenceLookup {
    func files(atPath path: PathBytes) throws -> [FileRecord]
    func files(inode: UInt64) throws -> [FileRecord]
    func files(sha256: String) throws -> [FileRecord]
    /// The execs the exec guard recorded for `pid` between the two times.
    func execs(pid: Int32, from: Timestamp, to: Timestamp) throws -> [ExecFact]
    /// The files taken from process `pid` while it ran (its executable, a script it ran).
    func capturedFiles(pid: Int32) throws -> [FileRecord]
}

extension EvidenceLookup {
    /// No exec records (a lookup without the guard's table).
    public func execs(pid: Int32, from: Timestamp, to: Timestamp) throws -> [ExecFact] { [] }
    /// No captures from processes (a lookup without them).
    public func capturedFiles(pid: Int32) throws -> [FileRecord] { [] }
}

/// What the exec guard recorded about one exec: which file a pid ran.
public struct ExecFact: Hashable, Sendable {
    public var path: PathBytes
    public var device: UInt64
    public var inode: UInt64
    public var sha256: String?

    public init(path: PathBytes, device: UInt64, inode: UInt64, sha256: String?) {
        self.path = path
        self.device = device
        self.inode = inode
        self.sha256 = sha256
    }
}

/// Finds the file evidence an alert is about. Pure: the store is behind `EvidenceLookup`, the
/// mount table is passed in.
public enum AlertCorrelator {
    /// How far apart the alert time and our record may be: our record can trail the exec by
    /// the sensor's latency, and Falco's clock and ours are not the same clock.
    public static let timeSlack: Int64 = 5_000_000_000

    /// A path the alert names, before mapping container paths to host paths.
    struct Candidate: Hashable {
        var path: PathBytes
        var matchedBy: String
        var confidence: Double
    }

    /// - Parameter processAtArrival: what the intake found of the alert's process (nil: it did
    ///   not look); it tells why a memfd program has no capture.
    public static func correlate(
        _ alert: FalcoAlert, tmpfsMounts: [PathBytes], lookup: some EvidenceLookup,
        processAtArrival: ProcessAtArrival? = nil
    ) throws -> CorrelationResult {
        if alert.isInternal { return CorrelationResult(correlations: [], noEvidenceReason: .internalEvent) }
        var found: [Int64: Correlation] = [:]
        func add(_ record: FileRecord, _ matchedBy: String, _ confidence: Double) {
            guard let id = record.id else { return }
            if var existing = found[id] {
                if !existing.matchedBy.split(separator: ",").contains(Substring(matchedBy)) {
                    existing.matchedBy += "," + matchedBy
                }
                // Two independent fields pointing at the same file make it surer than either.
                existing.confidence = min(1.0, max(existing.confidence, confidence) + 0.05)
                found[id] = existing
            } else {
                found[id] = Correlation(
                    fileID: id, sha256: record.sha256, path: record.path, matchedBy: matchedBy, confidence: confidence)
            }
        }

        let candidates = candidatePaths(alert)
        var hostPaths: [Candidate] = []
        for candidate in candidates { hostPaths += hostCandidates(candidate, alert: alert, tmpfsMounts: tmpfsMounts) }
        for candidate in hostPaths {
            for record in try lookup.files(atPath: candidate.path) where existed(record, at: alert.time) {
                add(record, candidate.matchedBy, candidate.confidence)
            }
        }
        // The exec guard saw this pid exec a file: the surest link there is (the kernel's own).
        if let pid = alert.field("proc.pid").flatMap({ Int32($0) }) {
            let execs = try lookup.execs(
                pid: pid, from: alert.time.adding(nanoseconds: -timeSlack),
                to: alert.time.adding(nanoseconds: timeSlack))
            for exec in execs {
                let byPath = try lookup.files(atPath: exec.path)
                let candidates = byPath.isEmpty ? try lookup.files(inode: exec.inode) : byPath
                for record in candidates where record.device == exec.device && record.inode == exec.inode {
                    guard exec.sha256 == nil || record.sha256 == nil || record.sha256 == exec.sha256 else { continue }
                    add(record, "exec-record:proc.pid", 0.97)
                }
            }
            for record in processCaptures(try lookup.capturedFiles(pid: pid), pid: pid, at: alert.time) {
                add(record, "process-capture:proc.pid", 0.98)
            }
        }
        for (field, confidence) in [("proc.exe_ino", 0.8), ("fd.ino", 0.75)] {
            guard let inode = alert.outputFields[field]?.unsignedValue, inode > 0 else { continue }
            for record in try lookup.files(inode: inode) where existed(record, at: alert.time) {
                // Inode numbers repeat across filesystems: only count files on our mounts.
                guard tmpfsMounts.contains(where: { record.path.isWithin($0) }) else { continue }
                add(record, field, confidence)
            }
        }
        // Fields that could hold a SHA-256, in key order (a stable order of matches); most
        // alerts have none, and sorting every field of every alert to find that out was 3% of
        // the intake's CPU.
        var hashFields: [(field: String, raw: String)] = []
        for (field, value) in alert.outputFields {
            if case .string(let raw) = value, raw.utf8.count == 64 { hashFields.append((field, raw)) }
        }
        for (field, raw) in hashFields.sorted(by: { $0.field < $1.field }) {
            let text = raw.lowercased()
            guard isSHA256(text) else { continue }
            for record in try lookup.files(sha256: text) { add(record, "\(field)=sha256", 0.99) }
        }

        let correlations = found.values.sorted { ($0.confidence, -$0.fileID) > ($1.confidence, -$1.fileID) }
        if !correlations.isEmpty { return CorrelationResult(correlations: correlations, noEvidenceReason: nil) }
        if isMemfdExecution(alert) {
            let reason: NoEvidenceReason =
                switch processAtArrival {
                case nil: .memfdExecution
                case .gone?: .memfdProcessExited
                case .running?: .memfdNotCaptured
                }
            return CorrelationResult(correlations: [], noEvidenceReason: reason)
        }
        if candidates.isEmpty && alert.outputFields["proc.exe_ino"] == nil && alert.outputFields["fd.ino"] == nil {
            return CorrelationResult(correlations: [], noEvidenceReason: .noPathInAlert)
        }
        // A container's /dev/shm is a tmpfs its runtime mounts on the host: when none was found
        // for it, only the host's own /dev/shm (shared under --ipc=host) was looked at, and
        // saying the path is on a watched tmpfs would not be true of the container's.
        let namesContainerShm = candidates.contains { $0.path.bytes.starts(with: Array("/dev/shm/".utf8)) }
        if namesContainerShm, let container = alert.field("container.id"), !container.isEmpty, container != "host",
            !hostPaths.contains(where: { $0.matchedBy.hasSuffix("shm-mount") })
        {
            return CorrelationResult(correlations: [], noEvidenceReason: .containerShmNotFound)
        }
        let onTmpfs = hostPaths.contains { candidate in tmpfsMounts.contains { candidate.path.isWithin($0) } }
        return CorrelationResult(correlations: [], noEvidenceReason: onTmpfs ? .neverSeen : .pathOutsideTmpfs)
    }

    /// What was taken from the process `pid` that the alert is about: the captures of the newest
    /// process with that pid that had started by the alert's time (a pid is reused: an older
    /// process's captures, or a later one's, are another program's).
    static func processCaptures(_ records: [FileRecord], pid: Int32, at time: Timestamp) -> [FileRecord] {
        let ofPID = records.filter { $0.capture?.pid == pid }
        let started = ofPID.compactMap { $0.capture?.started }.filter { $0 <= time.adding(nanoseconds: timeSlack) }
        guard let newest = started.max() else {
            // No start time known: only a capture made around the alert's time.
            return ofPID.filter { abs($0.firstSeen.nanosecondsSinceEpoch &- time.nanosecondsSinceEpoch) <= timeSlack }
        }
        return ofPID.filter { $0.capture?.started == newest }
    }

    /// The file existed (was recorded, and not yet deleted) around the alert's time.
    static func existed(_ record: FileRecord, at time: Timestamp) -> Bool {
        guard record.firstSeen <= time.adding(nanoseconds: timeSlack) else { return false }
        if let deleted = record.deletedAt { return deleted >= time.adding(nanoseconds: -timeSlack) }
        return true
    }

    /// The paths an alert names, most trustworthy first.
    ///
    /// Works on UTF-8 bytes and makes a string only of what looks like a path: every alert's
    /// command line is cut into words here, and a string per word was most of the correlator's
    /// own time in the store writer.
    static func candidatePaths(_ alert: FalcoAlert) -> [Candidate] {
        var out: [Candidate] = []
        let cwd = alert.field("proc.cwd")
        func add(_ text: Substring.UTF8View, _ field: String, _ confidence: Double) {
            guard let first = text.first else { return }
            if first == slash {
                out.append(Candidate(path: PathBytes(Array(text)), matchedBy: field, confidence: confidence))
            } else if first == dot, isRelativePath(text), let cwd, cwd.utf8.first == slash {
                let joined = normalize(cwd + (cwd.hasSuffix("/") ? "" : "/") + String(Substring(text)))
                out.append(
                    Candidate(path: PathBytes(joined), matchedBy: field + "+proc.cwd", confidence: confidence - 0.1))
            }
        }
        func add(_ text: String?, _ field: String, _ confidence: Double) {
            guard let text, text != "<NA>" else { return }
            add(Substring(text).utf8, field, confidence)
        }
        // proc.exepath is resolved by the kernel; proc.exe is argv[0] and fd.name the file the
        // event names; the command line is whatever the process says it is.
        add(alert.field("proc.exepath"), "proc.exepath", 0.95)
        add(alert.field("fd.name"), "fd.name", 0.9)
        add(alert.field("proc.exe"), "proc.exe", 0.7)
        for field in ["proc.cmdline", "proc.args"] {
            guard let line = alert.field(field) else { continue }
            let words = Substring(line).utf8.split(whereSeparator: { $0 == space || $0 == tab })
            for word in words.dropFirst(field == "proc.cmdline" ? 1 : 0) { add(word, field, 0.6) }
        }
        // Fields that name the same path agree: one candidate, named by all of them.
        var merged: [Candidate] = []
        for candidate in out {
            if let index = merged.firstIndex(where: { $0.path == candidate.path }) {
                merged[index].matchedBy += "," + candidate.matchedBy
                merged[index].confidence = min(1.0, merged[index].confidence + 0.02)
            } else {
                merged.append(candidate)
            }
        }
        return merged
    }

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    /// `./…` or `../…`.
    private static func isRelativePath(_ text: Substring.UTF8View) -> Bool {
        var bytes = text.makeIterator()
        guard bytes.next() == dot else { return false }
        switch bytes.next() {
        case slash: return true
        case dot: return bytes.next() == slash
        default: return false
        }
    }

    /// Host paths for a candidate: a container's `/dev/shm` is its own tmpfs, mounted on the host
    /// by the runtime and named after the container (Docker:
    /// `/var/lib/docker/containers/<container id>/mounts/shm`) or after its pod's sandbox, which
    /// all the pod's containers share (containerd's CRI: `…/sandboxes/<sandbox id>/shm`; CRI-O:
    /// `…/overlay-containers/<sandbox id>/userdata/shm`). Falco carries both ids
    /// (`container.id`, `k8s.pod.sandbox_id`: their first 12 characters; `container.full_id`,
    /// `k8s.pod.full_sandbox_id`).
    static func hostCandidates(_ candidate: Candidate, alert: FalcoAlert, tmpfsMounts: [PathBytes]) -> [Candidate] {
        guard let containerID = alert.field("container.id"), !containerID.isEmpty, containerID != "host" else {
            return [candidate]
        }
        let containerIDs = [containerID, alert.field("container.full_id")].compactMap { $0 }.filter { $0.count >= 12 }
        let sandboxIDs = [alert.field("k8s.pod.sandbox_id"), alert.field("k8s.pod.full_sandbox_id")].compactMap { $0 }
            .filter { $0.count >= 12 }
        let shmPrefix = Array("/dev/shm/".utf8)
        guard candidate.path.bytes.starts(with: shmPrefix) else {
            // Outside the container's /dev/shm we cannot see its filesystem from the host.
            return [
                Candidate(path: candidate.path, matchedBy: candidate.matchedBy, confidence: candidate.confidence * 0.5)
            ]
        }
        let rest = Array(candidate.path.bytes.dropFirst(shmPrefix.count))
        var named: [Candidate] = []
        var unnamed: [Candidate] = []
        let containerShmMounts = tmpfsMounts.filter {
            $0.bytes.count > 4 && $0.bytes.suffix(4) == Array("/shm".utf8)[...]
        }
        for mount in containerShmMounts {
            let components = mount.bytes.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
            func isNamed(by ids: [String]) -> Bool { ids.contains { id in components.contains { $0.hasPrefix(id) } } }
            if isNamed(by: containerIDs) {
                named.append(
                    Candidate(
                        path: mount.appending(rest), matchedBy: candidate.matchedBy + "+container-shm-mount",
                        confidence: candidate.confidence))
            } else if isNamed(by: sandboxIDs) {
                named.append(
                    Candidate(
                        path: mount.appending(rest), matchedBy: candidate.matchedBy + "+pod-sandbox-shm-mount",
                        confidence: candidate.confidence))
            } else if components.contains("sandboxes") || components.contains("containers")
                || components.contains("overlay-containers") || components.contains("pods")
            {
                unnamed.append(
                    Candidate(
                        path: mount.appending(rest), matchedBy: candidate.matchedBy + "+any-container-shm-mount",
                        confidence: candidate.confidence * 0.5))
            }
        }
        // Other containers' and pods' mounts count only when nothing names the right one: a pod's
        // shm named by a sandbox id the alert does not carry (Falco without its container
        // plugin's k8s fields) may be any of them, so those matches count for less.
        var out = named.isEmpty && sandboxIDs.isEmpty ? unnamed : named
        // A container started with --ipc=host shares the host's /dev/shm.
        out.append(
            Candidate(
                path: candidate.path, matchedBy: candidate.matchedBy + "+host-ipc",
                confidence: candidate.confidence * 0.6))
        return out
    }

    static func isMemfdExecution(_ alert: FalcoAlert) -> Bool {
        if alert.outputFields["proc.is_exe_from_memfd"] == .bool(true)
            || alert.field("proc.is_exe_from_memfd") == "true"
        {
            return true
        }
        if let flags = alert.field("evt.arg.flags"), contains(flags, word: "EXE_FROM_MEMFD") { return true }
        for field in ["proc.exepath", "proc.exe"] {
            if let path = alert.field(field), path.hasPrefix("memfd:") || path.hasPrefix("/memfd:") { return true }
        }
        return false
    }

    /// Whether `word` occurs in `text`, byte for byte (String's own `contains` goes through
    /// generic string processing that cost more than the rest of this check).
    static func contains(_ text: String, word: String) -> Bool {
        let haystack = Array(text.utf8)
        let needle = Array(word.utf8)
        guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }

    static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// Removes `.` and resolves `..` lexically (argv paths are joined to proc.cwd, never resolved
    /// on this host's filesystem).
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." || part.isEmpty { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
