// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Yams

/// Falco rules YAML that shmwarden suggests, emitted by a YAML library so that any value (quotes,
/// colons, newlines) stays one well-formed scalar, and using only keys Falco's rule schema has.
public enum FalcoRuleYAML {
    /// The keys a rule item may carry (Falco's rules file schema).
    public static let ruleKeys: Set<String> = [
        "rule", "desc", "condition", "output", "priority", "exceptions", "override", "enabled", "tags", "source",
        "warn_evttypes", "skip-if-unknown-filter", "append",
    ]
    /// The keys of one exception.
    public static let exceptionKeys: Set<String> = ["name", "fields", "comps", "values"]

    /// A rules file appending one exception to `rule`: `fields` compared with `=` to `values`.
    public static func exception(rule: String, name: String, fields: [String], values: [String]) -> String {
        let exception: Node = [
            "name": Node(name),
            "fields": Node(fields.map { Node($0) }),
            "comps": Node(fields.map { _ in Node("=") }),
            "values": Node([Node(values.map { Node($0) })]),
        ]
        let item: Node = [
            "rule": Node(rule),
            "exceptions": Node([exception]),
            "override": ["exceptions": "append"],
        ]
        return (try? Yams.serialize(node: Node([item]), sortKeys: false)) ?? ""
    }
}
