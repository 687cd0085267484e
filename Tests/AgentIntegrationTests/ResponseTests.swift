// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenResponse
import WardenSandbox
import WardenStore

private func policy(_ text: String) throws -> Policy {
    try PolicyParser.merge([try PolicyParser.parse(text, file: "test.yaml").get()]).get()
}

/// An agent on `mount` in enforce mode that runs each dropped executable of `kind` in the sandbox.
private func detonatingAgent(on mount: TestMount, kind: String, timeout: Int) async throws -> AgentHarness {
    try await AgentHarness(
        watch: [mount.path],
        policy: try policy(
            """
            mode: enforce
            rules:
              - {name: detonate, on: dropped-executable, match: {file: {kind: \(kind)}}, actions: [{action: sandbox, timeout: \(timeout)}]}
            """))
}

extension AgentIntegration {
    /// Responses through the running agent and through the command line.
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct ResponseTests {
        @Test(.enabled(if: TestEnvironment.isRoot))
        func aDroppedELFIsQuarantinedWithoutAnyAlert() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path],
                    policy: try policy(
                        """
                        mode: enforce
                        rules:
                          - {name: drops, on: dropped-executable, match: {file: {kind: elf}}, actions: [quarantine]}
                        """))
            ) { agent in
                let path = mount.child("implant")
                let sha = try drop(trueBinary, at: path)
                let records = try await agent.waitForFiles {
                    $0.contains { $0.path == PathBytes(path) && $0.state == .quarantined }
                }
                #expect(records.first { $0.path == PathBytes(path) }?.sha256 == sha)
                #expect(access(path, F_OK) != 0, "the original is gone")
                let actions = try agent.database.actions()
                #expect(actions.map(\.action) == ["quarantine"] && actions.first?.outcome == .performed)
                let entries = try QuarantineVault(directory: agent.stateDirectory + "/quarantine").entries()
                #expect(entries.map(\.sha256) == [sha])
            }
        }

        /// The sandbox action runs on its own thread and is audited when the run ends.
        @Test(.enabled(if: TestEnvironment.isRoot))
        func aDroppedELFIsRunInTheSandbox() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(detonatingAgent(on: mount, kind: "elf", timeout: 5)) { agent in
                let sha = try drop(trueBinary, at: mount.child("sample"))
                var actions: [ActionRecord] = []
                let deadline = ContinuousClock.now + .seconds(20)
                while actions.isEmpty && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                    actions = try agent.database.actions().filter { $0.action == "sandbox" }
                }
                let row = try #require(actions.first)
                #expect(row.outcome == .performed && row.detail.contains("It exited with code 0"), "\(row.detail)")
                let runs = try agent.database.sandboxRuns(sha256: [sha])
                #expect(runs.count == 1 && runs.first?.verdict.first?.hasPrefix("It exited with code 0") == true)
                // It runs under the dropped file's own name, not its evidence copy's (the hash).
                let report = try JSONSerialization.jsonObject(with: Data((runs.first?.reportJSON ?? "{}").utf8))
                #expect((report as? [String: Any])?["argv"] as? [String] == ["/sample/sample"], "\(report)")
            }
        }

        /// A stop does not wait for a queue of sandbox runs: the run under way ends, and each run
        /// not yet started is audited as skipped (none is dropped silently).
        @Test(.enabled(if: TestEnvironment.isRoot))
        func aStopSkipsTheSandboxRunsNotYetStarted() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let agent = try await withAgent(detonatingAgent(on: mount, kind: "script", timeout: 10), keepState: true) {
                agent in
                let token = UInt32.random(in: 0...UInt32.max)
                for index in 0..<3 {
                    try drop(
                        Array("#!/bin/sh\nsleep 3 # \(token) \(index)\n".utf8), at: mount.child("stage\(index).sh"))
                }
                // The first run is under way: a shell of a sandbox uid sleeping.
                func sleeping() -> Bool {
                    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { pid in
                        guard Int(pid) != nil,
                            let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                            String(decoding: command, as: UTF8.self) == "sleep\u{0}3\u{0}",
                            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                            let uid = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })?
                                .split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({
                                    UInt32($0)
                                }
                                )
                        else { return false }
                        return SandboxRunner.identities.contains(uid)
                    }
                }
                let deadline = ContinuousClock.now + .seconds(20)
                while !sleeping() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                try #require(sleeping(), "the first sandbox run never started")
                return agent
            }
            defer { try? FileManager.default.removeItem(atPath: agent.stateDirectory) }
            let rows = try agent.database.actions().filter { $0.action == "sandbox" }
            #expect(rows.count == 3, "\(rows.map(\.detail))")
            #expect(rows.filter { $0.outcome == .performed }.count == 1, "\(rows.map(\.detail))")
            let skipped = rows.filter { $0.outcome == .skipped }
            #expect(skipped.count == 2 && skipped.allSatisfy { $0.detail == "the agent stopped before it ran" })
        }

        @Test func monitorModePlansForAPostedAlertAndTouchesNothing() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let (id, path, state) = try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, bearerToken: "t0ken", insecure: true),
                    policy: try policy(
                        """
                        mode: monitor
                        rules:
                          - name: shm
                            match: {rule: Execution from /dev/shm, priority: ">=Warning"}
                            actions: [record, quarantine, kill-process, advise-noexec]
                        """)), keepState: true
            ) { agent in
                let port = await agent.services.listening.port()
                let path = mount.child("dropper")
                _ = try drop(trueBinary, at: path)
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                let token = ["Authorization": "Bearer t0ken"]
                let (status, body, _) = try await post(
                    "http://127.0.0.1:\(port)/falco", devShmAlert(exepath: path), headers: token)
                #expect(status == 200)
                let id = try #require(body["id"] as? String)
                var actions: [ActionRecord] = []
                let deadline = ContinuousClock.now + .seconds(10)
                while actions.count < 4 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    actions = try agent.database.alert(id: id)?.actions ?? []
                }
                #expect(actions.map(\.action) == ["record", "quarantine", "kill-process", "advise-noexec"])
                #expect(actions.map(\.outcome) == [.performed, .planned, .planned, .performed])
                #expect(access(path, F_OK) == 0, "monitor mode touched the file")

                // The report of that alert, over HTTP, in both forms.
                let (jsonStatus, jsonText) = try await get(
                    "http://127.0.0.1:\(port)/alerts/\(id)/report?format=json", headers: token)
                #expect(jsonStatus == 200)
                let report = try #require(try JSONSerialization.jsonObject(with: Data(jsonText.utf8)) as? [String: Any])
                #expect((report["summary"] as? [String: Any])?["rule"] as? String == "Execution from /dev/shm")
                #expect((report["evidence"] as? [[String: Any]])?.first?["path"] as? String == path)
                #expect((report["actions"] as? [[String: Any]])?.count == 4)
                let (markdownStatus, markdown) = try await get(
                    "http://127.0.0.1:\(port)/alerts/\(id)/report", headers: token)
                #expect(markdownStatus == 200 && markdown.hasPrefix("# Execution from /dev/shm — Warning"))
                #expect(markdown.contains("shmwarden quarantine \(path)"))
                #expect(try await get("http://127.0.0.1:\(port)/alerts/nope/report", headers: token).0 == 404)
                // Without the token, no report: it reveals paths and command lines.
                #expect(try await get("http://127.0.0.1:\(port)/alerts/\(id)/report").0 == 401)
                #expect(
                    try await get("http://127.0.0.1:\(port)/alerts/\(id)/report?format=pdf", headers: token).0 == 400)
                return (id, path, agent.stateDirectory)
            }

            // And from the command line, on the same state.
            let (status2, stdout, _) = try Binary.run(["report", id, "--state-dir", state])
            #expect(status2 == 0 && stdout.contains("## Evidence"))
            // Once the sample has a sandbox run, the Markdown report holds it whole (the sandbox
            // needs root; CI is root).
            if getuid() == 0 {
                let (ran, run, runErrors) = try Binary.run([
                    "sandbox", "--json", "--state-dir", state, path,
                ])
                #expect(ran == 0, "\(runErrors)")
                let runID = try #require(try Binary.json(run)?["id"] as? String)
                let (status3, withRun, _) = try Binary.run(["report", id, "--state-dir", state])
                #expect(status3 == 0 && withRun.contains("\n### Sandbox run `\(runID)`\n"), "\(withRun)")
                #expect(withRun.contains("\n#### Verdict\n\n- It exited with code 0"), "\(withRun)")
            }
            #expect(try Binary.run(["report", "nope", "--state-dir", state]).0 == 2)
            #expect(try Binary.run(["report", id, "--format", "pdf", "--state-dir", state]).0 == 2)
            try? FileManager.default.removeItem(atPath: state)
        }

        /// kill -9 of `shmwarden quarantine` at every step: afterwards the sample is in place or
        /// in the quarantine (verified by hash), never neither, and nothing is left half-done.
        @Test(.enabled(if: TestEnvironment.isRoot), arguments: QuarantineStep.allCases)
        func aCrashAtAnyStepLosesNothing(step: QuarantineStep) throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            let state = makeStateDirectory()
            defer {
                mount.remove()
                try? FileManager.default.removeItem(atPath: state)
            }
            let path = mount.child("sample")
            let sha = try drop(trueBinary, at: path)
            let (_, reason) = try Binary.runProcess(
                ["quarantine", path, "--state-dir", state], environment: ["SHMWARDEN_TEST_CRASH_AT": step.rawValue])
            #expect(reason == .uncaughtSignal, "the helper must have died at \(step)")

            let (status, stdout, stderr) = try Binary.run(["quarantine", "list", "--json", "--state-dir", state])
            #expect(status == 0, "\(stderr)")
            let entries = try JSONDecoder().decode([QuarantineEntry].self, from: Data(stdout.utf8))
            let inPlace = FileManager.default.contents(atPath: path).map { sha256Hex(Array($0)) } == sha
            let quarantined = entries.contains { entry in
                entry.state == .quarantined
                    && FileManager.default.contents(atPath: entry.samplePath).map { sha256Hex(Array($0)) } == sha
            }
            #expect(inPlace != quarantined, "at \(step): in place \(inPlace), quarantined \(quarantined)")
            // Recovery left no journal, no partial copy and no claimed name behind.
            #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/quarantine/journal").isEmpty)
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: state + "/quarantine").allSatisfy {
                    $0 == "journal" || $0.hasSuffix(".sample") || $0.hasSuffix(".json")
                })
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: mount.path).allSatisfy {
                    !$0.hasPrefix(".shmwarden")
                })
        }

        @Test(.enabled(if: TestEnvironment.isRoot))
        func quarantineCommandsRoundTrip() throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            let state = makeStateDirectory()
            defer {
                mount.remove()
                try? FileManager.default.removeItem(atPath: state)
            }
            let path = mount.child("tool")
            let sha = try drop(trueBinary, at: path)
            let (status, stdout, stderr) = try Binary.run(["quarantine", path, "--json", "--state-dir", state])
            #expect(status == 0, "\(stderr)")
            let entry = try JSONDecoder().decode(QuarantineEntry.self, from: Data(stdout.utf8))
            #expect(entry.sha256 == sha && access(path, F_OK) != 0)
            #expect(try Binary.run(["quarantine", path, "--state-dir", state]).0 == 2, "a missing file is bad input")
            _ = try drop(Array("occupied".utf8), at: path)
            let refused = try Binary.run(["quarantine", "restore", entry.id, "--state-dir", state])
            #expect(refused.0 == 2 && refused.2.contains("never overwrites"))
            _ = unlink(path)
            #expect(try Binary.run(["quarantine", "restore", entry.id, "--state-dir", state]).0 == 0)
            #expect(FileManager.default.contents(atPath: path).map { sha256Hex(Array($0)) } == sha)
            #expect(try Binary.run(["quarantine", "restore", "no-such-id", "--state-dir", state]).0 == 2)
        }

        @Test func policyCheckAndRunRejectInvalidPolicies() throws {
            try #require(Binary.exists, "build first: swift build")
            let file = NSTemporaryDirectory() + "shmwarden-policy-\(UUID().uuidString.prefix(8)).yaml"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "mode: enforce\nrules:\n  - name: r\n    actions: [explode]\n".write(
                toFile: file, atomically: true, encoding: .utf8)
            let (status, _, stderr) = try Binary.run(["policy", "check", file])
            #expect(status == 2)
            #expect(stderr.contains("\(file):4:15: unknown action 'explode'"))
            let run = try Binary.run(["run", "--policy", file, "--state-dir", NSTemporaryDirectory() + "unused-state"])
            #expect(run.0 == 2 && run.2.contains("invalid policy"))
            let shipped = packagePath("Policies")
            for policy in [shipped, shipped + "/default.yaml", shipped + "/enforce-example.yaml"] {
                let (ok, out, err) = try Binary.run(["policy", "check", policy])
                #expect(ok == 0 && out.contains("valid"), "\(policy): \(err)")
            }
        }

        /// SIGHUP swaps in a valid policy and keeps the last good one when the new one is invalid.
        @Test func hangupReloadsThePolicyAndKeepsTheLastGoodOne() async throws {
            try #require(Binary.exists, "build first: swift build")
            let reloading = try ReloadingAgent()
            defer { reloading.remove() }
            let agent = reloading.agent
            #expect(try await agent.waitForLog("shmwarden running"))
            try reloading.writePolicy("mode: enforce\nrules: [{name: x, actions: [explode]}]\n")
            kill(agent.pid, SIGHUP)
            #expect(try await agent.waitForLog("policy reload rejected; keeping the last good policy"))
            #expect(try await agent.waitForLog("unknown action 'explode'"))
            try reloading.writePolicy("mode: enforce\nrules: [{name: x, actions: [record]}]\n")
            kill(agent.pid, SIGHUP)
            #expect(try await agent.waitForLog("policy reloaded"))
            #expect(try await agent.waitForLog("policy.mode=enforce"))
            #expect(agent.process.isRunning)
        }

        /// The pid file (which `shmwarden guard allow` signals through) and the "running" line
        /// appear only once SIGHUP reloads the policy: one sent the moment either appears reloads
        /// it, and never ends the agent (SIGHUP's default action).
        @Test func aHangupAsSoonAsThePidFileAppearsReloads() async throws {
            try #require(Binary.exists, "build first: swift build")
            let reloading = try ReloadingAgent()
            defer { reloading.remove() }
            let agent = reloading.agent
            try reloading.writePolicy("mode: enforce\nrules: [{name: x, actions: [record]}]\n")
            let deadline = ContinuousClock.now + .seconds(20)
            while !FileManager.default.fileExists(atPath: reloading.state + "/shmwarden.pid")
                && ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(1))
            }
            kill(agent.pid, SIGHUP)
            #expect(try await agent.waitForLog("policy reloaded"))
            #expect(try await agent.waitForLog("policy.mode=enforce"))
            #expect(agent.process.isRunning)
        }

        @Test func configurationFileIsCheckedAndUsed() throws {
            try #require(Binary.exists, "build first: swift build")
            let directory = makeStateDirectory()
            let good = directory + "-good.yaml"
            let bad = directory + "-bad.yaml"
            defer { for path in [directory, good, bad] { try? FileManager.default.removeItem(atPath: path) } }
            try "state-dir: \(directory)\nlisten: off\nretention: {max-age: 7d}\n".write(
                toFile: good, atomically: true, encoding: .utf8)
            try "listen: nowhere\nwatch: relative\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let (status, stdout, _) = try Binary.run(["config", "check", good])
            #expect(status == 0 && stdout.contains("state-dir: \(directory)") && stdout.contains("604800 s"))
            let (badStatus, _, stderr) = try Binary.run(["config", "check", bad])
            #expect(badStatus == 2 && stderr.contains("\(bad):1:9: listen must be HOST:PORT"))
            #expect(stderr.contains("\(bad):2:8: each watch path must be an absolute path"))
            #expect(try Binary.run(["run", "--config", bad]).0 == 2)
            // Commands take the state directory from the file (the flag would win).
            let scanned = directory + "-scanned"
            try FileManager.default.createDirectory(atPath: scanned, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scanned) }
            let (scanStatus, _, _) = try Binary.run(["scan", "--config", good, "--no-discover", "--watch", scanned])
            #expect(scanStatus == 0)
            #expect(FileManager.default.fileExists(atPath: directory + "/shmwarden.sqlite"))
            let (pruneStatus, pruneOut, _) = try Binary.run(["prune", "--config", good, "--dry-run"])
            #expect(pruneStatus == 0 && pruneOut.hasPrefix("would remove: 0 alert(s)"))
        }

        @Test(.enabled(if: TestEnvironment.isRoot))
        func adviseListsTmpfsMountsAsJSON() throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            defer { mount.remove() }
            let (status, stdout, _) = try Binary.run(["advise", "--json"])
            #expect(status == 0)
            // DESIGN.md's contract: one entry per tmpfs mount.
            let mounts = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [[String: Any]])
            let ours = try #require(mounts.first { $0["mountPoint"] as? String == mount.path })
            #expect(ours["noexec"] as? Bool == false)
            #expect(ours["remountCommand"] as? String == "mount -o remount,noexec,nosuid,nodev \(mount.path)")
            #expect(ours["fstabLine"] is String && ours["risks"] is [String])
            #expect(ours["memfd"] is [String: Any])
        }
    }
}

/// An agent started on a policy file of its own (monitor mode, no rules), for reload tests.
struct ReloadingAgent {
    let mount: TestMount
    let state: String
    let policyFile: String
    let logFile: String
    let agent: AgentProcess

    init() throws {
        mount = try TestMount()
        state = makeStateDirectory()
        policyFile = state + "-policy.yaml"
        logFile = state + "-log.txt"
        try "mode: monitor\nrules: []\n".write(toFile: policyFile, atomically: true, encoding: .utf8)
        agent = try AgentProcess(
            [
                "--no-discover", "--watch", mount.path, "--no-listen", "--policy", policyFile, "--state-dir", state,
                "--log-level", "info",
            ], logFile: logFile)
    }

    func writePolicy(_ text: String) throws { try text.write(toFile: policyFile, atomically: true, encoding: .utf8) }

    func remove() {
        agent.kill9()
        mount.remove()
        for path in [state, policyFile, logFile] { try? FileManager.default.removeItem(atPath: path) }
    }
}
