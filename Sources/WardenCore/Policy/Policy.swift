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
    /// Files above this size are not hashed on the exec path: they get the `failure` answer.
    public var hashSizeCap: Int64

    public init(mode: Mode = .off, failure: Failure = .allow, hashSizeCap: Int64 = 64 << 20) {
        self.mode = mode
        self.failure = failure
        self.hashSizeCap = hashSizeCap
    }
}

/// Hashes and path globs that are trusted: no response acts on a file that matches either.
public struct Allowlist: Hashable, Sendable {
    /// Lowercase hex SHA-256 values.
    public var sha256: Set<String>
    public var paths: [PathGlob]

    public init(sha256: Set<String> = [], paths: [PathGlob] = []) {
        self.sha256 = sha256
        self.paths = paths
    }

    /// Why `file` is allowlisted, or nil when it is not.
    public func reason(for file: PolicyFile) -> String? {
        if let sha = file.sha256, sha256.contains(sha) { return "sha256 \(sha) is allowlisted" }
        if let glob = paths.first(where: { $0.matches(file.path) }) { return "path matches allowlisted glob \(glob)" }
        return nil
    }
}

/// What starts an evaluation.
public enum PolicyTrigger: String, Hashable, Sendable, CaseIterable {
    /// A Falco alert was stored (with whatever evidence was correlated with it).
    case alert
    /// The sensor recorded a new executable on a watched tmpfs; no alert is needed.
    case droppedExecutable = "dropped-executable"
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

    public init(
        name: String, trigger: PolicyTrigger = .alert, match: PolicyMatch, actions: [PolicyAction],
        continues: Bool, line: Int = 0
    ) {
        self.name = name
        self.trigger = trigger
        self.match = match
        self.actions = actions
        self.continues = continues
        self.line = line
    }
}
