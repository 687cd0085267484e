// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// One exec the guard saw on a guarded tmpfs, with its answer.
public struct ExecRecord: Hashable, Sendable, Encodable {
    public var id: Int64?
    public var time: Timestamp
    public var pid: Int32
    /// The parent pid and effective uid: read while a held exec waits (so always there for
    /// refused and would-be refused execs); for an exec that was not held, read when its
    /// notification is handled, so nil if the process had already exited and been reaped.
    public var ppid: Int32?
    public var uid: UInt32?
    public var path: PathBytes
    public var sha256: String?
    public var device: UInt64
    public var inode: UInt64
    /// What the kernel was told.
    public var verdict: GuardDecision.Verdict
    /// What enforce mode says (differs from `verdict` in monitor mode).
    public var wouldBe: GuardDecision.Verdict
    public var mode: GuardPolicy.Mode
    public var rule: String
    public var reason: String
    /// The decision came from the cache (no hashing).
    public var cached: Bool
    /// The exec waited for the guard's answer. False when the kernel let it through on its own,
    /// because the guard had allowed this unchanged file before (an ignore mark); the record
    /// then comes from the exec notification and restates that earlier decision.
    public var held: Bool
    /// From reading the event to writing the answer; 0 when the exec was not held.
    public var decisionNanoseconds: Int64

    public init(
        id: Int64? = nil, time: Timestamp, pid: Int32, ppid: Int32?, uid: UInt32?, path: PathBytes, sha256: String?,
        device: UInt64, inode: UInt64, verdict: GuardDecision.Verdict, wouldBe: GuardDecision.Verdict,
        mode: GuardPolicy.Mode, rule: String, reason: String, cached: Bool, held: Bool = true,
        decisionNanoseconds: Int64
    ) {
        self.id = id
        self.time = time
        self.pid = pid
        self.ppid = ppid
        self.uid = uid
        self.path = path
        self.sha256 = sha256
        self.device = device
        self.inode = inode
        self.verdict = verdict
        self.wouldBe = wouldBe
        self.mode = mode
        self.rule = rule
        self.reason = reason
        self.cached = cached
        self.held = held
        self.decisionNanoseconds = decisionNanoseconds
    }

    enum CodingKeys: String, CodingKey {
        case id, time, pid, ppid, uid, path, pathBase64, sha256, device, inode, verdict, wouldBe, mode, rule, reason
        case cached, held, decisionMicroseconds
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(id, forKey: .id)
        try container.encode(time.rfc3339, forKey: .time)
        try container.encode(pid, forKey: .pid)
        try container.encode(ppid, forKey: .ppid)
        try container.encode(uid, forKey: .uid)
        try container.encode(path.jsonText, forKey: .path)
        if !path.isValidUTF8 { try container.encode(path.base64, forKey: .pathBase64) }
        try container.encode(sha256, forKey: .sha256)
        try container.encode(device, forKey: .device)
        try container.encode(inode, forKey: .inode)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(wouldBe, forKey: .wouldBe)
        try container.encode(mode, forKey: .mode)
        try container.encode(rule, forKey: .rule)
        try container.encode(reason, forKey: .reason)
        try container.encode(cached, forKey: .cached)
        try container.encode(held, forKey: .held)
        try container.encode(Double(decisionNanoseconds) / 1000, forKey: .decisionMicroseconds)
    }
}
