// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Yams

/// One parsed policy file, before it is merged with the others of its directory.
public struct PolicyDocument: Hashable, Sendable {
    public var file: String
    public var mode: PolicyMode?
    public var modeLine: Int
    public var allowlist: Allowlist
    public var rules: [PolicyRule]
    /// The `guard:` section, when the file has one, and its line.
    public var execGuard: GuardPolicy? = nil
    public var guardLine: Int = 0
    /// `protect:`, executable names `kill-process` never signals, added to the built-in list.
    public var protectedProcesses: [String] = []
}

/// Reads policy YAML strictly: unknown keys, wrong types and bad values are errors with their
/// line, and a file with any error yields no policy at all.
public enum PolicyParser {
    /// Parses one file's text; `file` names it in errors.
    public static func parse(_ text: String, file: String) -> Result<PolicyDocument, PolicyErrors> {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            return .failure(PolicyErrors([yamlError(error, file: file)]))
        } catch {
            return .failure(PolicyErrors([PolicyError(file: file, line: 0, reason: "\(error)")]))
        }
        var reader = Reader(file: file)
        guard let root else {
            return .failure(PolicyErrors([PolicyError(file: file, line: 0, reason: "the file is empty")]))
        }
        let document = reader.document(root)
        return reader.errors.isEmpty ? .success(document) : .failure(PolicyErrors(reader.errors))
    }

    /// Merges a directory's documents (in the order given): one mode for all, rule names unique.
    public static func merge(_ documents: [PolicyDocument]) -> Result<Policy, PolicyErrors> {
        var errors: [PolicyError] = []
        var mode: (PolicyMode, PolicyDocument)?
        var allowlist = Allowlist()
        var rules: [PolicyRule] = []
        var ruleFiles: [String: String] = [:]
        var execGuard: (GuardPolicy, PolicyDocument)?
        var protectedProcesses = Policy.defaultProtectedProcesses
        for document in documents {
            protectedProcesses += document.protectedProcesses
            if let documentGuard = document.execGuard {
                if let (_, first) = execGuard {
                    errors.append(
                        PolicyError(
                            file: document.file, line: document.guardLine,
                            reason: "'guard' is already set in \(first.file); one policy has one guard section"))
                } else {
                    execGuard = (documentGuard, document)
                }
            }
            if let documentMode = document.mode {
                if let (first, firstDocument) = mode, first != documentMode {
                    errors.append(
                        PolicyError(
                            file: document.file, line: document.modeLine,
                            reason: "mode '\(documentMode.rawValue)' conflicts with mode '\(first.rawValue)' set in "
                                + "\(firstDocument.file); one policy has one mode"))
                } else if mode == nil {
                    mode = (documentMode, document)
                }
            }
            allowlist.sha256.formUnion(document.allowlist.sha256)
            allowlist.paths.append(contentsOf: document.allowlist.paths)
            allowlist.trustedOwners.formUnion(document.allowlist.trustedOwners)
            allowlist.filelessParents.formUnion(document.allowlist.filelessParents)
            for rule in document.rules {
                if let other = ruleFiles[rule.name] {
                    errors.append(
                        PolicyError(
                            file: document.file, line: rule.line,
                            reason: "rule name '\(rule.name)' is already used in \(other)"))
                }
                ruleFiles[rule.name] = document.file
                rules.append(rule)
            }
        }
        if mode == nil {
            errors.append(
                PolicyError(
                    file: documents.first?.file ?? "policy", line: 0,
                    reason: "no 'mode' set: add 'mode: monitor' or 'mode: enforce'"))
        }
        guard errors.isEmpty, let (policyMode, _) = mode else { return .failure(PolicyErrors(errors)) }
        var policy = Policy(
            mode: policyMode, allowlist: allowlist, rules: rules, sources: documents.map(\.file),
            execGuard: execGuard?.0 ?? GuardPolicy())
        policy.protectedProcesses = protectedProcesses
        return .success(policy)
    }

    static func yamlError(_ error: YamlError, file: String) -> PolicyError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) at line \($0.mark.line): " } ?? ""
            return PolicyError(
                file: file, line: mark.line, column: mark.column, reason: "invalid YAML: \(prefix)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PolicyError(
                file: file, line: context.mark.line, column: context.mark.column,
                reason: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping")
        default:
            return PolicyError(file: file, line: 0, reason: "invalid YAML: \(error)")
        }
    }
}

/// Walks the YAML tree, collecting every error instead of stopping at the first.
private struct Reader {
    let file: String
    var errors: [PolicyError] = []

    init(file: String) { self.file = file }

    mutating func fail(_ node: Node?, _ reason: String) {
        errors.append(
            PolicyError(file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0, reason: reason))
    }

    // MARK: Shapes

    /// The key/value pairs of a mapping, with unknown keys reported.
    mutating func mapping(_ node: Node, _ what: String, allowed: [String]) -> [(
        key: String, keyNode: Node, value: Node
    )]? {
        guard case .mapping(let mapping) = node else {
            fail(node, "\(what) must be a mapping (key: value lines)")
            return nil
        }
        var pairs: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                fail(keyNode, "\(what): keys must be plain text")
                continue
            }
            guard allowed.contains(scalar.string) else {
                fail(
                    keyNode,
                    "\(what): unknown key '\(scalar.string)' (expected one of: \(allowed.joined(separator: ", ")))")
                continue
            }
            pairs.append((scalar.string, keyNode, value))
        }
        return pairs
    }

    mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let scalar) = node, scalar.tag != Tag(.null) || !scalar.string.isEmpty else {
            fail(node, "\(what) must be a single value")
            return nil
        }
        if case .scalar = node, node.null != nil {
            fail(node, "\(what) must not be empty")
            return nil
        }
        return scalar.string
    }

    /// A value or a list of values.
    mutating func strings(_ node: Node, _ what: String) -> [String]? {
        switch node {
        case .scalar:
            return string(node, what).map { [$0] }
        case .sequence(let sequence):
            var values: [String] = []
            for item in sequence {
                guard let value = string(item, "each item of \(what)") else { continue }
                values.append(value)
            }
            if values.isEmpty && sequence.isEmpty { fail(node, "\(what) must not be an empty list") }
            return values
        default:
            fail(node, "\(what) must be a value or a list of values")
            return nil
        }
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard case .scalar = node, let value = node.bool else {
            fail(node, "\(what) must be true or false")
            return nil
        }
        return value
    }

    mutating func glob(_ node: Node, _ text: String, _ what: String) -> PathGlob? {
        guard text.hasPrefix("/") else {
            fail(node, "\(what) '\(text)' must be an absolute path or glob (starting with /)")
            return nil
        }
        return PathGlob(text)
    }

    mutating func sha256(_ node: Node, _ text: String, _ what: String) -> String? {
        let lower = text.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else {
            fail(node, "\(what) '\(text)' is not a SHA-256 (64 hexadecimal digits)")
            return nil
        }
        return lower
    }

    // MARK: Document

    mutating func document(_ root: Node) -> PolicyDocument {
        var document = PolicyDocument(file: file, mode: nil, modeLine: 0, allowlist: Allowlist(), rules: [])
        guard
            let pairs = mapping(
                root, "the policy", allowed: ["version", "mode", "allowlist", "rules", "guard", "protect"])
        else {
            return document
        }
        var sawRules = false
        for (key, keyNode, value) in pairs {
            switch key {
            case "version":
                if string(value, "version") != "1" { fail(value, "version must be 1 (the only policy format so far)") }
            case "mode":
                guard let text = string(value, "mode") else { continue }
                guard let mode = PolicyMode(rawValue: text) else {
                    fail(value, "mode must be 'monitor' or 'enforce', not '\(text)'")
                    continue
                }
                document.mode = mode
                document.modeLine = keyNode.mark?.line ?? 0
            case "allowlist":
                document.allowlist = allowlist(value)
            case "protect":
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard let name = string(item, "protect"), !name.isEmpty, !name.contains("/") else {
                        fail(item, "protect lists executable names (globs without '/'), e.g. 'postgres' or 'nginx*'")
                        continue
                    }
                    document.protectedProcesses.append(name)
                }
            case "guard":
                document.execGuard = execGuard(value)
                document.guardLine = keyNode.mark?.line ?? 0
            case "rules":
                sawRules = true
                guard case .sequence(let sequence) = value else {
                    fail(value, "rules must be a list of rules (each item starting with '- name:')")
                    continue
                }
                var names: [String: Int] = [:]
                for item in sequence {
                    guard let rule = rule(item) else { continue }
                    if let line = names[rule.name] {
                        fail(item, "rule name '\(rule.name)' is already used at line \(line)")
                    }
                    names[rule.name] = rule.line
                    document.rules.append(rule)
                }
            default:
                break
            }
        }
        if !sawRules && document.allowlist == Allowlist() && document.mode == nil && document.execGuard == nil {
            fail(root, "the policy has none of 'mode', 'allowlist', 'rules', 'guard'")
        }
        return document
    }

    mutating func allowlist(_ node: Node) -> Allowlist {
        var allowlist = Allowlist()
        guard let pairs = mapping(node, "allowlist", allowed: ["sha256", "paths", "owners", "fileless-parents"]) else {
            return allowlist
        }
        // A key left empty (every item commented out) is an empty list.
        for (key, _, value) in pairs where value.null == nil {
            switch key {
            case "sha256":
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard let text = string(item, "allowlist sha256"), let sha = sha256(item, text, "allowlist sha256")
                    else { continue }
                    allowlist.sha256.insert(sha)
                }
            case "owners":
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard case .scalar = item, let uid = item.int, let owner = UInt32(exactly: uid) else {
                        fail(item, "allowlist owners are numeric uids (0 to 4294967295)")
                        continue
                    }
                    allowlist.trustedOwners.insert(owner)
                }
            case "fileless-parents":
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard let text = string(item, "allowlist fileless-parents") else { continue }
                    guard text.hasPrefix("/") else {
                        fail(item, "allowlist fileless-parents are absolute executable paths, not '\(text)'")
                        continue
                    }
                    allowlist.filelessParents.insert(text)
                }
            default:
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard let text = string(item, "allowlist path"), let glob = glob(item, text, "allowlist path")
                    else { continue }
                    allowlist.paths.append(glob)
                }
            }
        }
        return allowlist
    }

    mutating func execGuard(_ node: Node) -> GuardPolicy {
        var policy = GuardPolicy()
        guard
            let pairs = mapping(
                node, "guard", allowed: ["mode", "failure", "hash-size-cap", "deadline", "unknown", "yara"])
        else {
            return policy
        }
        for (key, _, value) in pairs {
            if key == "yara" {
                policy.yara = yaraCondition(value)
                continue
            }
            guard let text = string(value, key) else { continue }
            switch key {
            case "mode":
                guard let mode = GuardPolicy.Mode(rawValue: text) else {
                    fail(value, "guard mode must be 'off', 'monitor' or 'enforce', not '\(text)'")
                    continue
                }
                policy.mode = mode
            case "failure":
                guard let failure = GuardPolicy.Failure(rawValue: text) else {
                    fail(value, "guard failure must be 'allow' or 'deny', not '\(text)'")
                    continue
                }
                policy.failure = failure
            case "deadline":
                guard let milliseconds = GuardPolicy.parseMilliseconds(text), (1...10_000).contains(milliseconds) else {
                    fail(value, "guard deadline '\(text)' is not a time from 1ms to 10s (e.g. 100ms, 0.5s)")
                    continue
                }
                policy.deadlineMilliseconds = milliseconds
            case "unknown":
                guard let verdict = GuardDecision.Verdict(rawValue: text) else {
                    fail(value, "guard unknown must be 'allow' or 'deny', not '\(text)'")
                    continue
                }
                policy.unknown = verdict
            default:
                guard let size = SizeCondition(parsing: text), size.comparison == .equal, size.bytes > 0 else {
                    fail(value, "hash-size-cap '\(text)' is not a size like 64MiB")
                    continue
                }
                policy.hashSizeCap = size.bytes
            }
        }
        return policy
    }

    // MARK: Rules

    mutating func rule(_ node: Node) -> PolicyRule? {
        let line = node.mark?.line ?? 0
        guard
            let pairs = mapping(
                node, "a rule", allowed: ["name", "description", "enabled", "on", "match", "actions", "continue"])
        else { return nil }
        let errorsBefore = errors.count
        var name: String?
        var trigger = PolicyTrigger.alert
        var matchNode: Node?
        var actions: [PolicyAction] = []
        var acceptedBasis: [PolicyAction.Kind: CorrelationBasis] = [:]
        var sawActions = false
        var continues = false
        var enabled = true
        for (key, _, value) in pairs {
            switch key {
            case "name":
                name = string(value, "name")
                if name?.isEmpty == true { fail(value, "name must not be empty") }
            case "description":
                _ = string(value, "description")
            case "enabled":
                enabled = bool(value, "enabled") ?? true
            case "on":
                guard let text = string(value, "on") else { continue }
                guard let parsed = PolicyTrigger(rawValue: text) else {
                    fail(value, "on must be 'alert', 'dropped-executable' or 'fileless-executable', not '\(text)'")
                    continue
                }
                trigger = parsed
            case "match":
                matchNode = value
            case "actions":
                sawActions = true
                (actions, acceptedBasis) = self.actions(value)
            case "continue":
                continues = bool(value, "continue") ?? false
            default:
                break
            }
        }
        if name == nil { fail(node, "a rule needs a 'name'") }
        if !sawActions { fail(node, "rule '\(name ?? "?")' needs 'actions' (at least 'record')") }
        let match = matchNode.map { self.match($0, trigger: trigger) } ?? PolicyMatch()
        guard errors.count == errorsBefore, let name, enabled else { return nil }
        return PolicyRule(
            name: name, trigger: trigger, match: match, actions: actions, continues: continues, line: line,
            acceptedBasis: acceptedBasis)
    }

    mutating func match(_ node: Node, trigger: PolicyTrigger) -> PolicyMatch {
        var match = PolicyMatch()
        guard
            let pairs = mapping(
                node, "match", allowed: ["rule", "priority", "tags", "source", "fields", "file", "yara"])
        else { return match }
        for (key, keyNode, value) in pairs {
            if trigger != .alert && key != "file" && key != "yara" {
                fail(keyNode, "'\(key)' is about a Falco alert, and an 'on: \(trigger.rawValue)' rule has none")
                continue
            }
            switch key {
            case "rule":
                match.rules = strings(value, "rule")
            case "priority":
                guard let text = string(value, "priority") else { continue }
                guard let condition = PriorityCondition(parsing: text) else {
                    fail(
                        value,
                        "priority '\(text)' is not a comparison like '>=Warning' (operators >=, >, <=, <, ==; "
                            + "priorities \(FalcoPriority.allCases.map(\.name).joined(separator: ", ")))")
                    continue
                }
                match.priority = condition
            case "tags":
                match.tags = strings(value, "tags")
            case "source":
                match.sources = strings(value, "source")
            case "fields":
                match.fields = fields(value)
            case "file":
                match.file = fileCondition(value)
            case "yara":
                match.yara = yaraCondition(value)
            default:
                break
            }
        }
        return match
    }

    mutating func fields(_ node: Node) -> [FieldCondition] {
        guard case .mapping(let mapping) = node else {
            fail(node, "fields must be a mapping of Falco field names (e.g. proc.name) to conditions")
            return []
        }
        var conditions: [FieldCondition] = []
        for (keyNode, value) in mapping {
            guard let field = string(keyNode, "a field name") else { continue }
            guard !field.isEmpty, !field.contains(" ") else {
                fail(keyNode, "'\(field)' is not a Falco field name")
                continue
            }
            switch value {
            case .scalar, .sequence:
                guard let values = strings(value, "field '\(field)'") else { continue }
                conditions.append(FieldCondition(field: field, test: .oneOf(values)))
            case .mapping:
                let operators = ["in", "not", "prefix", "contains", "glob", "exists"]
                guard let pairs = self.mapping(value, "field '\(field)'", allowed: operators) else { continue }
                guard pairs.count == 1, let (op, _, operand) = pairs.first else {
                    fail(value, "field '\(field)' takes exactly one of: \(operators.joined(separator: ", "))")
                    continue
                }
                let test: FieldCondition.Test?
                switch op {
                case "in": test = strings(operand, "'in'").map { .oneOf($0) }
                case "not": test = strings(operand, "'not'").map { .noneOf($0) }
                case "prefix": test = string(operand, "'prefix'").map { .prefix($0) }
                case "contains": test = string(operand, "'contains'").map { .contains($0) }
                case "glob": test = string(operand, "'glob'").map { .glob(PathGlob($0)) }
                default: test = bool(operand, "'exists'").map { .exists($0) }
                }
                if let test { conditions.append(FieldCondition(field: field, test: test)) }
            default:
                fail(value, "field '\(field)' must be a value, a list, or one operator")
            }
        }
        return conditions
    }

    /// `{rule: [...], tags: [...]}`, either or both; `{}` is any match.
    mutating func yaraCondition(_ node: Node) -> YaraCondition? {
        if case .mapping(let mapping) = node, mapping.count == 0 { return YaraCondition() }
        guard let pairs = mapping(node, "yara", allowed: ["rule", "tags"]) else { return nil }
        var condition = YaraCondition()
        for (key, _, value) in pairs {
            if key == "rule" {
                condition.rules = strings(value, "yara rule")
            } else {
                condition.tags = strings(value, "yara tags")
            }
        }
        return condition
    }

    mutating func fileCondition(_ node: Node) -> FileCondition? {
        var condition = FileCondition()
        guard let pairs = mapping(node, "file", allowed: ["kind", "mount", "path", "size", "sha256"]) else {
            return nil
        }
        for (key, _, value) in pairs {
            switch key {
            case "kind":
                let items = value.sequence.map(Array.init) ?? [value]
                var kinds: [FileKind] = []
                for item in items {
                    guard let text = string(item, "kind") else { continue }
                    guard let kind = FileKind(rawValue: text) else {
                        fail(
                            item,
                            "kind '\(text)' is not one of: \(FileKind.allCases.map(\.rawValue).joined(separator: ", "))"
                        )
                        continue
                    }
                    kinds.append(kind)
                }
                condition.kinds = kinds
            case "mount", "path":
                let items = value.sequence.map(Array.init) ?? [value]
                var globs: [PathGlob] = []
                for item in items {
                    guard let text = string(item, key), let glob = glob(item, text, key) else { continue }
                    globs.append(glob)
                }
                if key == "mount" { condition.mounts = globs } else { condition.paths = globs }
            case "size":
                guard let text = string(value, "size") else { continue }
                guard let size = SizeCondition(parsing: text) else {
                    fail(value, "size '\(text)' is not a comparison like '<=64MiB' (units B, KiB, MiB, GiB)")
                    continue
                }
                condition.size = size
            default:
                var hashes: Set<String> = []
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard let text = string(item, "sha256"), let sha = sha256(item, text, "sha256") else { continue }
                    hashes.insert(sha)
                }
                condition.sha256 = hashes
            }
        }
        return condition
    }

    // MARK: Actions

    mutating func actions(_ node: Node) -> ([PolicyAction], [PolicyAction.Kind: CorrelationBasis]) {
        guard case .sequence(let sequence) = node, !sequence.isEmpty else {
            fail(node, "actions must be a non-empty list (e.g. '- record')")
            return ([], [:])
        }
        var actions: [PolicyAction] = []
        var bases: [PolicyAction.Kind: CorrelationBasis] = [:]
        for item in sequence {
            guard let action = action(item) else { continue }
            actions.append(action)
            if let basis = basis(of: item, for: action.kind) { bases[action.kind] = basis }
        }
        return (actions, bases)
    }

    /// An action's `basis:`, the weakest correlation it accepts (`kernel` or `text`).
    mutating func basis(of node: Node, for kind: PolicyAction.Kind) -> CorrelationBasis? {
        guard case .mapping(let mapping) = node, let value = mapping["basis"] else { return nil }
        guard let text = string(value, "basis") else { return nil }
        guard let basis = CorrelationBasis(rawValue: text) else {
            fail(value, "basis '\(text)' is not one of: kernel, text")
            return nil
        }
        if !kind.changesTheHost && basis == .kernel {
            fail(
                value,
                "action '\(kind.rawValue)' changes nothing and accepts any basis; 'basis' is for host-changing actions")
        }
        return basis
    }

    mutating func action(_ node: Node) -> PolicyAction? {
        let names = PolicyAction.Kind.allCases.map(\.rawValue).joined(separator: ", ")
        var parameters: [(key: String, keyNode: Node, value: Node)] = []
        let kindText: String
        switch node {
        case .scalar:
            guard let text = string(node, "an action") else { return nil }
            kindText = text
        case .mapping:
            guard
                let pairs = mapping(node, "an action", allowed: ["action", "signal", "flags", "timeout", "basis"]),
                let actionPair = pairs.first(where: { $0.key == "action" })
            else {
                if case .mapping = node { fail(node, "an action written as a mapping needs 'action: NAME'") }
                return nil
            }
            guard let text = string(actionPair.value, "action") else { return nil }
            kindText = text
            parameters = pairs.filter { $0.key != "action" }
        default:
            fail(node, "an action is a name (\(names)) or a mapping with 'action:'")
            return nil
        }
        guard let kind = PolicyAction.Kind(rawValue: kindText) else {
            fail(node, "unknown action '\(kindText)' (expected one of: \(names))")
            return nil
        }
        let allowedParameters: [PolicyAction.Kind: [String]] = [
            .killProcess: ["signal"], .remountNoexec: ["flags"], .sandbox: ["timeout"],
        ]
        for parameter in parameters
        where !(allowedParameters[kind] ?? []).contains(parameter.key) && parameter.key != "basis" {
            fail(parameter.keyNode, "action '\(kind.rawValue)' takes no '\(parameter.key)' parameter")
        }
        let value = { (key: String) in parameters.first { $0.key == key }?.value }
        switch kind {
        case .record: return .record
        case .quarantine: return .quarantine
        case .adviseNoexec: return .adviseNoexec
        case .killProcess:
            guard let node = value("signal") else { return .killProcess(signal: .kill) }
            guard let text = string(node, "signal") else { return nil }
            guard let signal = KillSignal(name: text) else {
                fail(node, "signal '\(text)' is not one of: KILL, TERM, STOP")
                return nil
            }
            return .killProcess(signal: signal)
        case .remountNoexec:
            guard let node = value("flags") else { return .remountNoexec(flags: [.noexec]) }
            guard let texts = strings(node, "flags") else { return nil }
            var flags: Set<MountRestriction> = []
            for text in texts {
                guard let flag = MountRestriction(rawValue: text) else {
                    fail(node, "flag '\(text)' is not one of: noexec, nosuid, nodev")
                    continue
                }
                flags.insert(flag)
            }
            if !flags.contains(.noexec) { fail(node, "flags of remount-noexec must include noexec") }
            return .remountNoexec(flags: flags)
        case .sandbox:
            guard let node = value("timeout") else { return .sandbox(timeoutSeconds: 10) }
            guard case .scalar = node, let seconds = node.int, (1...3600).contains(seconds) else {
                fail(node, "timeout must be a whole number of seconds from 1 to 3600")
                return nil
            }
            return .sandbox(timeoutSeconds: seconds)
        }
    }
}
