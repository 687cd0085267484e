// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

private func parse(_ text: String) throws -> Policy {
    try PolicyParser.merge([try PolicyParser.parse(text, file: "p.yaml").get()]).get()
}

private func errors(_ text: String) -> [String] {
    switch PolicyParser.parse(text, file: "p.yaml") {
    case .success: return []
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

private func verdict(_ rules: [(String, [String])], status: YaraVerdict.Status = .complete) -> YaraVerdict {
    YaraVerdict(
        sha256: String(repeating: "b", count: 64), ruleset: "f00d", status: status,
        matches: rules.map { YaraMatch(rule: $0.0, namespace: "/etc/shmwarden/yara/x.yar", tags: $0.1) },
        scannedBytes: 10, size: 10, time: Timestamp(nanosecondsSinceEpoch: 0))
}

private func file(_ id: Int64, yara: YaraVerdict?) -> PolicyFile {
    var file = PolicyFile(
        fileID: id, path: PathBytes("/dev/shm/f\(id)"), mountPoint: PathBytes("/dev/shm"), kind: .script, size: 10,
        sha256: String(repeating: "b", count: 64), state: .present, device: 1, inode: UInt64(id))
    file.yara = yara
    return file
}

@Suite struct YaraPolicyTests {
    @Test func conditionsMatchByRuleAndTagOnAnswersOnly() {
        let found = verdict([("miner_a", ["miner"]), ("packed", ["packer", "anomaly"])])
        #expect(YaraCondition().matches(found))
        #expect(YaraCondition(rules: ["packed"]).matching(found).map(\.rule) == ["packed"])
        #expect(YaraCondition(tags: ["anomaly", "x"]).matching(found).map(\.rule) == ["packed"])
        #expect(!YaraCondition(rules: ["miner_a"], tags: ["packer"]).matches(found), "both must hold for one match")
        #expect(!YaraCondition().matches(verdict([])))
        #expect(!YaraCondition().matches(nil))
        for status in [YaraVerdict.Status.timeout, .changed, .skipped, .failed] {
            #expect(!YaraCondition().matches(verdict([("miner_a", [])], status: status)), "\(status)")
        }
        #expect(YaraCondition().matches(verdict([("miner_a", [])], status: .truncated)))
    }

    @Test func policiesParseYaraConditionsOnEveryTrigger() throws {
        let policy = try parse(
            """
            mode: enforce
            guard: {mode: enforce, unknown: allow, yara: {tags: [packer]}}
            rules:
              - {name: a, match: {rule: X, yara: {rule: [miner_a, miner_b]}}, actions: [record]}
              - {name: d, on: dropped-executable, match: {yara: {tags: miner}}, actions: [quarantine]}
              - {name: f, on: fileless-executable, match: {yara: {}}, actions: [record]}
            """)
        #expect(policy.rules[0].match.yara == YaraCondition(rules: ["miner_a", "miner_b"]))
        #expect(policy.rules[1].match.yara == YaraCondition(tags: ["miner"]))
        #expect(policy.rules[2].match.yara == YaraCondition())
        #expect(policy.execGuard.yara == YaraCondition(tags: ["packer"]) && policy.execGuard.unknown == .allow)
        #expect(policy.usesYara(for: .alert) && policy.usesYara(for: .droppedExecutable))
        #expect(try !parse("mode: monitor\nrules: [{name: a, actions: [record]}]\n").usesYara(for: .alert))
    }

    @Test func badYaraConditionsAreErrorsWithLines() {
        let found = errors(
            """
            mode: enforce
            guard: {unknown: maybe, yara: {rules: [x]}}
            rules:
              - name: a
                match:
                  yara: {rule: [], colour: red}
                actions: [record]
            """)
        #expect(found.contains { $0.hasPrefix("p.yaml:2:") && $0.contains("guard unknown must be 'allow' or 'deny'") })
        #expect(found.contains { $0.hasPrefix("p.yaml:2:") && $0.contains("unknown key 'rules'") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("p.yaml:6:") && $0.contains("unknown key 'colour'") }, "\(found)")
        #expect(found.contains { $0.contains("yara rule must not be an empty list") }, "\(found)")
    }

    /// A YARA condition picks the files whose matches satisfy it: the action acts on those only.
    @Test func theEvaluatorActsOnTheMatchingFilesOnly() throws {
        let policy = try parse(
            """
            mode: enforce
            rules:
              - {name: miners, on: dropped-executable, match: {yara: {tags: [miner]}}, actions: [quarantine]}
            """)
        let flagged = file(1, yara: verdict([("m", ["miner"])]))
        let clean = file(2, yara: verdict([]))
        let unscanned = file(3, yara: nil)
        #expect(PolicyEvaluator.evaluate(policy, for: .droppedExecutable(flagged)).map(\.disposition) == [.perform])
        #expect(PolicyEvaluator.evaluate(policy, for: .droppedExecutable(clean)).isEmpty)
        #expect(PolicyEvaluator.evaluate(policy, for: .droppedExecutable(unscanned)).isEmpty)
        let alert = try FalcoAlert.decode(Data(AlertFixtures.executionFromDevShm.utf8))
        let alertPolicy = try parse(
            "mode: enforce\nrules: [{name: a, match: {yara: {rule: [m]}}, actions: [quarantine]}]\n")
        let plan = PolicyEvaluator.evaluate(alertPolicy, for: .alert(id: "x", alert, files: [clean, flagged]))
        #expect(plan.first?.files.map(\.fileID) == [1])
        #expect(plan.first?.notes == ["/dev/shm/f1 matched YARA rule m from /etc/shmwarden/yara/x.yar"])
    }

    /// The guard refuses a match unless the hash is allowlisted (a path glob does not vouch
    /// for it), and answers the rest per `guard.unknown`.
    @Test func theGuardDecidesByItsYaraCondition() throws {
        let sha = String(repeating: "b", count: 64)
        let policy = try parse(
            """
            mode: monitor
            allowlist: {paths: [/dev/shm/tools/*]}
            guard: {mode: enforce, unknown: allow, yara: {rule: [packed]}}
            """)
        let flagged = verdict([("packed", [])])
        let refused = GuardDecision.decide(
            path: PathBytes("/dev/shm/tools/x"), sha256: sha, policy: policy, yara: flagged)
        #expect(refused.verdict == .deny && refused.rule == "yara")
        #expect(refused.reason.contains("packed from /etc/shmwarden/yara/x.yar"))
        let clean = GuardDecision.decide(path: PathBytes("/dev/shm/y"), sha256: sha, policy: policy, yara: verdict([]))
        #expect(clean.verdict == .allow && clean.rule == "unknown")
        var allowlisted = policy
        allowlisted.allowlist.sha256 = [sha]
        let trusted = GuardDecision.decide(
            path: PathBytes("/dev/shm/y"), sha256: sha, policy: allowlisted, yara: flagged)
        #expect(trusted.verdict == .allow && trusted.rule == "allowlist-sha256")
    }

    @Test func configFileYaraSection() {
        guard
            case .success(let file) = ConfigFile.parse(
                "yara: {rules: [/etc/shmwarden/yara, /opt/forge.yar], max-file-size: 8M, timeout: 5s, threads: 2}\n",
                file: "c.yaml")
        else {
            Issue.record("a valid yara section was refused")
            return
        }
        #expect(file.yara.rules == ["/etc/shmwarden/yara", "/opt/forge.yar"])
        #expect(file.yara.maxFileSize == 8 << 20 && file.yara.timeoutSeconds == 5 && file.yara.threads == 2)
        guard
            case .failure(let errors) = ConfigFile.parse(
                "yara:\n  rules: [relative.yar]\n  timeout: 500ms\n  threads: 0\n  colour: red\n", file: "c.yaml")
        else {
            Issue.record("an invalid yara section was taken")
            return
        }
        let text = errors.description
        #expect(text.contains("c.yaml:2:") && text.contains("absolute paths"))
        #expect(text.contains("c.yaml:3:") && text.contains("whole seconds"))
        #expect(text.contains("c.yaml:4:") && text.contains("threads"))
        #expect(text.contains("c.yaml:5:") && text.contains("unknown key 'colour'"))
    }

    @Test func verdictJSONAndReportFacts() throws {
        var found = verdict([("packed", ["packer"])], status: .truncated)
        found.matches[0].metadata = [
            YaraMeta(key: "description", value: "UPX markers"), YaraMeta(key: "score", value: "70"),
        ]
        found.matches[0].strings = [YaraStringMatch(identifier: "$magic", offsets: [16, 4096], count: 9)]
        found.size = 100
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(found)) as? [String: Any]
        #expect(json?["status"] as? String == "truncated" && json?["matched"] as? Bool == true)
        #expect((json?["matches"] as? [[String: Any]])?.first?["rule"] as? String == "packed")
        let facts = ReportBuilder.yaraFacts(found)
        #expect(
            facts == [
                "Matched YARA rule packed from /etc/shmwarden/yara/x.yar (tags packer) (only its first 10 of 100 bytes were scanned: yara.max-file-size); the rule's metadata says description: \"UPX markers\"; its strings matched: $magic at offset 0x10, 0x1000 (9 matches)."
            ])
        #expect(ReportBuilder.yaraFacts(verdict([])) == ["No rule of the YARA rule set f00d matched its bytes."])
        var timedOut = verdict([], status: .timeout)
        timedOut.detail = "over 10 s"
        #expect(
            ReportBuilder.yaraFacts(timedOut) == ["The YARA scan (rule set f00d) gave no answer: timeout, over 10 s."])
    }
}
