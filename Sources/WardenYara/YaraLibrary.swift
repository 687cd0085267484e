// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CYara
import Synchronization
import WardenCore

/// libyara, the one file that calls it: rules compiled from text, and scanners over memory.

/// A rules file that did not compile (or compiled with a warning), at a line of it.
public struct YaraCompileMessage: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    public var isWarning: Bool

    public var description: String { "\(file):\(line): \(isWarning ? "warning: " : "")\(message)" }
}

/// Rules compiled by libyara. Immutable once built: any number of scanners, on any threads,
/// may use the same set (each scanner holds it alive).
public final class YaraRules: @unchecked Sendable {
    fileprivate let handle: UnsafeMutablePointer<YR_RULES>
    public let ruleCount: Int

    private init(handle: UnsafeMutablePointer<YR_RULES>) {
        self.handle = handle
        var stats = YR_RULES_STATS()
        ruleCount = yr_rules_get_stats(handle, &stats) == ERROR_SUCCESS ? Int(stats.num_rules) : 0
    }

    deinit { yr_rules_destroy(handle) }

    /// Compiles `sources` (each file's text, in its own namespace: its name) into one set.
    ///
    /// `include` is refused: a rule set is what its files say, nothing they point at. Every
    /// file is checked, so one compile names the errors of all of them; the warnings come back
    /// with the rules.
    public static func compile(_ sources: [(name: String, text: [UInt8])])
        -> Result<(YaraRules, warnings: [YaraCompileMessage]), YaraCompileErrors>
    {
        YaraLibrary.initialize()
        var errors: [YaraCompileMessage] = []
        var warnings: [YaraCompileMessage] = []
        var compiler: UnsafeMutablePointer<YR_COMPILER>?
        guard yr_compiler_create(&compiler) == ERROR_SUCCESS, let main = compiler else {
            return .failure(
                YaraCompileErrors([.init(file: "-", line: 0, message: "libyara: out of memory", isWarning: false)]))
        }
        defer { yr_compiler_destroy(main) }
        var mainUsable = true
        for source in sources {
            if source.text.contains(0) {
                errors.append(
                    .init(
                        file: source.name, line: 0, message: "contains a NUL byte; not a rules file", isWarning: false))
                continue
            }
            // After an error libyara's compiler takes no more text: the files after it are
            // checked each on a compiler of its own, for their errors.
            var scratch: UnsafeMutablePointer<YR_COMPILER>?
            let target: UnsafeMutablePointer<YR_COMPILER>
            if mainUsable {
                target = main
            } else {
                guard yr_compiler_create(&scratch) == ERROR_SUCCESS, let made = scratch else { continue }
                target = made
            }
            defer { if let scratch { yr_compiler_destroy(scratch) } }
            let collector = CompileCollector(file: source.name)
            let context = Unmanaged.passUnretained(collector).toOpaque()
            yr_compiler_set_include_callback(target, nil, nil, nil)
            yr_compiler_set_callback(target, compileCallback, context)
            let failures = source.text.withUnsafeBufferPointer { bytes -> Int32 in
                var text = Array(bytes)
                text.append(0)
                return text.withUnsafeBufferPointer { terminated in
                    guard let base = terminated.baseAddress else { return 1 }
                    return base.withMemoryRebound(to: CChar.self, capacity: terminated.count) { pointer in
                        source.name.withCString { namespace in yr_compiler_add_string(target, pointer, namespace) }
                    }
                }
            }
            errors += collector.errors
            warnings += collector.warnings
            if failures > 0 {
                if collector.errors.isEmpty {
                    errors.append(.init(file: source.name, line: 0, message: "did not compile", isWarning: false))
                }
                if target == main { mainUsable = false }
            }
        }
        guard errors.isEmpty else { return .failure(YaraCompileErrors(errors)) }
        var rules: UnsafeMutablePointer<YR_RULES>?
        guard yr_compiler_get_rules(main, &rules) == ERROR_SUCCESS, let rules else {
            return .failure(
                YaraCompileErrors([
                    .init(file: "-", line: 0, message: "libyara could not build the rules", isWarning: false)
                ]))
        }
        return .success((YaraRules(handle: rules), warnings))
    }
}

/// Every error of a rule set that did not compile.
public struct YaraCompileErrors: Error, Hashable, Sendable, CustomStringConvertible {
    public var messages: [YaraCompileMessage]
    public init(_ messages: [YaraCompileMessage]) { self.messages = messages }
    public var description: String { messages.map(\.description).joined(separator: "\n") }
}

private final class CompileCollector {
    let file: String
    var errors: [YaraCompileMessage] = []
    var warnings: [YaraCompileMessage] = []
    init(file: String) { self.file = file }
}

private let compileCallback: YR_COMPILER_CALLBACK_FUNC = { level, _, line, _, message, context in
    guard let context else { return }
    let collector = Unmanaged<CompileCollector>.fromOpaque(context).takeUnretainedValue()
    let entry = YaraCompileMessage(
        file: collector.file, line: Int(line), message: message.map { String(cString: $0) } ?? "?",
        isWarning: level == YARA_ERROR_LEVEL_WARNING)
    if entry.isWarning { collector.warnings.append(entry) } else { collector.errors.append(entry) }
}

/// How one scan ended.
public enum YaraScanOutcome: Sendable, Equatable {
    case matched([YaraMatch])
    case timeout
    case failed(String)
}

/// A libyara scanner over one rule set.
///
/// - Important: Not thread-safe; each thread scans with its own.
public final class YaraScanner {
    public let rules: YaraRules
    private let handle: UnsafeMutablePointer<YR_SCANNER>

    public init?(rules: YaraRules, timeoutSeconds: Int) {
        var scanner: UnsafeMutablePointer<YR_SCANNER>?
        guard yr_scanner_create(rules.handle, &scanner) == ERROR_SUCCESS, let scanner else { return nil }
        self.rules = rules
        handle = scanner
        yr_scanner_set_timeout(handle, Int32(clamping: max(1, timeoutSeconds)))
    }

    deinit { yr_scanner_destroy(handle) }

    /// Scans `bytes` as the first bytes of a file of `fileSize` bytes (YARA's `filesize`).
    ///
    /// In `fast` mode a string whose rules only ask whether it is there (no count, no offset) is
    /// no longer looked for once found: what the rules decide is the same, its reported matches
    /// stop at the first, and a file that repeats such a string everywhere cannot make libyara
    /// keep a million matches of it (each string's limit) in memory.
    public func scan(_ bytes: UnsafeRawBufferPointer, fileSize: Int64, fast: Bool = true) -> YaraScanOutcome {
        yr_scanner_set_flags(handle, fast ? SCAN_FLAGS_FAST_MODE : 0)
        let collector = MatchCollector()
        yr_scanner_set_callback(handle, scanCallback, Unmanaged.passUnretained(collector).toOpaque())
        // An empty file is scanned as an empty block at a valid address.
        var empty: UInt8 = 0
        let result = withExtendedLifetime(collector) {
            withUnsafePointer(to: &empty) { emptyBase in
                let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyBase
                return cyara_scan_prefix(handle, base, bytes.count, UInt64(max(0, fileSize)))
            }
        }
        return outcome(result, collector)
    }

    /// Scans what the open file `descriptor` holds, mapped by libyara itself (which catches the
    /// fault of a file truncated under the mapping): what the `yara` command does. Only for
    /// scans whose bytes need no hash (`scan --yara`); captures are read, never mapped.
    public func scanMapped(descriptor: Int32) -> YaraScanOutcome {
        yr_scanner_set_flags(handle, 0)
        let collector = MatchCollector()
        yr_scanner_set_callback(handle, scanCallback, Unmanaged.passUnretained(collector).toOpaque())
        let result = withExtendedLifetime(collector) { yr_scanner_scan_fd(handle, descriptor) }
        return outcome(result, collector)
    }

    private func outcome(_ result: Int32, _ collector: MatchCollector) -> YaraScanOutcome {
        switch result {
        case ERROR_SUCCESS: return .matched(collector.matches)
        case ERROR_SCAN_TIMEOUT: return .timeout
        case ERROR_TOO_MANY_MATCHES: return .failed("too many matches (libyara error 30)")
        case ERROR_INSUFFICIENT_MEMORY: return .failed("libyara ran out of memory")
        default: return .failed("libyara error \(result)")
        }
    }
}

private final class MatchCollector {
    var matches: [YaraMatch] = []
}

private let scanCallback: YR_CALLBACK_FUNC = { context, message, data, user in
    guard message == CALLBACK_MSG_RULE_MATCHING, let context, let data, let user else { return CALLBACK_CONTINUE }
    let collector = Unmanaged<MatchCollector>.fromOpaque(user).takeUnretainedValue()
    let rule = data.assumingMemoryBound(to: YR_RULE.self)
    collector.matches.append(YaraLibrary.match(rule, context: context))
    return CALLBACK_CONTINUE
}

enum YaraLibrary {
    private static let initialized = Mutex(false)

    /// `yr_initialize` once per process (it sets up libyara's tables and modules), and a small
    /// copy of each match's bytes: shmwarden keeps offsets, not data.
    static func initialize() {
        initialized.withLock { done in
            guard !done else { return }
            _ = yr_initialize()
            _ = yr_set_configuration_uint32(YR_CONFIG_MAX_MATCH_DATA, 16)
            done = true
        }
    }

    static func text(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }

    static func match(_ rule: UnsafePointer<YR_RULE>, context: UnsafeMutablePointer<YR_SCAN_CONTEXT>) -> YaraMatch {
        var tags: [String] = []
        if var tag = cyara_rule_tags(rule) {
            while tag.pointee != 0 {
                let name = String(cString: tag)
                tags.append(name)
                tag += name.utf8.count + 1
            }
        }
        var metadata: [YaraMeta] = []
        var meta = cyara_rule_first_meta(rule)
        while let current = meta {
            let value: String
            switch cyara_meta_type(current) {
            case Int32(META_TYPE_STRING): value = text(cyara_meta_string(current))
            case Int32(META_TYPE_BOOLEAN): value = cyara_meta_integer(current) != 0 ? "true" : "false"
            default: value = String(cyara_meta_integer(current))
            }
            metadata.append(YaraMeta(key: text(cyara_meta_identifier(current)), value: value))
            meta = cyara_meta_next(current)
        }
        var strings: [YaraStringMatch] = []
        var truncated = false
        var string = cyara_rule_first_string(rule)
        while let current = string {
            var offsets: [Int64] = []
            var match = cyara_string_first_match(context, current)
            var count = 0
            while let found = match {
                if cyara_match_is_private(found) == 0 {
                    count += 1
                    if offsets.count < YaraMatch.offsetLimit { offsets.append(cyara_match_offset(found)) }
                }
                match = cyara_match_next(found)
            }
            if count > 0 {
                // The list keeps a bounded number of matches; the count is libyara's own.
                count = max(count, Int(cyara_string_match_count(context, current)))
                if strings.count < YaraMatch.stringLimit {
                    strings.append(
                        YaraStringMatch(
                            identifier: text(cyara_string_identifier(current)), offsets: offsets, count: count))
                } else {
                    truncated = true
                }
            }
            string = cyara_string_next(current)
        }
        return YaraMatch(
            rule: text(cyara_rule_identifier(rule)), namespace: text(cyara_rule_namespace(rule)), tags: tags,
            metadata: metadata, strings: strings, stringsTruncated: truncated)
    }
}
