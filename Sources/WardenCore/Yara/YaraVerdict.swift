// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What one YARA scan of one file's bytes found: the rules that matched, or why it has no answer.
///
/// Stored per SHA-256: the same bytes give the same matches under the same rule set, whatever
/// path or process they came from.
public struct YaraVerdict: Hashable, Sendable {
    public enum Status: String, Codable, Hashable, Sendable, CaseIterable {
        /// Every byte was scanned.
        case complete
        /// The first `scannedBytes` were scanned (the file is larger than `yara.max-file-size`);
        /// the matches are facts about those bytes.
        case truncated
        /// The scan did not finish within `yara.timeout`: nothing is known.
        case timeout
        /// The bytes read did not hash to `sha256` (the file changed while it was read): no answer
        /// is stored for either content.
        case changed
        /// Not scanned (queue full, no rules, unreadable): `detail` says why.
        case skipped
        /// libyara refused the scan: `detail` says why.
        case failed
    }

    public var sha256: String
    /// The rule set's fingerprint (`YaraRuleSet.fingerprint`): a verdict is about this set only.
    public var ruleset: String
    public var status: Status
    public var matches: [YaraMatch]
    public var scannedBytes: Int64
    /// The file's size when it was read.
    public var size: Int64
    public var time: Timestamp
    public var durationNanoseconds: Int64
    public var detail: String?

    public init(
        sha256: String, ruleset: String, status: Status, matches: [YaraMatch] = [], scannedBytes: Int64 = 0,
        size: Int64 = 0, time: Timestamp, durationNanoseconds: Int64 = 0, detail: String? = nil
    ) {
        self.sha256 = sha256
        self.ruleset = ruleset
        self.status = status
        self.matches = matches
        self.scannedBytes = scannedBytes
        self.size = size
        self.time = time
        self.durationNanoseconds = durationNanoseconds
        self.detail = detail
    }

    /// Whether the scan gave an answer (complete, or complete over the bytes it was allowed).
    public var isAnswer: Bool { status == .complete || status == .truncated }

    /// One line: `matched A, B (truncated at 64 MiB)`, `no rule matched`, `timeout: …`.
    public var summary: String {
        switch status {
        case .complete, .truncated:
            let cut = status == .truncated ? " (first \(scannedBytes) of \(size) bytes scanned)" : ""
            if matches.isEmpty { return "no rule matched" + cut }
            return "matched " + matches.map(\.rule).joined(separator: ", ") + cut
        case .timeout, .changed, .skipped, .failed:
            return status.rawValue + (detail.map { ": \($0)" } ?? "")
        }
    }
}

extension YaraVerdict: Encodable {
    enum CodingKeys: String, CodingKey {
        case sha256, ruleset, status, matched, matches, scannedBytes, size, time, durationMs, detail
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Empty for a scan that did not hash what it read (`scan --yara`).
        if !sha256.isEmpty { try container.encode(sha256, forKey: .sha256) }
        try container.encode(ruleset, forKey: .ruleset)
        try container.encode(status, forKey: .status)
        try container.encode(isAnswer && !matches.isEmpty, forKey: .matched)
        try container.encode(matches, forKey: .matches)
        try container.encode(scannedBytes, forKey: .scannedBytes)
        try container.encode(size, forKey: .size)
        try container.encode(time.rfc3339, forKey: .time)
        try container.encode(Double(durationNanoseconds) / 1e6, forKey: .durationMs)
        try container.encodeIfPresent(detail, forKey: .detail)
    }
}

/// One rule that matched, with what its author wrote about it.
public struct YaraMatch: Codable, Hashable, Sendable {
    public var rule: String
    /// The rules file it came from (shmwarden compiles each file in a namespace of its path).
    public var namespace: String
    public var tags: [String]
    /// The rule's `meta:` section, in its order.
    public var metadata: [YaraMeta]
    /// Its strings that matched, each with its first offsets.
    public var strings: [YaraStringMatch]
    /// More strings matched than `strings` keeps.
    public var stringsTruncated: Bool

    public init(
        rule: String, namespace: String, tags: [String] = [], metadata: [YaraMeta] = [],
        strings: [YaraStringMatch] = [], stringsTruncated: Bool = false
    ) {
        self.rule = rule
        self.namespace = namespace
        self.tags = tags
        self.metadata = metadata
        self.strings = strings
        self.stringsTruncated = stringsTruncated
    }

    /// The value of meta `key`, when the rule has it.
    public func meta(_ key: String) -> String? { metadata.first { $0.key == key }?.value }

    /// At most this many strings per rule, and offsets per string, are kept.
    public static let stringLimit = 16
    public static let offsetLimit = 8
}

/// One `meta:` entry, its value as the rule wrote it (integers and booleans as text).
public struct YaraMeta: Codable, Hashable, Sendable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// A rule's string that matched: where (the first offsets), and how often.
public struct YaraStringMatch: Codable, Hashable, Sendable {
    /// `$name` as the rule wrote it.
    public var identifier: String
    /// Byte offsets of its first matches in the file.
    public var offsets: [Int64]
    /// How many times it matched in all.
    public var count: Int

    public init(identifier: String, offsets: [Int64], count: Int) {
        self.identifier = identifier
        self.offsets = offsets
        self.count = count
    }
}

/// A policy condition on a file's YARA matches: `match: {yara: {rule: […], tags: […]}}`.
///
/// A file satisfies it when one of its matches is of one of `rules` (when set) and carries one
/// of `tags` (when set); an empty condition is any match at all. A file with no answer (not yet
/// scanned, timed out, too changed to trust) satisfies none.
public struct YaraCondition: Hashable, Sendable, CustomStringConvertible {
    public var rules: [String]?
    public var tags: [String]?

    public init(rules: [String]? = nil, tags: [String]? = nil) {
        self.rules = rules
        self.tags = tags
    }

    /// The matches of `verdict` that satisfy this condition (none when it gave no answer).
    public func matching(_ verdict: YaraVerdict?) -> [YaraMatch] {
        guard let verdict, verdict.isAnswer else { return [] }
        return verdict.matches.filter { match in
            if let rules, !rules.contains(match.rule) { return false }
            if let tags, !match.tags.contains(where: tags.contains) { return false }
            return true
        }
    }

    public func matches(_ verdict: YaraVerdict?) -> Bool { !matching(verdict).isEmpty }

    public var description: String {
        var parts: [String] = []
        if let rules { parts.append("rule in [\(rules.joined(separator: ", "))]") }
        if let tags { parts.append("tag in [\(tags.joined(separator: ", "))]") }
        return parts.isEmpty ? "any YARA match" : parts.joined(separator: " and ")
    }
}
