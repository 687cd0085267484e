// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// A stored sandbox run: its report (JSON) linked to the sample's hash, file and alert.
public struct SandboxRunRecord: Hashable, Sendable {
    public var id: String
    public var time: Timestamp
    public var sha256: String
    public var fileId: Int64?
    public var alertId: String?
    /// One line per verdict sentence, for reports that cite the run.
    public var verdict: [String]
    /// The full `SandboxReport` as JSON.
    public var reportJSON: String

    public init(
        id: String, time: Timestamp, sha256: String, fileId: Int64?, alertId: String?, verdict: [String],
        reportJSON: String
    ) {
        self.id = id
        self.time = time
        self.sha256 = sha256
        self.fileId = fileId
        self.alertId = alertId
        self.verdict = verdict
        self.reportJSON = reportJSON
    }
}
