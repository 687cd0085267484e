// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore

/// The events the agent sends its outputs, one builder per kind of record. Field names are
/// Falco's where the meaning is the same (`proc.pid`, `proc.exepath`, `proc.cmdline`, `user.uid`,
/// `container.id`, `fd.name`) and `shmwarden.*` for the rest; docs/FLEET.md lists them.
public enum OutboxEvents {
    /// Stable rule names: what fleet queries select on.
    public enum Rule {
        public static let executableDropped = "Executable dropped on tmpfs"
        public static let executableRun = "Executable run from tmpfs"
        public static let filelessCaptured = "Fileless executable captured"
        public static let scriptCaptured = "Interpreted script captured"
        public static let execRefused = "Exec refused on tmpfs"
        public static let execWouldBeRefused = "Exec would be refused on tmpfs"
        public static let action = "Response action"
        public static let sandboxRun = "Sandbox run finished"
        public static let yaraMatched = "YARA rule matched"
        public static let outboxOverflow = "Outbox overflow"
        public static let test = "shmwarden output test"
    }

    /// An event's id: the database's random outbox instance (58 bits) and the event's number
    /// (60 bits), as a version 8 UUID. The same row always has the same id, so a receiver can
    /// drop a repeat; another database (another host, or this one's store made anew) another.
    public static func eventID(instance: UInt64, seq: Int64) -> String {
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        let number = UInt64(bitPattern: seq) & 0x0fff_ffff_ffff_ffff
        return "\(hex(instance >> 32, 8))-\(hex((instance >> 16) & 0xffff, 4))-\(hex(0x8000 | (instance & 0x0fff), 4))-"
            + "\(hex(0x8000 | ((number >> 48) & 0x0fff), 4))-\(hex(number & 0xffff_ffff_ffff, 12))"
    }

    /// What an outbox row records of its event before the JSON is made: its type and priority.
    public struct Kind: Hashable, Sendable {
        public var rule: String
        public var type: FleetEventType
        public var priority: FalcoPriority

        /// YARA rules matched a capture.
        public static let yara = Kind(rule: Rule.yaraMatched, type: .yara, priority: .warning)

        /// An executable recorded on a tmpfs (`capture` nil) or taken from a process.
        public static func file(capture: ProcessCapture?) -> Kind {
            guard let capture else {
                return Kind(rule: Rule.executableDropped, type: .executable, priority: .warning)
            }
            var kind =
                switch capture.kind {
                case .tmpfs: Kind(rule: Rule.executableRun, type: .executable, priority: .warning)
                case .script: Kind(rule: Rule.scriptCaptured, type: .fileless, priority: .warning)
                case .memfd, .deleted, .mapping: Kind(rule: Rule.filelessCaptured, type: .fileless, priority: .critical)
                }
            if capture.benign != nil { kind.priority = .informational }
            return kind
        }

        /// An exec the guard answered; nil for one it allowed (and would have).
        public static func exec(_ exec: ExecRecord) -> Kind? {
            if exec.verdict == .deny { return Kind(rule: Rule.execRefused, type: .guard, priority: .critical) }
            if exec.wouldBe == .deny { return Kind(rule: Rule.execWouldBeRefused, type: .guard, priority: .warning) }
            return nil
        }

        public static func action(_ action: ActionRecord) -> Kind {
            let priority: FalcoPriority =
                switch action.outcome {
                case .performed: .warning
                case .failed: .error
                case .planned: .notice
                case .skipped: .informational
                }
            return Kind(rule: Rule.action, type: .action, priority: priority)
        }

        public static func sandboxRun(_ run: SandboxRunRecord) -> Kind {
            let failed = run.verdict.first?.hasPrefix("The sample did not run") == true
            return Kind(rule: Rule.sandboxRun, type: .sandbox, priority: failed ? .error : .notice)
        }

        /// A correlated alert: its own rule and priority.
        public static func alert(rule: String = "", priority: FalcoPriority) -> Kind {
            Kind(rule: rule, type: .alert, priority: priority)
        }
    }

    /// The evidence copy of a recorded executable: where it is, or why there is none.
    public enum Evidence: Hashable, Sendable {
        case kept(String)
        case missing(String)
    }

    /// An executable recorded on a tmpfs, or a payload taken from a running process.
    public static func file(_ file: FileRecord, evidence: Evidence, id: String) -> FleetEvent {
        var fields: [FleetEvent.Field] = [.init("fd.name", .string(file.path.jsonText))]
        if !file.path.isValidUTF8 { fields.append(.init("shmwarden.file.path_base64", .string(file.path.base64))) }
        fields += [
            .init("shmwarden.sha256", file.sha256.map(FieldValue.string) ?? .null),
            .init("shmwarden.file.kind", .string(file.kind.rawValue)),
            .init("shmwarden.file.size", .integer(file.size)),
            .init("shmwarden.file.mount", file.mountPoint.map { .string($0.jsonText) } ?? .null),
            .init("shmwarden.file.mode", .string(file.permissionsOctal)),
            .init("shmwarden.file.uid", .integer(Int64(file.uid))),
            .init("shmwarden.file.hash_status", .string(file.hashStatus.rawValue)),
            .init("shmwarden.file_id", file.id.map(FieldValue.integer) ?? .null),
        ]
        switch evidence {
        case .kept(let path): fields.append(.init("shmwarden.evidence", .string(path)))
        case .missing(let reason):
            fields.append(.init("shmwarden.evidence", .null))
            fields.append(.init("shmwarden.evidence_missing", .string(reason)))
        }
        let hash = file.sha256.map { "sha256=\($0)" } ?? "sha256=<NA> (\(file.hashStatus.rawValue))"
        let kept: String
        switch evidence {
        case .kept(let path): kept = "evidence=\(path)"
        case .missing(let reason): kept = "evidence=<NA> (\(reason))"
        }
        let kind = Kind.file(capture: file.capture)
        guard let capture = file.capture else {
            return FleetEvent(
                id: id, type: kind.type, rule: kind.rule, priority: kind.priority, time: file.firstSeen,
                sentence:
                    "Executable dropped on tmpfs (file=\(file.path.jsonText) kind=\(file.kind.rawValue) size=\(file.size) \(hash) \(kept))",
                fields: fields, tags: ["shmwarden", "filesystem", "mitre_execution"])
        }
        fields += [
            .init("proc.pid", .integer(Int64(capture.pid))),
            .init("proc.ppid", capture.ppid.map { .integer(Int64($0)) } ?? .null),
            .init("proc.exepath", .string(capture.executable.jsonText)),
            .init("proc.pexepath", capture.parentExecutable.map { .string($0.jsonText) } ?? .null),
            .init("proc.cmdline", .string(capture.commandLine.joined(separator: " "))),
            .init("user.uid", capture.uid.map { .integer(Int64($0)) } ?? .null),
            .init("container.id", .string(capture.containerID ?? "host")),
            .init("shmwarden.capture.kind", .string(capture.kind.rawValue)),
            .init("shmwarden.capture.source", .string(capture.source)),
        ]
        if let interpreter = capture.interpreter {
            fields.append(.init("shmwarden.capture.interpreter", .string(interpreter)))
        }
        if let benign = capture.benign { fields.append(.init("shmwarden.capture.benign", .string(benign))) }
        return FleetEvent(
            id: id, type: kind.type, rule: kind.rule, priority: kind.priority, time: file.firstSeen,
            sentence:
                "\(kind.rule): \(capture.what) (proc.pid=\(capture.pid) proc.exepath=\(capture.executable.jsonText) \(hash) size=\(file.size) \(kept)"
                + (capture.benign.map { " benign=\($0)" } ?? "") + ")",
            fields: fields, tags: ["shmwarden", "process", "mitre_defense_evasion"])
    }

    /// An exec the guard refused, or would have refused in monitor mode; nil for an allowed one.
    public static func exec(_ exec: ExecRecord, id: String) -> FleetEvent? {
        guard let kind = Kind.exec(exec) else { return nil }
        let fields: [FleetEvent.Field] = [
            .init("proc.pid", .integer(Int64(exec.pid))),
            .init("proc.ppid", exec.ppid.map { .integer(Int64($0)) } ?? .null),
            .init("user.uid", exec.uid.map { .integer(Int64($0)) } ?? .null),
            .init("proc.exepath", .string(exec.path.jsonText)),
            .init("shmwarden.sha256", exec.sha256.map(FieldValue.string) ?? .null),
            .init("shmwarden.guard.verdict", .string(exec.verdict.rawValue)),
            .init("shmwarden.guard.would_be", .string(exec.wouldBe.rawValue)),
            .init("shmwarden.guard.mode", .string(exec.mode.rawValue)),
            .init("shmwarden.guard.rule", .string(exec.rule)),
            .init("shmwarden.guard.reason", .string(exec.reason)),
            .init("shmwarden.guard.cached", .bool(exec.cached)),
            .init("shmwarden.guard.decision_us", .integer(exec.decisionNanoseconds / 1000)),
        ]
        return FleetEvent(
            id: id, type: kind.type, rule: kind.rule, priority: kind.priority, time: exec.time,
            sentence:
                "\(kind.rule) (proc.exepath=\(exec.path.jsonText) proc.pid=\(exec.pid) sha256=\(exec.sha256 ?? "<NA>") guard.rule=\(exec.rule) reason=\(exec.reason))",
            fields: fields, tags: ["shmwarden", "process", "mitre_execution"])
    }

    /// A response action; `file` is the path and hash of the file it concerns, when known.
    public static func action(_ action: ActionRecord, file: (path: PathBytes, sha256: String?)?, id: String)
        -> FleetEvent
    {
        let kind = Kind.action(action)
        var fields: [FleetEvent.Field] = [
            .init("shmwarden.action", .string(action.action)),
            .init("shmwarden.action.outcome", .string(action.outcome.rawValue)),
            .init("shmwarden.action.mode", .string(action.mode.rawValue)),
            .init("shmwarden.action.rule", .string(action.rule)),
            .init("shmwarden.action.target", action.target.map(FieldValue.string) ?? .null),
            .init("shmwarden.action.reason", .string(action.detail)),
            .init("shmwarden.action.errno", action.errno.map { .integer(Int64($0)) } ?? .null),
            .init("shmwarden.alert_id", action.alertId.map(FieldValue.string) ?? .null),
            .init("shmwarden.file_id", action.fileId.map(FieldValue.integer) ?? .null),
        ]
        if let file {
            fields.append(.init("fd.name", .string(file.path.jsonText)))
            fields.append(.init("shmwarden.sha256", file.sha256.map(FieldValue.string) ?? .null))
        }
        if let target = action.target, target.hasPrefix("pid "), let pid = Int64(target.dropFirst(4)) {
            fields.append(.init("proc.pid", .integer(pid)))
        }
        return FleetEvent(
            id: id, type: kind.type, rule: kind.rule, priority: kind.priority, time: action.time,
            sentence:
                "Response action \(action.action) \(action.outcome.rawValue) (target=\(action.target ?? "<NA>") policy.rule=\(action.rule) mode=\(action.mode.rawValue) reason=\(action.detail))",
            fields: fields, tags: ["shmwarden", "response"])
    }

    /// A finished sandbox run, with its verdict's sentences.
    public static func sandboxRun(_ run: SandboxRunRecord, id: String) -> FleetEvent {
        let verdict = run.verdict.joined(separator: " ")
        let kind = Kind.sandboxRun(run)
        return FleetEvent(
            id: id, type: kind.type, rule: kind.rule, priority: kind.priority, time: run.time,
            sentence: "Sandbox run finished (sha256=\(run.sha256) run=\(run.id)): \(verdict)",
            fields: [
                .init("shmwarden.sha256", .string(run.sha256)),
                .init("shmwarden.sandbox.run_id", .string(run.id)),
                .init("shmwarden.sandbox.verdict", .string(verdict)),
                .init("shmwarden.file_id", run.fileId.map(FieldValue.integer) ?? .null),
                .init("shmwarden.alert_id", run.alertId.map(FieldValue.string) ?? .null),
            ],
            tags: ["shmwarden", "sandbox"])
    }

    /// YARA rules matched the bytes hashing to `verdict.sha256`; `file` is the latest record of
    /// them (nil when none is left, e.g. a file a sandboxed sample wrote).
    public static func yara(_ verdict: YaraVerdict, file: (id: Int64, path: PathBytes)?, id: String) -> FleetEvent {
        var tags: [String] = []
        for tag in verdict.matches.flatMap(\.tags) where !tags.contains(tag) { tags.append(tag) }
        var namespaces: [String] = []
        for namespace in verdict.matches.map(\.namespace) where !namespaces.contains(namespace) {
            namespaces.append(namespace)
        }
        let rules = verdict.matches.map(\.rule).joined(separator: ",")
        return FleetEvent(
            id: id, type: .yara, rule: Rule.yaraMatched, priority: .warning, time: verdict.time,
            sentence:
                "YARA rules matched a capture (sha256=\(verdict.sha256) yara.rules=\(rules) file=\(file?.path.jsonText ?? "<NA>"))",
            fields: [
                .init("fd.name", file.map { .string($0.path.jsonText) } ?? .null),
                .init("shmwarden.sha256", .string(verdict.sha256)),
                .init("shmwarden.file_id", file.map { .integer($0.id) } ?? .null),
                .init("shmwarden.yara.rules", .string(rules)),
                .init("shmwarden.yara.tags", .string(tags.joined(separator: ","))),
                .init("shmwarden.yara.namespaces", .string(namespaces.joined(separator: ","))),
                .init("shmwarden.yara.ruleset", .string(verdict.ruleset)),
                .init("shmwarden.yara.status", .string(verdict.status.rawValue)),
                .init("shmwarden.yara.scanned_bytes", .integer(verdict.scannedBytes)),
            ],
            tags: ["shmwarden", "yara"] + tags.filter { $0 != "shmwarden" && $0 != "yara" })
    }

    /// A correlated Falco alert: its rule, priority, time and fields, and what the agent knows of
    /// the file it is about. The alert's own `shmwarden.*` fields are dropped: only the agent
    /// writes those.
    public static func enrichment(
        _ record: AlertRecord, evidence: Evidence?, sandboxVerdict: String?, id: String
    ) -> FleetEvent? {
        guard let best = record.correlations.first else { return nil }
        let alert = record.alert
        var fields: [FleetEvent.Field] = []
        for name in alert.outputFields.keys.sorted() where !name.hasPrefix("shmwarden.") {
            fields.append(.init(name, alert.outputFields[name] ?? .null))
        }
        if alert.outputFields["fd.name"] == nil { fields.append(.init("fd.name", .string(best.path.jsonText))) }
        fields += [
            .init("shmwarden.alert_id", .string(record.id)),
            .init("shmwarden.falco.uuid", alert.uuid.map(FieldValue.string) ?? .null),
            .init("shmwarden.falco.source", alert.source.map(FieldValue.string) ?? .null),
            .init("shmwarden.falco.hostname", alert.hostname.map(FieldValue.string) ?? .null),
            .init("shmwarden.falco.authenticated", .bool(record.sender.authenticated)),
            .init("shmwarden.sha256", best.sha256.map(FieldValue.string) ?? .null),
            .init("shmwarden.file_id", .integer(best.fileID)),
            .init("shmwarden.file.path", .string(best.path.jsonText)),
            .init("shmwarden.correlation.basis", .string(best.basis.rawValue)),
            .init("shmwarden.correlation.matched_by", .string(best.matchedBy)),
            .init("shmwarden.correlation.confidence", .double(best.confidence)),
            .init("shmwarden.correlations", .integer(Int64(record.correlations.count))),
        ]
        switch evidence {
        case .kept(let path): fields.append(.init("shmwarden.evidence", .string(path)))
        case .missing(let reason):
            fields.append(.init("shmwarden.evidence", .null))
            fields.append(.init("shmwarden.evidence_missing", .string(reason)))
        case nil: fields.append(.init("shmwarden.evidence", .null))
        }
        if let sandboxVerdict { fields.append(.init("shmwarden.sandbox.verdict", .string(sandboxVerdict))) }
        let original = alert.output.map { text in
            // Falco's output starts with the time and priority, which `FleetEvent.output` adds again.
            let prefix = "\(alert.priority.name) "
            if let range = text.range(of: prefix), text[..<range.lowerBound].hasSuffix(": ") {
                return String(text[range.upperBound...])
            }
            return text
        }
        return FleetEvent(
            id: id, type: .alert, rule: alert.rule, priority: alert.priority, time: alert.time,
            sentence:
                "\(original ?? alert.rule) | shmwarden: sha256=\(best.sha256 ?? "<NA>") file=\(best.path.jsonText) basis=\(best.basis.rawValue)",
            fields: fields, tags: alert.tags.filter { $0 != "shmwarden" } + ["shmwarden"])
    }

    /// What an output is sent in place of the events the full outbox dropped before it had them.
    /// Its id is derived from the output and the gap, so a resent notice has the same one.
    public static func overflow(
        output: String, missed: Int64, before nextEventID: String?, limit: Int, at time: Timestamp
    )
        -> FleetEvent
    {
        FleetEvent(
            id: derivedID("overflow|\(output)|\(missed)|\(nextEventID ?? "end")"), type: .outbox,
            rule: Rule.outboxOverflow, priority: .warning, time: time,
            sentence:
                "Outbox overflow: \(missed) event(s) for output \(output) were dropped (outbox.limit=\(limit)); the host's store still holds their records",
            fields: [
                .init("shmwarden.outbox.missed", .integer(missed)),
                .init("shmwarden.outbox.limit", .integer(Int64(limit))),
                .init("shmwarden.output", .string(output)),
            ],
            tags: ["shmwarden", "outbox"])
    }

    /// `shmwarden outputs test`.
    public static func test(output: String, at time: Timestamp) -> FleetEvent {
        FleetEvent(
            id: UUID().uuidString.lowercased(), type: .test, rule: Rule.test, priority: .informational, time: time,
            sentence: "shmwarden output test (output=\(output))",
            fields: [.init("shmwarden.output", .string(output))], tags: ["shmwarden", "test"])
    }

    /// A UUID-shaped id derived from `text` (FNV-1a with two seeds): the same text, the same id.
    static func derivedID(_ text: String) -> String {
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            return hash
        }
        let high = fnv(0x5348_4d57), low = fnv(0x4641_4c43)
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        let a = hex(high >> 32, 8), b = hex((high >> 16) & 0xffff, 4), c = hex(0x5000 | (high & 0x0fff), 4)
        let d = hex(0x8000 | ((low >> 48) & 0x3fff), 4), e = hex(low & 0xffff_ffff_ffff, 12)
        return "\(a)-\(b)-\(c)-\(d)-\(e)"
    }
}
