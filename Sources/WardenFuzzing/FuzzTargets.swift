// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenLinux

/// The parsers that take hostile input, each driven as far as its input goes: an alert through
/// decoding, correlation and the report; mountinfo; policies; the configuration file; what a
/// process's `/proc` files and the process events connector say. A fuzzer
/// (`shmwarden-fuzz`, built with `-sanitize=fuzzer`) and the corpus replay test call these;
/// none may trap on any input.
public enum FuzzTargets {
    public static let names = ["alert", "mountinfo", "policy", "config", "process"]

    /// Runs target `name` on `bytes`; false for an unknown name.
    @discardableResult
    public static func run(_ name: String, _ bytes: [UInt8]) -> Bool {
        switch name {
        case "alert": alert(bytes)
        case "mountinfo": _ = try? MountInfoParser.parse(bytes)
        case "policy":
            let text = String(decoding: bytes, as: UTF8.self)
            if case .success(let document) = PolicyParser.parse(text, file: "fuzz.yaml") {
                if case .success(let policy) = PolicyParser.merge([document]) { evaluate(policy) }
            }
        case "config": _ = ConfigFile.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
        case "process": process(bytes)
        default: return false
        }
        return true
    }

    /// The same bytes as every `/proc` text a process writes or shapes (maps, status, stat,
    /// cgroup, fdinfo, its command line and a script path) and as a connector datagram.
    static func process(_ bytes: [UInt8]) {
        _ = ProcessFacts.filelessMappings(maps: bytes)
        _ = ProcessFacts.mappedDevice(maps: bytes, path: Array(bytes.suffix(24)))
        _ = ProcessFacts.parentAndUID(status: bytes)
        if let ticks = ProcessFacts.startTicks(stat: bytes) {
            _ = ProcessFacts.started(ticks: ticks, bootTime: Int64(bytes.count), ticksPerSecond: 100)
        }
        _ = ProcessFacts.bootTime(procStat: bytes)
        _ = ProcessFacts.containerID(cgroup: bytes)
        _ = ProcessFacts.mountID(fdinfo: bytes)
        _ = ProcessFacts.openFlags(fdinfo: bytes)
        _ = ProcessFacts.lexicallyNormalized(bytes)
        _ = ProcessPath.descriptorNumber(inPath: bytes)
        _ = InterpreterNames(InterpretedScript.defaultInterpreters).matches(bytes)
        let arguments = ProcessFacts.arguments(commandLine: bytes)
        for interpreter in InterpretedScript.defaultInterpreters {
            _ = InterpretedScript.scriptArgument(arguments, interpreter: interpreter)
        }
        _ = bytes.withUnsafeBytes { ProcessEventDecoder.execs(in: $0) }
    }

    /// Decodes an alert (as it arrives, and as the store reads it back), correlates it against a
    /// store that has a file at every path it is asked about, and builds and renders its report.
    static func alert(_ bytes: [UInt8]) {
        let data = Data(bytes)
        _ = try? FalcoAlert.decode(data)
        guard let alert = try? FalcoAlert.decode(data, acceptingAnyTime: true) else { return }
        let lookup = EverywhereLookup(time: alert.time)
        let mounts = [PathBytes("/dev/shm"), PathBytes("/var/lib/docker/containers/0123456789abcdef/mounts/shm")]
        guard let result = try? AlertCorrelator.correlate(alert, tmpfsMounts: mounts, lookup: lookup) else { return }
        for correlation in result.correlations { _ = correlation.basis }
        let evidence = result.correlations.map { correlation in
            ReportEvidence(
                file: lookup.record(correlation.path), matchedBy: correlation.matchedBy,
                confidence: correlation.confidence,
                mount: MountFacts(
                    mountPoint: PathBytes("/dev/shm"), options: ["rw", "nosuid"], superOptions: ["rw"], fsType: "tmpfs",
                    source: "tmpfs"),
                quarantineID: nil)
        }
        let input = ReportInput(
            alertID: "fuzz", alert: alert, receivedAt: alert.time.adding(nanoseconds: 30_000_000_000),
            evidence: evidence, noEvidenceReason: result.noEvidenceReason,
            actions: [
                ReportAction(
                    time: alert.time.rfc3339, rule: "r", action: "kill-process", mode: "enforce", outcome: "skipped",
                    target: alert.field("proc.pid"), detail: alert.output ?? "")
            ], eventDropNearby: bytes.count % 2 == 0, memfdNoexec: 1, generatedAt: alert.time)
        let report = ReportBuilder.build(input)
        _ = ReportMarkdown.render(report)
        _ = try? JSONEncoder().encode(report)
        _ = PolicyEvaluator.evaluate(
            Self.policy, for: .alert(id: "fuzz", alert, files: evidence.map { PolicyFile($0.file) }))
    }

    static let policy: Policy = {
        let text = """
            mode: enforce
            allowlist: {paths: ["/dev/shm/ok/**", "/**/x*y**z"]}
            rules:
              - name: all
                match: {priority: ">=Debug", fields: {proc.name: {glob: "*a*b*"}, container.id: {not: host}}}
                actions: [record, quarantine, kill-process, advise-noexec, sandbox]
                continue: true
              - name: any
                actions: [record]
            """
        guard case .success(let document) = PolicyParser.parse(text, file: "fuzz.yaml"),
            case .success(let policy) = PolicyParser.merge([document])
        else { return .none }
        return policy
    }()

    static func evaluate(_ policy: Policy) {
        let file = PolicyFile(
            fileID: 1, path: PathBytes("/dev/shm/x"), mountPoint: PathBytes("/dev/shm"), kind: .elf, size: 1,
            sha256: nil, state: .present, device: 1, inode: 1)
        _ = PolicyEvaluator.evaluate(policy, for: .droppedExecutable(file))
        for glob in policy.allowlist.paths { _ = glob.matches(PathBytes("/dev/shm/a/b/c")) }
    }
}

/// A store with a file at every path, inode and hash it is asked for, recorded around `time`.
struct EverywhereLookup: EvidenceLookup {
    let time: Timestamp

    func record(_ path: PathBytes, inode: UInt64 = 7) -> FileRecord {
        FileRecord(
            id: Int64(truncatingIfNeeded: path.bytes.count), path: path, mountPoint: PathBytes("/dev/shm"),
            fileType: .regular, device: 1, inode: inode, size: 4096, mode: 0o100755, uid: 0, gid: 0, linkCount: 1,
            modified: time, changed: time, firstSeen: time, lastSeen: time, kind: .elf, reasons: [.execBit],
            hashStatus: .ok, sha256: String(repeating: "a", count: 64))
    }

    func files(atPath path: PathBytes) throws -> [FileRecord] { [record(path)] }
    func files(inode: UInt64) throws -> [FileRecord] { [record(PathBytes("/dev/shm/inode"), inode: inode)] }
    func files(sha256: String) throws -> [FileRecord] { [record(PathBytes("/dev/shm/hash"))] }
    func execs(pid: Int32, from: Timestamp, to: Timestamp) throws -> [ExecFact] {
        [ExecFact(path: PathBytes("/dev/shm/exec"), device: 1, inode: 7, sha256: nil)]
    }
}
