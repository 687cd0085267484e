// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// A rule's conditions. Every condition that is set must hold; an empty match matches everything.
public struct PolicyMatch: Hashable, Sendable {
    /// Exact Falco rule names; any of them.
    public var rules: [String]?
    public var priority: PriorityCondition?
    /// Every listed tag must be on the alert.
    public var tags: [String]?
    /// Any of these sources (`syscall`, `k8s_audit`, …).
    public var sources: [String]?
    /// Conditions on `output_fields`, all of which must hold.
    public var fields: [FieldCondition]
    /// Facts the evidence must have: at least one correlated (or dropped) file must satisfy them.
    public var file: FileCondition?
    /// What the YARA rules must have found in that same file.
    public var yara: YaraCondition?

    public init(
        rules: [String]? = nil, priority: PriorityCondition? = nil, tags: [String]? = nil, sources: [String]? = nil,
        fields: [FieldCondition] = [], file: FileCondition? = nil, yara: YaraCondition? = nil
    ) {
        self.yara = yara
        self.rules = rules
        self.priority = priority
        self.tags = tags
        self.sources = sources
        self.fields = fields
        self.file = file
    }

    /// Whether the alert-level conditions hold (a missing alert fails every alert condition).
    public func matchesAlert(_ alert: FalcoAlert?) -> Bool {
        let needsAlert = rules != nil || priority != nil || tags != nil || sources != nil || !fields.isEmpty
        guard let alert else { return !needsAlert }
        if let rules, !rules.contains(alert.rule) { return false }
        if let priority, !priority.matches(alert.priority) { return false }
        if let tags, !tags.allSatisfy(alert.tags.contains) { return false }
        if let sources, !sources.contains(alert.source ?? "") { return false }
        return fields.allSatisfy { $0.matches(alert) }
    }
}

/// The operator of a policy comparison (`>=Warning`, `<=64MiB`).
public enum Comparison: String, Hashable, Sendable, CaseIterable {
    case atLeast = ">=", above = ">", atMost = "<=", below = "<", equal = "=="

    /// Splits a leading operator off `text` (none means `==`); longest operators are tried first,
    /// so `>=` is not read as `>`.
    static func split(_ text: Substring) -> (Comparison, Substring) {
        for candidate in [Comparison.atLeast, .atMost, .equal, .above, .below] where text.hasPrefix(candidate.rawValue)
        {
            return (candidate, text.dropFirst(candidate.rawValue.count))
        }
        return (.equal, text)
    }

    /// `value <op> reference`.
    public func holds<T: Comparable>(_ value: T, _ reference: T) -> Bool {
        switch self {
        case .atLeast: value >= reference
        case .above: value > reference
        case .atMost: value <= reference
        case .below: value < reference
        case .equal: value == reference
        }
    }
}

/// `>=Warning`, `<Error`, `Critical` (exactly), …: compares by severity, Emergency highest.
public struct PriorityCondition: Hashable, Sendable, CustomStringConvertible {
    public var comparison: Comparison
    public var priority: FalcoPriority

    public init(_ comparison: Comparison, _ priority: FalcoPriority) {
        self.comparison = comparison
        self.priority = priority
    }

    /// Parses `>=Warning` (spaces allowed, names in any case; no operator means `==`).
    public init?(parsing text: String) {
        let (comparison, rest) = Comparison.split(Substring(text.trimmingCharacters(in: .whitespaces)))
        guard let priority = FalcoPriority(name: rest.trimmingCharacters(in: .whitespaces)) else { return nil }
        self.init(comparison, priority)
    }

    public func matches(_ value: FalcoPriority) -> Bool {
        // FalcoPriority orders by severity: Debug < … < Emergency.
        comparison.holds(value, priority)
    }

    public var description: String { comparison.rawValue + priority.name }
}

/// One condition on an `output_fields` value, compared as Falco prints it.
public struct FieldCondition: Hashable, Sendable {
    public enum Test: Hashable, Sendable {
        /// The value's text is one of these.
        case oneOf([String])
        /// The value's text is none of these (a missing or null field also passes).
        case noneOf([String])
        /// The value's text starts with this.
        case prefix(String)
        /// The value's text contains this.
        case contains(String)
        /// The value's text matches this glob (`*` stops at `/`, `**` does not).
        case glob(PathGlob)
        /// The field is present and not null (`true`), or absent or null (`false`).
        case exists(Bool)
    }

    public var field: String
    public var test: Test

    public init(field: String, test: Test) {
        self.field = field
        self.test = test
    }

    public func matches(_ alert: FalcoAlert) -> Bool {
        let text = alert.field(field)
        switch test {
        case .oneOf(let values): return text.map(values.contains) ?? false
        case .noneOf(let values): return text.map { !values.contains($0) } ?? true
        case .prefix(let prefix): return text?.hasPrefix(prefix) ?? false
        case .contains(let part): return text?.contains(part) ?? false
        case .glob(let glob): return text.map { glob.matches(PathBytes($0)) } ?? false
        case .exists(let wanted): return (text != nil) == wanted
        }
    }
}

/// Facts about one file of evidence.
public struct FileCondition: Hashable, Sendable {
    public var kinds: [FileKind]?
    /// Globs over the mount point the file was found under.
    public var mounts: [PathGlob]?
    /// Globs over the file's path.
    public var paths: [PathGlob]?
    public var size: SizeCondition?
    public var sha256: Set<String>?

    public init(
        kinds: [FileKind]? = nil, mounts: [PathGlob]? = nil, paths: [PathGlob]? = nil, size: SizeCondition? = nil,
        sha256: Set<String>? = nil
    ) {
        self.kinds = kinds
        self.mounts = mounts
        self.paths = paths
        self.size = size
        self.sha256 = sha256
    }

    public func matches(_ file: PolicyFile) -> Bool {
        if let kinds, !kinds.contains(file.kind) { return false }
        if let mounts, !mounts.contains(where: { glob in file.mountPoint.map(glob.matches) ?? false }) { return false }
        if let paths, !paths.contains(where: { $0.matches(file.path) }) { return false }
        if let size, !size.matches(file.size) { return false }
        if let sha256, !(file.sha256.map(sha256.contains) ?? false) { return false }
        return true
    }
}

/// `<=64MiB`, `>0`, `4096`: a size comparison in bytes (units B, KiB, MiB, GiB).
public struct SizeCondition: Hashable, Sendable, CustomStringConvertible {
    public var comparison: Comparison
    public var bytes: Int64

    public init(_ comparison: Comparison, _ bytes: Int64) {
        self.comparison = comparison
        self.bytes = bytes
    }

    public init?(parsing text: String) {
        let (comparison, operand) = Comparison.split(Substring(text.replacingOccurrences(of: " ", with: "")))
        var rest = operand
        let units: [(String, Int64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        var multiplier: Int64 = 1
        for (suffix, factor) in units where rest.hasSuffix(suffix) {
            multiplier = factor
            rest = rest.dropLast(suffix.count)
            break
        }
        guard !rest.isEmpty, rest.allSatisfy(\.isASCII), let number = Int64(rest), number >= 0 else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        self.init(comparison, bytes)
    }

    public func matches(_ size: Int64) -> Bool { comparison.holds(size, bytes) }

    public var description: String { comparison.rawValue + String(bytes) }
}
