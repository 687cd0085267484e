// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore

/// A stored alert with what was found for it: the `alert` of DESIGN.md's JSON contract.
public struct AlertRecord: Sendable {
    /// Falcosidekick's `uuid` when present, else a stable id derived from the alert's content.
    public var id: String
    public var alert: FalcoAlert
    public var receivedAt: Timestamp
    public var correlations: [Correlation]
    public var noEvidenceReason: NoEvidenceReason?
    /// Falco reported dropped syscall events near this alert's time (same host): what Falco and
    /// we saw around it may be incomplete. Filled in when read from the store.
    public var eventDropNearby = false
    /// The audit rows of the responses to this alert, oldest first. Filled in when read from the store.
    public var actions: [ActionRecord] = []
    /// Who sent it, and whether it authenticated: an unauthenticated alert triggers nothing
    /// beyond `record` and `advise-noexec`.
    public var sender: AlertSender = .unrecorded
    /// What the intake found of the alert's process before correlating (not stored: it only
    /// chooses the no-evidence reason).
    public var processAtArrival: ProcessAtArrival?
    /// The YARA verdicts on the correlated files' contents, as the store has them when read
    /// (`EvidenceDatabase.withYaraVerdicts`); not stored with the alert.
    public var yara: [YaraVerdict] = []

    /// How close (either side) a drop report must be to count, in nanoseconds.
    public static let eventDropWindow: Int64 = EventDropWindow.nanoseconds

    public init(
        id: String, alert: FalcoAlert, receivedAt: Timestamp, correlations: [Correlation] = [],
        noEvidenceReason: NoEvidenceReason? = nil, sender: AlertSender = .unrecorded
    ) {
        self.sender = sender
        self.id = id
        self.alert = alert
        self.receivedAt = receivedAt
        self.correlations = correlations
        self.noEvidenceReason = noEvidenceReason
    }
}

extension AlertRecord: Encodable {
    enum CodingKeys: String, CodingKey {
        case id, rule, priority, time, hostname, source, tags, output, outputFields, uuid, `internal`, receivedAt
        case correlations, actions, noEvidenceReason, caveats, authenticated, sender, yara
    }

    struct CorrelationJSON: Encodable {
        var fileId: Int64
        var sha256: String?
        var path: String
        var pathBase64: String?
        var matchedBy: String
        var basis: CorrelationBasis
        var confidence: Double
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(alert.rule, forKey: .rule)
        try container.encode(alert.priority.name, forKey: .priority)
        try container.encode(alert.timeText, forKey: .time)
        try container.encode(alert.hostname, forKey: .hostname)
        try container.encode(alert.source, forKey: .source)
        try container.encode(alert.tags, forKey: .tags)
        try container.encodeIfPresent(alert.output, forKey: .output)
        try container.encode(alert.outputFields, forKey: .outputFields)
        try container.encodeIfPresent(alert.uuid, forKey: .uuid)
        try container.encode(alert.isInternal, forKey: .`internal`)
        try container.encode(receivedAt.rfc3339, forKey: .receivedAt)
        try container.encode(
            correlations.map {
                CorrelationJSON(
                    fileId: $0.fileID, sha256: $0.sha256, path: $0.path.jsonText,
                    pathBase64: $0.path.isValidUTF8 ? nil : $0.path.base64, matchedBy: $0.matchedBy,
                    basis: $0.basis, confidence: ($0.confidence * 100).rounded() / 100)
            }, forKey: .correlations)
        try container.encode(actions, forKey: .actions)
        try container.encode(noEvidenceReason, forKey: .noEvidenceReason)
        try container.encode(caveats, forKey: .caveats)
        try container.encode(sender.authenticated, forKey: .authenticated)
        try container.encode(sender.via, forKey: .sender)
        if !yara.isEmpty { try container.encode(yara, forKey: .yara) }
    }

    /// Facts that limit what this alert's record can say.
    public var caveats: [String] {
        guard eventDropNearby, !alert.isInternal else { return [] }
        return [
            "Falco reported dropped syscall events within \(Self.eventDropWindow / 1_000_000_000) s of this alert "
                + "on this host: the events around it, and so this correlation, may be incomplete."
        ]
    }
}
