// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The analysis report of one alert: the JSON form of `shmwarden report --format json`, and what
/// the Markdown form renders. Every statement comes from the stored alert, the evidence, the
/// audit rows or the host, and says where it came from.
public struct AlertReport: Encodable, Sendable {
    public struct Summary: Encodable, Sendable {
        public var rule: String
        public var priority: String
        public var hostname: String?
        public var time: String
        public var source: String?
        public var receivedAt: String
        /// One sentence built only from the alert's fields and the evidence.
        public var sentence: String
    }

    /// One `output_fields` entry, with the Falco field name.
    public struct Field: Encodable, Sendable {
        public var name: String
        public var value: String
    }

    public struct Flag: Encodable, Sendable {
        public var flag: String
        public var meaning: String
    }

    /// Who ran what, and where.
    public struct Identity: Encodable, Sendable {
        public var user: String?
        public var uid: String?
        public var loginuid: String?
        public var loginuidMeaning: String?
        /// `proc.exe`: argv[0], set by the process itself.
        public var exe: String?
        /// `proc.exepath`: the path the kernel resolved.
        public var exepath: String?
        public var exeNote: String
        /// `host`, or the container id.
        public var location: String
        public var containerName: String?
        public var containerImage: String?
    }

    public struct Evidence: Encodable, Sendable {
        public var fileId: Int64?
        public var path: String
        public var pathBase64: String?
        public var sha256: String?
        public var size: Int64
        public var kind: String
        public var description: String
        public var mountPoint: String?
        public var firstSeen: String
        public var state: String
        public var deletedAt: String?
        public var evidencePath: String?
        public var quarantineId: String?
        public var matchedBy: String
        public var confidence: Double
        /// How the bytes were taken from a running process, when they were.
        public var capture: ProcessCapture?
        /// What the YARA rules found in its bytes, when they were scanned.
        public var yara: YaraVerdict?
        /// The same, as the sentences the report states (`ReportBuilder.yaraFacts`).
        public var yaraFacts: [String]?
    }

    public struct Recommendation: Encodable, Sendable {
        /// `noexec-remount`, `memfd-noexec`, `quarantine`, `restore`, `evidence`, `falco-exception`.
        public var kind: String
        public var title: String
        public var text: String
        /// Shell commands, quoted for the exact paths.
        public var commands: [String]
        /// Falco rules YAML, when the recommendation is a rule change.
        public var yaml: String?
    }

    public struct AttackEntry: Encodable, Sendable {
        public var id: String
        public var name: String?
        public var url: String
        /// The alert tags it came from.
        public var tags: [String]
    }

    public var alertId: String
    public var generatedAt: String
    public var summary: Summary
    public var details: [Field]
    public var flags: [Flag]
    public var identity: Identity
    public var evidence: [Evidence]
    /// Why there is no evidence, in plain words (nil when there is some).
    public var noEvidence: String?
    public var actions: [ReportAction]
    public var sandbox: String
    public var recommendations: [Recommendation]
    public var attack: [AttackEntry]
    public var caveats: [String]
    /// Facts the report would state but the alert does not carry.
    public var unknowns: [String]
}
