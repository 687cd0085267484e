// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What the exec guard answers for one exec, and why.
public struct GuardDecision: Hashable, Sendable {
    public enum Verdict: String, Hashable, Sendable, Codable {
        case allow, deny
    }

    /// What the kernel is told.
    public var verdict: Verdict
    /// What enforce mode would have said (differs from `verdict` in monitor mode).
    public var wouldBe: Verdict
    /// `allowlist-sha256`, `allowlist-path`, `yara`, `unknown`, `self`, `failure`.
    public var rule: String
    public var reason: String

    /// Decides for a file with this path and hash under `policy` (pure; the guard adds caching).
    ///
    /// - Parameters:
    ///   - sha256: nil when the file could not be hashed (then `failure` applies).
    ///   - pathDistrust: why the file's owners do not vouch for its path (`OwnershipChain`), or
    ///     nil when they do; a matching path glob counts only when they do.
    ///   - yara: the file's YARA verdict, when `guard.yara` is set and its scan finished (a
    ///     missing one is a `failureReason`).
    public static func decide(
        path: PathBytes, sha256: String?, policy: Policy, failureReason: String? = nil, pathDistrust: String? = nil,
        yara: YaraVerdict? = nil
    ) -> GuardDecision {
        let execGuard = policy.execGuard
        let wouldBe: Verdict
        let rule: String
        let reason: String
        if let failureReason {
            wouldBe = execGuard.failure == .allow ? .allow : .deny
            rule = "failure"
            reason = "\(failureReason); guard.failure is \(execGuard.failure.rawValue)"
        } else if let sha256, policy.allowlist.sha256.contains(sha256) {
            (wouldBe, rule, reason) = (.allow, "allowlist-sha256", "sha256 \(sha256) is allowlisted")
        } else if let condition = execGuard.yara, let first = condition.matching(yara).first {
            (wouldBe, rule, reason) = (
                .deny, "yara", "matched YARA rule \(first.rule) from \(first.namespace) (guard.yara: \(condition))"
            )
        } else if let glob = policy.allowlist.paths.first(where: { $0.matches(path) }) {
            if let pathDistrust {
                (wouldBe, rule, reason) = (
                    .deny, "unknown",
                    "its sha256 is not allowlisted, and its path matches glob \(glob), which does not count: \(pathDistrust)"
                )
            } else {
                (wouldBe, rule, reason) = (.allow, "allowlist-path", "path matches allowlisted glob \(glob)")
            }
        } else {
            (wouldBe, rule, reason) = (
                execGuard.unknown, "unknown",
                "neither its sha256 nor its path is allowlisted; guard.unknown is \(execGuard.unknown.rawValue)"
            )
        }
        let verdict = execGuard.mode == .enforce ? wouldBe : .allow
        return GuardDecision(verdict: verdict, wouldBe: wouldBe, rule: rule, reason: reason)
    }
}
