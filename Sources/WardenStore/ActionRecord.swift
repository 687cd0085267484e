// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// One audit row: a response the policy asked for, and what became of it.
public struct ActionRecord: Hashable, Sendable, Encodable {
    public enum Outcome: String, Hashable, Sendable, Codable, CaseIterable {
        /// Done (enforce mode), or a record/advice that touches nothing.
        case performed
        /// Monitor mode: what would have been done; nothing was touched.
        case planned
        /// Not done, for the reason in `detail`.
        case skipped
        /// Tried and failed; `errno` when a system call said why.
        case failed
    }

    public var id: Int64?
    public var time: Timestamp
    public var alertId: String?
    public var fileId: Int64?
    public var rule: String
    public var action: String
    public var mode: PolicyMode
    public var outcome: Outcome
    /// What it acted on: a path, `pid 123`, a mount point.
    public var target: String?
    public var detail: String
    public var errno: Int32?

    public init(
        id: Int64? = nil, time: Timestamp, alertId: String?, fileId: Int64?, rule: String, action: String,
        mode: PolicyMode, outcome: Outcome, target: String?, detail: String, errno: Int32? = nil
    ) {
        self.id = id
        self.time = time
        self.alertId = alertId
        self.fileId = fileId
        self.rule = rule
        self.action = action
        self.mode = mode
        self.outcome = outcome
        self.target = target
        self.detail = detail
        self.errno = errno
    }

    enum CodingKeys: String, CodingKey {
        case id, time, alertId, fileId, rule, action, mode, outcome, target, detail, errno
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(id, forKey: .id)
        try container.encode(time.rfc3339, forKey: .time)
        try container.encode(alertId, forKey: .alertId)
        try container.encode(fileId, forKey: .fileId)
        try container.encode(rule, forKey: .rule)
        try container.encode(action, forKey: .action)
        try container.encode(mode, forKey: .mode)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(target, forKey: .target)
        try container.encode(detail, forKey: .detail)
        try container.encode(errno, forKey: .errno)
    }
}
