// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

private func parse(_ text: String, file: String = "p.yaml") throws -> Policy {
    let document = try PolicyParser.parse(text, file: file).get()
    return try PolicyParser.merge([document]).get()
}

private func errors(_ text: String, file: String = "p.yaml") -> [String] {
    switch PolicyParser.parse(text, file: file) {
    case .success(let document):
        switch PolicyParser.merge([document]) {
        case .success: return []
        case .failure(let errors): return errors.errors.map(\.description)
        }
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

private func shmFile(
    _ path: String = "/dev/shm/x", kind: FileKind = .elf, size: Int64 = 4096,
    sha: String? = String(repeating: "a", count: 64),
    state: FileState = .present
) -> PolicyFile {
    PolicyFile(
        fileID: 7, path: PathBytes(path), mountPoint: PathBytes("/dev/shm"), kind: kind, size: size, sha256: sha,
        state: state, device: 42, inode: 99)
}

@Suite struct PolicyParserTests {
    static let full = """
        version: 1
        mode: enforce
        allowlist:
          sha256:
            - AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
          paths: [/dev/shm/.org.chromium.*]
        rules:
          - name: shm-exec
            description: Falco saw a binary run from /dev/shm
            match:
              rule: [Execution from /dev/shm, Drop and execute new binary in container]
              priority: ">=Warning"
              tags: mitre_execution
              source: syscall
              fields:
                user.uid: 0
                container.id: {not: host}
                proc.cmdline: {contains: fast}
                proc.exepath: {glob: /dev/shm/*}
                fd.name: {exists: true}
              file:
                kind: [elf, script]
                mount: /dev/shm
                size: <=64MiB
            actions:
              - record
              - quarantine
              - action: kill-process
                signal: SIGTERM
              - action: remount-noexec
                flags: [noexec, nosuid]
              - action: sandbox
                timeout: 30
            continue: true
          - name: drops
            on: dropped-executable
            match:
              file: {kind: elf, path: "/dev/shm/**"}
            actions: [advise-noexec]
        """

    @Test func readsEveryPart() throws {
        let policy = try parse(Self.full)
        #expect(policy.mode == .enforce)
        #expect(policy.allowlist.sha256 == [String(repeating: "a", count: 64)])
        #expect(policy.allowlist.paths == [PathGlob("/dev/shm/.org.chromium.*")])
        #expect(policy.rules.map(\.name) == ["shm-exec", "drops"])
        let rule = policy.rules[0]
        #expect(rule.line == 8)
        #expect(rule.continues)
        #expect(rule.match.rules == ["Execution from /dev/shm", "Drop and execute new binary in container"])
        #expect(rule.match.priority == PriorityCondition(.atLeast, .warning))
        #expect(rule.match.tags == ["mitre_execution"])
        #expect(rule.match.fields.count == 5)
        #expect(rule.match.file?.size == SizeCondition(.atMost, 64 << 20))
        #expect(
            rule.actions == [
                .record, .quarantine, .killProcess(signal: .term), .remountNoexec(flags: [.noexec, .nosuid]),
                .sandbox(timeoutSeconds: 30),
            ])
        #expect(policy.rules[1].trigger == .droppedExecutable)
        #expect(policy.rules[1].actions == [.adviseNoexec])
        #expect(!policy.rules[1].continues)
    }

    @Test func everyErrorHasItsLineAndReason() {
        let text = """
            mode: enforced
            colour: blue
            allowlist:
              sha256: [abc]
              paths: [relative/*]
            rules:
              - name: a
                match:
                  priority: ">=Loud"
                  file: {kind: binary, size: "<=lots"}
                  fields:
                    proc.name: {startswith: x}
                actions:
                  - explode
                  - action: kill-process
                    signal: HUP
                  - action: quarantine
                    signal: KILL
                  - action: sandbox
                    timeout: 0
                  - action: remount-noexec
                    flags: [nosuid]
              - match: {rule: x}
              - name: b
                on: dropped-executable
                match: {priority: Warning}
                actions: [record]
            """
        let found = errors(text)
        let expected = [
            "p.yaml:1:7: mode must be 'monitor' or 'enforce', not 'enforced'",
            "p.yaml:2:1: the policy: unknown key 'colour' (expected one of: version, mode, allowlist, rules, guard, protect)",
            "p.yaml:4:12: allowlist sha256 'abc' is not a SHA-256 (64 hexadecimal digits)",
            "p.yaml:5:11: allowlist path 'relative/*' must be an absolute path or glob (starting with /)",
            "p.yaml:14:9: unknown action 'explode' (expected one of: record, quarantine, kill-process, advise-noexec, remount-noexec, sandbox)",
            "p.yaml:16:17: signal 'HUP' is not one of: KILL, TERM, STOP",
            "p.yaml:18:9: action 'quarantine' takes no 'signal' parameter",
            "p.yaml:20:18: timeout must be a whole number of seconds from 1 to 3600",
            "p.yaml:22:16: flags of remount-noexec must include noexec",
            "p.yaml:9:17: priority '>=Loud' is not a comparison like '>=Warning' (operators >=, >, <=, <, ==; priorities Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)",
            "p.yaml:10:20: kind 'binary' is not one of: elf, script, other",
            "p.yaml:10:34: size '<=lots' is not a comparison like '<=64MiB' (units B, KiB, MiB, GiB)",
            "p.yaml:12:21: field 'proc.name': unknown key 'startswith' (expected one of: in, not, prefix, contains, glob, exists)",
            "p.yaml:12:20: field 'proc.name' takes exactly one of: in, not, prefix, contains, glob, exists",
            "p.yaml:23:5: a rule needs a 'name'",
            "p.yaml:23:5: rule '?' needs 'actions' (at least 'record')",
            "p.yaml:26:13: 'priority' is about a Falco alert, and an 'on: dropped-executable' rule has none",
        ]
        for line in expected {
            #expect(found.contains(line), "missing: \(line)\nfound:\n\(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    @Test func yamlSyntaxAndDuplicateKeysAreErrorsWithLines() {
        #expect(errors("mode: monitor\nrules: [\n").first?.hasPrefix("p.yaml:3:") == true)
        let duplicate = errors("mode: monitor\nmode: enforce\n")
        #expect(duplicate.count == 1 && duplicate[0].contains("duplicate key 'mode'"), "\(duplicate)")
        #expect(errors("") == ["p.yaml: the file is empty"])
        #expect(errors("rules: []\n") == ["p.yaml: no 'mode' set: add 'mode: monitor' or 'mode: enforce'"])
        #expect(errors("- a\n- b\n").first == "p.yaml:1:1: the policy must be a mapping (key: value lines)")
    }

    @Test func mergeRejectsConflictingModesAndRepeatedNames() throws {
        let one = try PolicyParser.parse("mode: monitor\nrules: [{name: r, actions: [record]}]\n", file: "a.yaml").get()
        let two = try PolicyParser.parse("mode: enforce\nrules: [{name: r, actions: [record]}]\n", file: "b.yaml").get()
        let merged = PolicyParser.merge([one, two])
        guard case .failure(let problems) = merged else {
            Issue.record("conflicting files merged")
            return
        }
        #expect(
            problems.errors.map(\.description) == [
                "b.yaml:1: mode 'enforce' conflicts with mode 'monitor' set in a.yaml; one policy has one mode",
                "b.yaml:2: rule name 'r' is already used in a.yaml",
            ])
        let allowOnly = try PolicyParser.parse("allowlist: {paths: [/dev/shm/ok]}\n", file: "c.yaml").get()
        let policy = try PolicyParser.merge([one, allowOnly]).get()
        #expect(policy.mode == .monitor && policy.allowlist.paths.count == 1 && policy.sources == ["a.yaml", "c.yaml"])
    }

    @Test func repeatedRuleNamesInOneFile() {
        let found = errors(
            "mode: monitor\nrules:\n  - {name: a, actions: [record]}\n  - {name: a, actions: [record]}\n")
        #expect(found == ["p.yaml:4:5: rule name 'a' is already used at line 3"])
    }

    @Test func disabledRulesAreLeftOut() throws {
        let policy = try parse("mode: monitor\nrules:\n  - {name: off, enabled: false, actions: [record]}\n")
        #expect(policy.rules.isEmpty)
    }
}

@Suite struct PolicyEvaluatorTests {
    let alert = try! FalcoAlert.decode(Data(AlertFixtures.executionFromDevShm.utf8))

    @Test func priorityComparisons() {
        #expect(PriorityCondition(parsing: ">=Warning")!.matches(.critical))
        #expect(PriorityCondition(parsing: ">= warning")!.matches(.warning))
        #expect(!PriorityCondition(parsing: ">=Warning")!.matches(.notice))
        #expect(PriorityCondition(parsing: "<Warning")!.matches(.debug))
        #expect(!PriorityCondition(parsing: ">Critical")!.matches(.critical))
        #expect(PriorityCondition(parsing: "Critical")!.matches(.critical))
        #expect(PriorityCondition(parsing: "==Informational")!.matches(.informational))
        #expect(PriorityCondition(parsing: "=>Warning") == nil)
    }

    @Test func sizesWithUnits() {
        #expect(SizeCondition(parsing: "<=64MiB") == SizeCondition(.atMost, 67_108_864))
        #expect(SizeCondition(parsing: "> 0") == SizeCondition(.above, 0))
        #expect(SizeCondition(parsing: "4096") == SizeCondition(.equal, 4096))
        #expect(SizeCondition(parsing: "1KB") == nil)
        #expect(SizeCondition(parsing: "-1") == nil)
        #expect(SizeCondition(parsing: "99999999999GiB") == nil)
    }

    @Test func fieldConditionsOnAllValueKinds() {
        let uid = FieldCondition(field: "user.uid", test: .oneOf(["0"]))
        #expect(uid.matches(alert))
        #expect(FieldCondition(field: "container.id", test: .noneOf(["host"])).matches(alert) == false)
        #expect(FieldCondition(field: "absent.field", test: .noneOf(["host"])).matches(alert))
        #expect(FieldCondition(field: "proc.exepath", test: .glob(PathGlob("/dev/shm/*"))).matches(alert))
        #expect(FieldCondition(field: "proc.cmdline", test: .prefix("x ")).matches(alert))
        #expect(FieldCondition(field: "proc.cmdline", test: .contains("--fast")).matches(alert))
        #expect(FieldCondition(field: "fd.name", test: .exists(true)).matches(alert))
        #expect(FieldCondition(field: "proc.pid", test: .exists(false)).matches(alert))
        #expect(FieldCondition(field: "user.loginuid", test: .oneOf(["-1"])).matches(alert))
    }

    @Test func monitorPlansEnforcePerformsAndRecordAlwaysRuns() throws {
        let text = """
            mode: MODE
            rules:
              - name: shm
                match: {rule: Execution from /dev/shm, priority: ">=Warning"}
                actions: [record, quarantine, advise-noexec, remount-noexec, sandbox]
            """
        for (mode, expected) in [("monitor", PlannedAction.Disposition.plan), ("enforce", .perform)] {
            let policy = try parse(text.replacingOccurrences(of: "MODE", with: mode))
            let plan = PolicyEvaluator.evaluate(policy, for: .alert(id: "a1", alert, files: [shmFile()]))
            #expect(plan.map(\.action.kind) == [.record, .quarantine, .adviseNoexec, .remountNoexec, .sandbox])
            #expect(plan.map(\.disposition) == [.perform, expected, .perform, expected, expected])
            #expect(plan[1].files.map(\.fileID) == [7])
        }
    }

    @Test func firstMatchStopsUnlessContinue() throws {
        let text = """
            mode: enforce
            rules:
              - {name: one, match: {tags: [mitre_execution]}, actions: [record], continue: CONT}
              - {name: two, actions: [advise-noexec]}
              - {name: never, match: {rule: Other}, actions: [quarantine]}
            """
        let stop = try parse(text.replacingOccurrences(of: "CONT", with: "false"))
        #expect(PolicyEvaluator.evaluate(stop, for: .alert(id: "a", alert, files: [shmFile()])).map(\.rule) == ["one"])
        let go = try parse(text.replacingOccurrences(of: "CONT", with: "true"))
        #expect(
            PolicyEvaluator.evaluate(go, for: .alert(id: "a", alert, files: [shmFile()])).map(\.rule) == ["one", "two"])
    }

    @Test func allowlistAndFileFacts() throws {
        let sha = String(repeating: "b", count: 64)
        let policy = try parse(
            """
            mode: enforce
            allowlist: {sha256: [\(sha)], paths: ["/dev/shm/ok-*"]}
            rules:
              - name: big-scripts
                match: {file: {kind: script, size: ">1KiB"}}
                actions: [quarantine]
                continue: true
              - name: any
                actions: [quarantine, kill-process]
            """)
        let allowedByHash = shmFile(sha: sha)
        var allowedByPath = shmFile("/dev/shm/ok-1")
        allowedByPath.ownershipTrusted = true
        var plan = PolicyEvaluator.evaluate(policy, for: .alert(id: "a", alert, files: [allowedByHash, allowedByPath]))
        #expect(plan.map(\.rule) == ["any", "any"])
        guard case .skip(let reason) = plan[0].disposition else {
            Issue.record("allowlisted file quarantined")
            return
        }
        #expect(reason.contains("sha256 \(sha) is allowlisted") && reason.contains("allowlisted glob /dev/shm/ok-*"))
        #expect(plan[1].disposition == plan[0].disposition)

        let script = shmFile("/dev/shm/s.sh", kind: .script, size: 2048)
        plan = PolicyEvaluator.evaluate(policy, for: .alert(id: "a", alert, files: [script, shmFile()]))
        #expect(plan.map(\.rule) == ["big-scripts", "any", "any"])
        #expect(plan[0].files.map(\.path) == [PathBytes("/dev/shm/s.sh")])
        #expect(plan[1].files.count == 2)
        // The alert has no proc.pid: nothing to kill.
        #expect(plan[2].disposition == .skip("the alert has no proc.pid"))

        // A glob vouches only where the file's owners do: anyone may create /dev/shm/ok-2.
        var untrusted = shmFile("/dev/shm/ok-2")
        untrusted.ownershipTrusted = false
        plan = PolicyEvaluator.evaluate(policy, for: .alert(id: "a", alert, files: [untrusted]))
        #expect(plan.map(\.rule) == ["any", "any"])
        #expect(plan[0].disposition == .perform && plan[0].files.map(\.path) == [PathBytes("/dev/shm/ok-2")])
        #expect(
            plan[0].notes.count == 1
                && plan[0].notes[0].contains("matches allowlisted glob /dev/shm/ok-*, which did not count"))
    }

    @Test func droppedExecutableRulesNeedNoAlert() throws {
        let policy = try parse(
            """
            mode: enforce
            rules:
              - {name: on-alert, actions: [record]}
              - {name: drop, on: dropped-executable, match: {file: {path: "/dev/shm/**"}}, actions: [quarantine, kill-process]}
            """)
        let plan = PolicyEvaluator.evaluate(policy, for: .droppedExecutable(shmFile("/dev/shm/a/b")))
        #expect(plan.map(\.rule) == ["drop", "drop"])
        #expect(plan[0].disposition == .perform)
        #expect(plan[1].disposition == .skip("no alert names a process"))
        #expect(PolicyEvaluator.evaluate(policy, for: .droppedExecutable(shmFile("/run/x"))).isEmpty)
        #expect(
            PolicyEvaluator.evaluate(policy, for: .droppedExecutable(shmFile(state: .deleted))).first?.disposition
                == .skip("the file is no longer in place (deleted)"))
    }

    /// A file taken from a running process names its process by the kernel's pid: kill-process
    /// acts on it without an alert; a rule that matches alert facts is refused at load.
    @Test func filelessExecutableRulesKillTheProcessTheyWereTakenFrom() throws {
        let policy = try parse(
            """
            mode: enforce
            allowlist:
              fileless-parents: [/usr/bin/runc]
            rules:
              - {name: drop, on: dropped-executable, actions: [kill-process]}
              - {name: fileless, on: fileless-executable, match: {file: {kind: elf}}, actions: [kill-process]}
            """)
        #expect(policy.allowlist.filelessParents.contains("/usr/bin/runc"))
        let plan = PolicyEvaluator.evaluate(policy, for: .filelessExecutable(shmFile("/memfd:x (deleted)"), pid: 4242))
        #expect(plan.map(\.rule) == ["fileless"])
        #expect(plan.first?.disposition == .perform)
        let refused = PolicyParser.parse(
            """
            rules:
              - {name: bad, on: fileless-executable, match: {rule: x}, actions: [record]}
              - {name: worse, on: memfd, actions: [record]}
            """, file: "p.yaml")
        guard case .failure(let errors) = refused else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors.count == 2)
        #expect(errors.errors[0].reason.contains("an 'on: fileless-executable' rule has none"))
        #expect(errors.errors[1].reason.contains("'fileless-executable'"))
        let relative = PolicyParser.parse("allowlist: {fileless-parents: [runc]}\n", file: "p.yaml")
        guard case .failure(let relativeErrors) = relative else {
            Issue.record("accepted a relative parent")
            return
        }
        #expect(relativeErrors.errors.first?.reason.contains("absolute executable paths") == true)
    }
}
