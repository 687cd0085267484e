// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The facts about one file of evidence that policies can look at.
public struct PolicyFile: Hashable, Sendable {
    public var fileID: Int64?
    public var path: PathBytes
    public var mountPoint: PathBytes?
    public var kind: FileKind
    public var size: Int64
    public var sha256: String?
    public var state: FileState
    public var device: UInt64
    public var inode: UInt64
    /// How the file was tied to the subject: a dropped executable is the sensor's own record
    /// (`kernel`); an alert's file is as strong as its correlation.
    public var basis: CorrelationBasis
    /// Whether the file and every directory from its mount's root down to it are owned by root
    /// (or a trusted uid) and writable by nobody else: only then may a path glob vouch for it.
    /// Nil when not checked; then no path glob counts.
    public var ownershipTrusted: Bool?
    /// Its YARA verdict under the rule set in use, when it was scanned.
    public var yara: YaraVerdict?

    public init(
        fileID: Int64?, path: PathBytes, mountPoint: PathBytes?, kind: FileKind, size: Int64, sha256: String?,
        state: FileState, device: UInt64, inode: UInt64, basis: CorrelationBasis = .kernel,
        ownershipTrusted: Bool? = nil
    ) {
        self.basis = basis
        self.ownershipTrusted = ownershipTrusted
        self.fileID = fileID
        self.path = path
        self.mountPoint = mountPoint
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.state = state
        self.device = device
        self.inode = inode
    }

    public init(_ record: FileRecord) {
        self.init(
            fileID: record.id, path: record.path, mountPoint: record.mountPoint, kind: record.kind, size: record.size,
            sha256: record.sha256, state: record.state, device: record.device, inode: record.inode)
        self.yara = record.yara
    }
}

/// What a policy is evaluated against: an alert with its evidence, or a dropped file alone.
public struct PolicySubject: Hashable, Sendable {
    public var trigger: PolicyTrigger
    public var alertID: String?
    public var alert: FalcoAlert?
    /// The correlated files (for an alert) or the dropped file.
    public var files: [PolicyFile]
    /// Whether the alert came from an authenticated sender (mutual TLS, the token, a trusted
    /// unix peer, an ingested file only root can write). An unauthenticated alert
    /// (`intake.insecure`) may be recorded and advised on, nothing more.
    public var authenticated: Bool = true
    /// The process a `fileless-executable` subject was taken from.
    public var processID: Int32?

    public static func alert(id: String, _ alert: FalcoAlert, files: [PolicyFile], authenticated: Bool = true)
        -> PolicySubject
    {
        PolicySubject(trigger: .alert, alertID: id, alert: alert, files: files, authenticated: authenticated)
    }

    public static func droppedExecutable(_ file: PolicyFile) -> PolicySubject {
        PolicySubject(trigger: .droppedExecutable, alertID: nil, alert: nil, files: [file])
    }

    /// A file taken from running process `pid`: `kill-process` acts on that process, checked by
    /// the kernel's own view of it (its executable is the captured memfd or deleted file).
    public static func filelessExecutable(_ file: PolicyFile, pid: Int32) -> PolicySubject {
        var subject = PolicySubject(trigger: .filelessExecutable, alertID: nil, alert: nil, files: [file])
        subject.processID = pid
        return subject
    }
}

/// One action the policy asks for, on its targets, with whether it may run.
public struct PlannedAction: Hashable, Sendable {
    public enum Disposition: Hashable, Sendable {
        /// Enforce mode: do it.
        case perform
        /// Monitor mode: record what would be done, touch nothing.
        case plan
        /// Not done, for this reason (allowlisted, nothing to act on, not available, …).
        case skip(String)
    }

    public var rule: String
    public var action: PolicyAction
    /// The files the action is about (not allowlisted, matching the rule's file condition).
    public var files: [PolicyFile]
    public var disposition: Disposition
    /// Facts the audit row must carry beside the outcome (an allowlist glob that did not count).
    public var notes: [String] = []
}

/// Decides, without touching anything, what a policy asks for a subject.
public enum PolicyEvaluator {
    public static func evaluate(_ policy: Policy, for subject: PolicySubject) -> [PlannedAction] {
        var planned: [PlannedAction] = []
        for rule in policy.rules where rule.trigger == subject.trigger {
            guard rule.match.matchesAlert(subject.alert) else { continue }
            let candidates = subject.files.filter { file in
                (rule.match.file?.matches(file) ?? true) && (rule.match.yara?.matches(file.yara) ?? true)
            }
            // A file (or YARA) condition needs a file that satisfies it.
            if (rule.match.file != nil || rule.match.yara != nil) && candidates.isEmpty { continue }
            let allowed = candidates.compactMap { file in policy.allowlist.reason(for: file).map { (file, $0) } }
            let unlisted = candidates.filter { policy.allowlist.reason(for: $0) == nil }
            // What the rules matched, said with every action the match decided.
            let yaraNotes =
                rule.match.yara.map { condition in
                    unlisted.map { file in
                        "\(file.path) matched YARA rule "
                            + condition.matching(file.yara).map { "\($0.rule) from \($0.namespace)" }.joined(
                                separator: ", ")
                    }
                } ?? []
            for action in rule.actions {
                let weakest = rule.weakestBasis(for: action.kind)
                let targets = unlisted.filter { $0.basis >= weakest }
                var disposition = disposition(
                    of: action, mode: policy.mode, subject: subject, targets: targets, allowlisted: allowed.map(\.1))
                if !subject.authenticated && action.kind.changesTheHost {
                    disposition = .skip(
                        "the alert arrived unauthenticated (intake.insecure): only record and advise-noexec act on it")
                } else if targets.isEmpty, !unlisted.isEmpty, action.kind.needsFile {
                    disposition = .skip(
                        "every matched file was correlated by \(unlisted.map(\.basis.rawValue).joined(separator: ", ")) "
                            + "alone (words the alert's process chose); \(action.name) needs \(weakest.rawValue) facts")
                }
                planned.append(
                    PlannedAction(
                        rule: rule.name, action: action, files: targets, disposition: disposition,
                        notes: unlisted.compactMap(policy.allowlist.ignoredGlobNote) + yaraNotes))
            }
            if !rule.continues { break }
        }
        return planned
    }

    private static func disposition(
        of action: PolicyAction, mode: PolicyMode, subject: PolicySubject, targets: [PolicyFile],
        allowlisted: [String]
    ) -> PlannedAction.Disposition {
        let go: PlannedAction.Disposition = mode == .enforce ? .perform : .plan
        let nothingLeft =
            allowlisted.isEmpty ? nil : "every matched file is allowlisted: " + allowlisted.joined(separator: "; ")
        switch action {
        case .record:
            // Recording touches nothing, so monitor mode does it too.
            return .perform
        case .quarantine:
            if targets.isEmpty { return .skip(nothingLeft ?? "no file evidence to quarantine") }
            if targets.allSatisfy({ $0.state != .present }) {
                return .skip(
                    "the file is no longer in place (\(targets.map(\.state.rawValue).joined(separator: ", ")))")
            }
            return go
        case .killProcess:
            if let nothingLeft, targets.isEmpty { return .skip(nothingLeft) }
            // A capture from a running process names its process by the kernel's pid.
            if subject.alert == nil && subject.processID != nil { return go }
            guard let alert = subject.alert else { return .skip("no alert names a process") }
            guard alert.field("proc.pid").flatMap({ Int32($0) }) != nil else {
                return .skip("the alert has no proc.pid")
            }
            return go
        case .adviseNoexec:
            if targets.contains(where: { $0.mountPoint != nil }) { return .perform }
            return .skip(nothingLeft ?? "no file on a watched mount")
        case .remountNoexec:
            if !targets.contains(where: { $0.mountPoint != nil }) {
                return .skip(nothingLeft ?? "no file on a watched mount")
            }
            return go
        case .sandbox:
            if targets.isEmpty { return .skip(nothingLeft ?? "no file evidence to run") }
            return go
        }
    }
}
