// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenResponse
import WardenStore
import WardenTestSupport
import WardenYara

private func policy(_ text: String) throws -> Policy {
    try PolicyParser.merge([try PolicyParser.parse(text, file: "test.yaml").get()]).get()
}

/// The agent's configuration with the shipped YARA rules loaded.
private func withShippedRules(_ configuration: inout AgentConfiguration) {
    configuration.yara = YaraSettings(rules: [YaraSamples.shippedRules()])
    configuration.yaraRules = try? YaraRuleSet.load(configuration.yara.rules).get()
}

/// An agent on `mount` with the shipped rules and this `guard:` section, in monitor mode otherwise.
private func yaraGuardedAgent(on mount: TestMount, guard section: String) async throws -> AgentHarness {
    try await AgentHarness(
        watch: [mount.path], policy: try policy("mode: monitor\nguard: \(section)\n"), configure: withShippedRules)
}

/// The stored verdict on `sha256`, polled until there is one (10 s at most).
private func waitForVerdict(_ database: EvidenceDatabase, _ sha256: String) async throws -> YaraVerdict? {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
        if let verdict = try database.yaraVerdicts([sha256])[sha256] { return verdict }
        try await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

extension AgentIntegration {
    /// YARA verdicts through the running agent: real libyara, real tmpfs, real fanotify.
    @Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestEnvironment.isRoot))
    struct YaraTests {
        /// A dropped miner script is quarantined because the YARA rule matched it (enforce mode);
        /// a benign script dropped beside it is scanned, found clean, and left alone.
        @Test func aYaraMatchDrivesAQuarantine() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path],
                    policy: try policy(
                        """
                        mode: enforce
                        rules:
                          - name: miners
                            on: dropped-executable
                            match: {yara: {tags: [miner]}}
                            actions: [quarantine]
                        """), configure: withShippedRules)
            ) { agent in
                let miner = mount.child("kworker.sh")
                let benign = mount.child("cron.sh")
                let minerSHA = try drop(YaraSamples.minerScript, at: miner)
                let benignSHA = try drop(YaraSamples.benignScript, at: benign)
                let records = try await agent.waitForFiles {
                    $0.contains { $0.path == PathBytes(miner) && $0.state == .quarantined }
                }
                #expect(records.first { $0.path == PathBytes(miner) }?.sha256 == minerSHA)
                #expect(access(miner, F_OK) != 0, "the miner is gone")
                let verdicts = try agent.database.yaraVerdicts([minerSHA, benignSHA])
                let minerVerdict = try #require(verdicts[minerSHA])
                #expect(
                    minerVerdict.status == .complete && minerVerdict.matches.map(\.rule) == ["shmwarden_miner_pool_url"]
                )
                // The benign script's scan finishes too: no match, still in place.
                let benignVerdict = try await waitForVerdict(agent.database, benignSHA)
                #expect(benignVerdict?.status == .complete && benignVerdict?.matches.isEmpty == true)
                #expect(access(benign, F_OK) == 0, "the benign script stays")
                let actions = try agent.database.actions()
                #expect(actions.map(\.action) == ["quarantine"] && actions.first?.outcome == .performed, "\(actions)")
                // `files` shows the verdict with the record.
                let shown = try agent.database.withYaraVerdicts(agent.database.files(FileQuery()))
                #expect(shown.first { $0.sha256 == minerSHA }?.yara?.matches.first?.tags == ["miner"])
            }
        }

        /// `guard.yara` refuses an ELF the rules flag at its first exec, within the deadline;
        /// with `guard.unknown: allow`, a clean unknown ELF runs.
        @Test func theGuardRefusesAYaraMatchAtFirstSight() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                yaraGuardedAgent(
                    on: mount,
                    guard: "{mode: enforce, unknown: allow, failure: deny, deadline: 2s, yara: {tags: [packer]}}")
            ) { agent in
                try await agent.waitForGuard()
                let packed = mount.child("packed")
                let clean = mount.child("clean")
                let packedSHA = try drop(YaraSamples.elfWithoutSectionHeaders, at: packed)
                try drop(YaraSamples.benignELF + [0], at: clean)
                #expect(try await execStatus(packed) == 126, "the flagged ELF is refused")
                #expect(try await execStatus(clean) == 0, "a clean unknown ELF runs (guard.unknown: allow)")
                #expect(try await execStatus(packed) == 126, "and stays refused")
                var execs: [ExecRecord] = []
                let deadline = ContinuousClock.now + .seconds(10)
                while execs.count < 3 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    execs = try agent.database.execs()
                }
                let refused = execs.filter { $0.path == PathBytes(packed) }
                #expect(
                    refused.count == 2 && refused.allSatisfy { $0.verdict == .deny && $0.rule == "yara" }, "\(execs)")
                #expect(refused.first?.reason.contains("shmwarden_elf_without_section_headers") == true)
                #expect(refused.first?.cached == false && refused.last?.cached == true)
                #expect(execs.first { $0.path == PathBytes(clean) }?.verdict == .allow)
                // The guard's verdict is stored like the capture's.
                #expect(try agent.database.yaraVerdicts([packedSHA])[packedSHA]?.matches.isEmpty == false)
            }
        }

        /// A scan that does not fit the deadline: the exec is answered per `guard.failure`, the
        /// scan goes on off the exec's path, and its verdict refuses the next exec.
        @Test func aScanPastTheDeadlineDecidesTheNextExec() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                yaraGuardedAgent(
                    on: mount,
                    guard: "{mode: enforce, unknown: allow, failure: allow, deadline: 1ms, yara: {tags: [packer]}}")
            ) { agent in
                try await agent.waitForGuard()
                // 8 MiB: read, hashed and scanned in far more than a millisecond.
                let large = YaraSamples.elfWithoutSectionHeaders + [UInt8](repeating: 0x41, count: 8 << 20)
                let path = mount.child("large-packed")
                let sha = try drop(large, at: path)
                #expect(try await execStatus(path) == 0, "answered per guard.failure (allow) at the deadline")
                let verdict = try await waitForVerdict(agent.database, sha)
                #expect(verdict?.matches.map(\.rule) == ["shmwarden_elf_without_section_headers"])
                let deadline = ContinuousClock.now + .seconds(10)
                #expect(try await execStatus(path) == 126, "the finished scan refuses the next exec")
                var execs: [ExecRecord] = []
                while execs.count < 2 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    execs = try agent.database.execs().filter { $0.path == PathBytes(path) }
                }
                #expect(execs.first?.rule == "failure" && execs.first?.verdict == .allow, "\(execs)")
                #expect(execs.first?.reason.contains("deadline") == true, "\(execs.first?.reason ?? "")")
                #expect(
                    execs.last?.rule == "yara" && execs.last?.verdict == .deny,
                    "\(execs.map { ($0.rule, $0.verdict, $0.reason) })")
            }
        }

        /// An alert about a flagged file: its report cites the match as a fact, with the rule's
        /// own metadata.
        @Test func aReportCitesTheMatch() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], configure: withShippedRules), keepState: false) {
                agent in
                let path = mount.child("shell.sh")
                let sha = try drop(YaraSamples.reverseShellScript, at: path)
                _ = try await waitForVerdict(agent.database, sha)
                let file = try #require(try agent.database.withYaraVerdicts(agent.database.files(FileQuery())).first)
                let facts = ReportBuilder.yaraFacts(try #require(file.yara))
                #expect(facts.count == 1)
                #expect(facts.first?.hasPrefix("Matched YARA rule shmwarden_reverse_shell_oneliner from ") == true)
                #expect(facts.first?.contains("the rule's metadata says description: \"Contains a well-known") == true)
                #expect(facts.first?.contains("$dev_tcp at offset 0xc") == true, "\(facts)")
            }
        }
    }
}

extension AgentIntegration.YaraTests {
    /// `shmwarden run` with yara.rules: SIGHUP with a broken set keeps the old one (and says
    /// why, with the line), and captures are still scanned with it.
    @Test func hangupWithABrokenSetKeepsTheOldOne() async throws {
        try #require(Binary.exists, "build first: swift build")
        let mount = try TestMount()
        let state = makeStateDirectory()
        let rules = state + "-rules"
        let config = state + "-config.yaml"
        let log = state + "-log.txt"
        try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
        defer {
            mount.remove()
            for path in [state, rules, config, log] { try? FileManager.default.removeItem(atPath: path) }
        }
        try FileManager.default.copyItem(atPath: YaraSamples.shippedRules(), toPath: rules + "/shmwarden.yar")
        try "yara: {rules: [\(rules)]}\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (checked, checkOut, _) = try Binary.run(["config", "check", config])
        #expect(checked == 0 && checkOut.contains("4 rule(s) from 1 file(s)"), "\(checkOut)")
        let agent = try AgentProcess(
            [
                "--config", config, "--no-discover", "--watch", mount.path, "--no-listen", "--state-dir", state,
                "--log-level", "info",
            ], logFile: log)
        defer { agent.kill9() }
        #expect(try await agent.waitForLog("shmwarden running"))
        #expect(try await agent.waitForLog("YARA rules loaded"))
        try "rule broken {\n  condition:\n    true and\n}\n".write(
            toFile: rules + "/zz-broken.yar", atomically: true, encoding: .utf8)
        let (badCheck, _, badErrors) = try Binary.run(["config", "check", config])
        #expect(badCheck == 2 && badErrors.contains("\(rules)/zz-broken.yar:4: syntax error"), "\(badErrors)")
        kill(agent.process.processIdentifier, SIGHUP)
        #expect(try await agent.waitForLog("YARA rules not reloaded; the last good set stays"))
        #expect(try await agent.waitForLog("zz-broken.yar:4: syntax error"))
        try drop(YaraSamples.minerScript, at: mount.child("miner.sh"))
        #expect(try await agent.waitForLog("YARA rules matched a capture"))
        #expect(try await agent.waitForLog("yara.rules=shmwarden_miner_pool_url"))
        #expect(agent.process.isRunning)
    }
}

extension AgentIntegration.YaraTests {
    /// `yara test` says by its exit code whether a rule matched, and `scan --yara` finds the
    /// samples among benign files, mapped (as `yara` does) or read as captures are, alike.
    @Test func theCommandsForRuleWriters() throws {
        try #require(Binary.exists, "build first: swift build")
        let directory = makeStateDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let samples: [(String, [UInt8])] = [
            ("miner.sh", YaraSamples.minerScript), ("sub/shell.sh", YaraSamples.reverseShellScript),
            ("sub/packed", YaraSamples.upxMarkedELF), ("true", YaraSamples.benignELF),
            ("cron.sh", YaraSamples.benignScript),
        ]
        for (name, bytes) in samples { try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name)) }
        let rules = YaraSamples.shippedRules()
        let (matched, out, _) = try Binary.run(["yara", "test", rules, directory + "/miner.sh"])
        #expect(matched == 0 && out.contains("shmwarden_miner_pool_url") && out.contains("$tcp at 0x"), "\(out)")
        #expect(try Binary.run(["yara", "test", rules, directory + "/true"]).0 == 1)
        let broken = directory + "/broken.yar"
        try "rule x {\n  condition:\n    filesize >\n}\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let (refused, _, errors) = try Binary.run(["yara", "test", broken, directory + "/true"])
        #expect(refused == 2 && errors.contains("\(broken):4: syntax error"), "\(errors)")
        for extra in [[], ["--as-captured"]] {
            let (status, json, _) = try Binary.run(
                ["scan", "--yara", "--rules", rules, "--json"] + extra + [directory])
            #expect(status == 0)
            let found = try #require(try Binary.json(json, as: [[String: Any]].self))
            let paths = Set(found.compactMap { $0["path"] as? String })
            #expect(paths == Set(["miner.sh", "sub/shell.sh", "sub/packed"].map { directory + "/" + $0 }), "\(paths)")
        }
        #expect(try Binary.run(["scan", "--yara", directory]).0 == 2, "no rules configured: bad input")
        // The recording pass scans what it records too, with the configured rules.
        let config = directory + "/config.yaml"
        try "yara: {rules: [\(rules)]}\n".write(toFile: config, atomically: true, encoding: .utf8)
        chmod(directory + "/miner.sh", 0o755)
        let (scanned, recorded, _) = try Binary.run([
            "scan", "--config", config, "--no-discover", "--watch", directory, "--state-dir", directory + "/state",
            "--json",
        ])
        #expect(scanned == 0)
        let summary = try #require(try Binary.json(recorded))
        let files = try #require(summary["files"] as? [[String: Any]])
        let miner = try #require(files.first { ($0["path"] as? String)?.hasSuffix("/miner.sh") == true })
        let yara = try #require(miner["yara"] as? [String: Any])
        #expect(yara["matched"] as? Bool == true && yara["status"] as? String == "complete", "\(yara)")
    }
}

extension AgentIntegration.YaraTests {
    /// What a sandboxed sample writes is scanned once its run ends, and `sandbox --show` says
    /// what matched.
    @Test func filesASandboxedSampleWroteAreScanned() async throws {
        try #require(Binary.exists, "build first: swift build")
        let mount = try TestMount()
        defer { mount.remove() }
        let harness = try await AgentHarness(
            watch: [mount.path],
            policy: try policy(
                """
                mode: enforce
                rules:
                  - {name: detonate, on: dropped-executable, match: {file: {kind: script}}, actions: [{action: sandbox, timeout: 10}]}
                """), configure: withShippedRules)
        defer { try? FileManager.default.removeItem(atPath: harness.stateDirectory) }
        let written = Array("{\"pools\": [{\"url\": \"stratum+tcp://pool.example.org:3333\"}]}\n".utf8)
        let writtenSHA = sha256Hex(written)
        try await withAgent(harness, keepState: true) { agent in
            try drop(
                Array(
                    "#!/bin/sh\nprintf '%s\\n' '{\"pools\": [{\"url\": \"stratum+tcp://pool.example.org:3333\"}]}' > /tmp/config.json\n"
                        .utf8),
                at: mount.child("setup.sh"))
            let verdict = try await waitForVerdict(agent.database, writtenSHA)
            #expect(verdict?.matches.map(\.rule) == ["shmwarden_miner_pool_url"], "\(String(describing: verdict))")
        }
        let runs = try EvidenceDatabase(path: harness.stateDirectory + "/shmwarden.sqlite").latestSandboxRuns(limit: 1)
        let run = try #require(runs.first)
        let (status, out, _) = try Binary.run(["sandbox", "--show", run.id, "--state-dir", harness.stateDirectory])
        #expect(status == 0 && out.contains("wrote: /tmp/config.json"), "\(out)")
        #expect(out.contains("yara: matched shmwarden_miner_pool_url"), "\(out)")
    }
}
