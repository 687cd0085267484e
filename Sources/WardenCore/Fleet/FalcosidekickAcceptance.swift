// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// The checks Falcosidekick's input (`POST /`) makes before it takes an event: a JSON object
/// whose `priority` is a Falco priority in any case, whose `rule` and `time` are set, and whose
/// `output_fields` is a non-empty object. `source` may be any text. The tests' receiver and the
/// benchmark's sink answer by it, so an event the agent builds is checked as Falcosidekick would.
public enum FalcosidekickAcceptance {
    /// Nil when accepted; otherwise why not, as Falcosidekick would answer 400.
    public static func refusal(_ body: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: body), let event = object as? [String: Any] else {
            return "the body is not a JSON object"
        }
        guard let priority = event["priority"] as? String, FalcoPriority(name: priority) != nil else {
            return "priority is missing or not a Falco priority"
        }
        guard let rule = event["rule"] as? String, !rule.isEmpty else { return "rule is missing" }
        guard let time = event["time"] as? String, Timestamp(rfc3339: time) != nil else {
            return "time is missing or not RFC 3339"
        }
        guard let fields = event["output_fields"] as? [String: Any], !fields.isEmpty else {
            return "output_fields is missing or empty"
        }
        return nil
    }
}
