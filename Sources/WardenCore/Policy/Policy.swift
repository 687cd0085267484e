// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What the responder may do: a loaded, validated policy (one file, or a directory's files
/// merged in name order).
public struct Policy: Hashable, Sendable {
    /// `monitor` records what it would do and touches nothing; `enforce` acts.
    public var mode: PolicyMode
    /// Files and hashes no action ever touches.
    public var allowlist: Allowlist
    /// Evaluated in order; a matching rule with `continue: false` stops the evaluation.
    public var rules: [PolicyRule]
    /// Where it was loaded from (for logs and audit rows).
    public var sources: [String]
    /// The fanotify exec guard's settings; it allows what `allowlist` allows.
    public var execGuard: GuardPolicy
    /// Executable names (globs) `kill-process` never signals: the built-in list plus the
    /// policy's `protect` entries.
    public var protectedProcesses: [String] = Policy.defaultProtectedProcesses

    /// init, systemd and its helpers, sshd, the container runtimes, kubelet, Falco, journald.
    public static let defaultProtectedProcesses = [
        "init", "systemd", "systemd-*", "sshd", "containerd", "containerd-shim*", "dockerd", "kubelet", "falco",
        "journald",
    ]

    public init(
        mode: PolicyMode, allowlist: Allowlist = Allowlist(), rules: [PolicyRule], sources: [String] = [],
        execGuard guardPolicy: GuardPolicy = GuardPolicy()
    ) {
        self.mode = mode
        self.allowlist = allowlist
        self.rules = rules
        self.sources = sources
        self.execGuard = guardPolicy
    }

    /// The policy in force when none is configured: monitor mode and no rules, so nothing is
    /// done and nothing is audited.
    public static let none = Policy(mode: .monitor, rules: [], sources: ["built-in (no policy file)"])

    /// Whether any rule fires on `trigger` (the responder skips work no rule can want).
    public func hasRules(for trigger: PolicyTrigger) -> Bool { rules.contains { $0.trigger == trigger } }

    /// Whether a rule on `trigger` looks at YARA matches (the responder then waits for the scan).
    public func usesYara(for trigger: PolicyTrigger) -> Bool {
        rules.contains { $0.trigger == trigger && $0.match.yara != nil }
    }
}

public enum PolicyMode: String, Hashable, Sendable, CaseIterable, Codable {
    case monitor, enforce
}

/// The exec guard: whether it runs, and what it answers when it cannot decide.
public struct GuardPolicy: Hashable, Sendable {
    public enum Mode: String, Hashable, Sendable, CaseIterable, Codable {
        /// No fanotify permission marks at all.
        case off
        /// Every exec on a guarded tmpfs is allowed and recorded with the decision enforce would make.
        case monitor
        /// Unknown executables are refused (execve fails with EPERM).
        case enforce
    }

    public enum Failure: String, Hashable, Sendable, CaseIterable, Codable {
        case allow, deny
    }

    public var mode: Mode
    /// The answer when the guard cannot decide (an error, or a file too large to hash in time).
    public var failure: Failure
    /// Files above this size (or that grow past it while read) are not hashed for an exec: they
    /// get the `failure` answer.
    public var hashSizeCap: Int64
    /// Every held exec is answered within this many milliseconds: a file not hashed by then gets
    /// the `failure` answer (its hash goes on, for the next exec of it).
    public var deadlineMilliseconds: Int
    /// The answer for a file neither allowlisted nor matched by `yara`: `deny` (the default)
    /// refuses whatever is not known; `allow` refuses only what the YARA rules name.
    public var unknown: GuardDecision.Verdict = .deny
    /// Refuse a file whose YARA matches satisfy this, unless its SHA-256 is allowlisted (a path
    /// glob does not vouch for it). Nil: the guard does not scan.
    public var yara: YaraCondition?

    public init(
        mode: Mode = .off, failure: Failure = .allow, hashSizeCap: Int64 = 64 << 20, deadlineMilliseconds: Int = 100
    ) {
        self.mode = mode
        self.failure = failure
        self.hashSizeCap = hashSizeCap
        self.deadlineMilliseconds = deadlineMilliseconds
    }

    /// `100ms`, `0.5s`, `2s`, or a bare number of milliseconds.
    public static func parseMilliseconds(_ text: String) -> Int? {
        if text.hasSuffix("ms") { return Int(text.dropLast(2)) }
        if text.hasSuffix("s"), let seconds = Double(text.dropLast()), seconds.isFinite, seconds >= 0, seconds < 1e6 {
            return Int((seconds * 1000).rounded())
        }
        return Int(text)
    }
}

/// Hashes and path globs that are trusted: no response acts on a file that matches either.
public struct Allowlist: Hashable, Sendable {
    /// Lowercase hex SHA-256 values.
    public var sha256: Set<String>
    public var paths: [PathGlob]
    /// Owners besides root whose files (and directories) a path glob may vouch for.
    public var trustedOwners: Set<UInt32>
    /// Programs whose children may run from a memfd or a deleted file as a matter of course
    /// (container runtimes re-execute themselves from a memfd): their children's captures are
    /// recorded as benign, not alarmed. By the parent's executable as the kernel names it.
    public var filelessParents: Set<String>

    /// The container runtimes known to run a copy of themselves from a memfd.
    public static let defaultFilelessParents: Set<String> = [
        "/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc", "/usr/local/sbin/runc", "/usr/bin/crun",
        "/usr/local/bin/crun", "/usr/bin/containerd-shim-runc-v2", "/usr/local/bin/containerd-shim-runc-v2",
    ]

    public init(
        sha256: Set<String> = [], paths: [PathGlob] = [], trustedOwners: Set<UInt32> = [],
        filelessParents: Set<String> = Allowlist.defaultFilelessParents
    ) {
        self.sha256 = sha256
        self.paths = paths
        self.trustedOwners = trustedOwners
        self.filelessParents = filelessParents
    }

    /// Why `file` is allowlisted, or nil when it is not. A path glob counts only for a file
    /// whose ownership was checked and trusted (`PolicyFile.ownershipTrusted`): anyone may
    /// create a directory a glob names on a world-writable tmpfs.
    public func reason(for file: PolicyFile) -> String? {
        if let sha = file.sha256, sha256.contains(sha) { return "sha256 \(sha) is allowlisted" }
        if file.ownershipTrusted == true, let glob = paths.first(where: { $0.matches(file.path) }) {
            return "path matches allowlisted glob \(glob)"
        }
        return nil
    }

    /// Why a path glob that matches `file` did not count, or nil when none matched or it counted.
    public func ignoredGlobNote(for file: PolicyFile) -> String? {
        guard file.ownershipTrusted != true, let glob = paths.first(where: { $0.matches(file.path) }) else {
            return nil
        }
        let why =
            file.ownershipTrusted == nil
            ? "its ownership could not be checked"
            : "it or a directory above it is not owned by root (or a trusted uid) or is writable by others"
        return "\(file.path) matches allowlisted glob \(glob), which did not count: \(why)"
    }
}

extension PolicyRule {
    /// The weakest correlation basis `kind` accepts in this rule.
    public func weakestBasis(for kind: PolicyAction.Kind) -> CorrelationBasis {
        acceptedBasis[kind] ?? kind.defaultWeakestBasis
    }
}

/// What starts an evaluation.
public enum PolicyTrigger: String, Hashable, Sendable, CaseIterable {
    /// A Falco alert was stored (with whatever evidence was correlated with it).
    case alert
    /// The sensor recorded a new executable on a watched tmpfs; no alert is needed.
    case droppedExecutable = "dropped-executable"
    /// A running process's executable or script was captured from the process itself (a memfd,
    /// a deleted file, a script an interpreter ran); no alert is needed.
    case filelessExecutable = "fileless-executable"
}

public struct PolicyRule: Hashable, Sendable {
    public var name: String
    public var trigger: PolicyTrigger
    public var match: PolicyMatch
    /// Run in this order.
    public var actions: [PolicyAction]
    /// Whether later rules are still evaluated after this one matched.
    public var continues: Bool
    /// 1-based line of the rule in its file (0 when built in code).
    public var line: Int
    /// Actions whose weakest accepted basis the rule set (`basis: text`); the rest take
    /// their kind's default.
    public var acceptedBasis: [PolicyAction.Kind: CorrelationBasis]

    public init(
        name: String, trigger: PolicyTrigger = .alert, match: PolicyMatch, actions: [PolicyAction],
        continues: Bool, line: Int = 0, acceptedBasis: [PolicyAction.Kind: CorrelationBasis] = [:]
    ) {
        self.acceptedBasis = acceptedBasis
        self.name = name
        self.trigger = trigger
        self.match = match
        self.actions = actions
        self.continues = continues
        self.line = line
    }
}
