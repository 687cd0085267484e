// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Everything a report may state, gathered by the caller from the store and the host. The
/// report builder states nothing that is not in here.
public struct ReportInput: Sendable {
    public var alertID: String
    public var alert: FalcoAlert
    public var receivedAt: Timestamp
    public var evidence: [ReportEvidence]
    public var noEvidenceReason: NoEvidenceReason?
    public var actions: [ReportAction]
    /// Falco reported dropped events within the drop window of this alert on the same host.
    public var eventDropNearby: Bool
    /// `vm.memfd_noexec` on this host now: nil when the sysctl does not exist.
    public var memfdNoexec: Int?
    public var generatedAt: Timestamp
    /// Sandbox runs of the evidence (id, sha256, verdict sentences), oldest first.
    public var sandboxRuns: [(id: String, sha256: String, verdict: [String])] = []

    public init(
        alertID: String, alert: FalcoAlert, receivedAt: Timestamp, evidence: [ReportEvidence],
        noEvidenceReason: NoEvidenceReason?, actions: [ReportAction], eventDropNearby: Bool, memfdNoexec: Int?,
        generatedAt: Timestamp
    ) {
        self.alertID = alertID
        self.alert = alert
        self.receivedAt = receivedAt
        self.evidence = evidence
        self.noEvidenceReason = noEvidenceReason
        self.actions = actions
        self.eventDropNearby = eventDropNearby
        self.memfdNoexec = memfdNoexec
        self.generatedAt = generatedAt
    }
}

/// One correlated file with how it matched, and the host facts about where it lives.
public struct ReportEvidence: Sendable {
    public var file: FileRecord
    public var matchedBy: String
    public var confidence: Double
    /// The mount the file was found on, as mountinfo shows it now (nil when no longer mounted).
    public var mount: MountFacts?
    /// The quarantine id, when the file is in the quarantine.
    public var quarantineID: String?

    public init(file: FileRecord, matchedBy: String, confidence: Double, mount: MountFacts?, quarantineID: String?) {
        self.file = file
        self.matchedBy = matchedBy
        self.confidence = confidence
        self.mount = mount
        self.quarantineID = quarantineID
    }
}

/// One audit row, as a report shows it.
public struct ReportAction: Sendable, Encodable, Hashable {
    public var time: String
    public var rule: String
    public var action: String
    public var mode: String
    public var outcome: String
    public var target: String?
    public var detail: String

    public init(
        time: String, rule: String, action: String, mode: String, outcome: String, target: String?, detail: String
    ) {
        self.time = time
        self.rule = rule
        self.action = action
        self.mode = mode
        self.outcome = outcome
        self.target = target
        self.detail = detail
    }
}
