// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenStore

private func guardPolicy(_ mode: String, allow sha: String? = nil, extra: String = "") throws -> Policy {
    let allowlist = sha.map { "allowlist: {sha256: [\($0)]}\n" } ?? ""
    let text = "mode: monitor\nguard: {mode: \(mode)}\n" + allowlist + extra
    return try PolicyParser.merge([try PolicyParser.parse(text, file: "guard.yaml").get()]).get()
}

/// Runs `path` through a shell: 0 when it ran, 126 when the kernel refused the exec. The shell
/// says 126 for ETXTBSY too, which a test running at the same time can cause for a moment (a
/// child it forks holds the just-written file's write descriptor until it execs): tried again.
func execStatus(_ path: String) async throws -> Int32 {
    for _ in 0..<100 {
        let (status, _, errors) = try await runProcessOffPool("/bin/sh", ["-c", "\"$0\"", path], errors: true)
        guard status == 126 && errors.contains("Text file busy") else { return status }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try await runProcessOffPool("/bin/sh", ["-c", "\"$0\"", path]).0
}

/// Polls the exec records until `count` for `path` are there (fewer on timeout).
private func waitForExecs(_ database: EvidenceDatabase, path: String, count: Int) async throws -> [ExecRecord] {
    let deadline = ContinuousClock.now + .seconds(10)
    var records: [ExecRecord] = []
    while ContinuousClock.now < deadline {
        records = try database.execs().filter { $0.path == PathBytes(path) }
        if records.count >= count { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    return records
}

/// Polls the exec records until one for `path` is there.
private func waitForExec(_ database: EvidenceDatabase, path: String) async throws -> ExecRecord? {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
        if let record = try database.execs().last(where: { $0.path == PathBytes(path) }) { return record }
        try await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

extension AgentIntegration {
    /// The fanotify exec guard on real private tmpfs mounts (root: fanotify permission events).
    @Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestEnvironment.isRoot))
    struct ExecGuardTests {
        @Test func enforceDeniesUnknownAndAllowsTheAllowlistedHashUntilItChanges() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let allowed = sha256Hex(trueBinary)
            let unknown = try await withAgent(
                AgentHarness(watch: [mount.path], policy: try guardPolicy("enforce", allow: allowed))
            ) { agent in
                try await agent.waitForGuard()

                let known = mount.child("known")
                _ = try drop(trueBinary, at: known)
                #expect(try await execStatus(known) == 0, "an allowlisted hash runs")

                let unknown = mount.child("unknown")
                _ = try drop(trueBinary + [0], at: unknown)
                #expect(try await execStatus(unknown) == 126, "an unknown ELF is refused")
                let denied = try #require(try await waitForExec(agent.database, path: unknown))
                #expect(denied.verdict == .deny && denied.wouldBe == .deny && denied.rule == "unknown")
                #expect(denied.sha256 == sha256Hex(trueBinary + [0]))
                #expect(denied.ppid != nil && denied.uid == 0)

                // The allowlisted file, changed: a new hash, so refused again.
                // Later execs of the unchanged file are not held (an ignore mark), but still recorded.
                #expect(try await execStatus(known) == 0)
                #expect(try await execStatus(known) == 0)
                let knownRecords = try await waitForExecs(agent.database, path: known, count: 3)
                #expect(knownRecords.map(\.held) == [true, false, false])
                #expect(
                    knownRecords.allSatisfy {
                        $0.verdict == .allow && $0.rule == "allowlist-sha256" && $0.sha256 == allowed
                    })
                // The held exec's uid is read while it waits; a not-held one may have exited already.
                #expect(knownRecords.first?.ppid != nil && knownRecords.first?.uid == 0)

                let fd = open(known, O_WRONLY | O_APPEND)
                _ = write(fd, "x", 1)
                close(fd)
                #expect(try await execStatus(known) == 126)

                // A script run by path: the kernel execs the script itself, so the guard sees it.
                let script = mount.child("script.sh")
                _ = try drop(Array("#!/bin/sh\nexit 0\n".utf8), at: script)
                #expect(try await execStatus(script) == 126)

                return unknown
            }
            // Stopped guard: the kernel lets execs through again.
            #expect(try await execStatus(unknown) == 0)
        }

        /// A policy change takes back what the old policy allowed, even for a file whose execs
        /// the kernel no longer holds (ignore marks do not outlive the policy behind them).
        @Test func aReloadedPolicyRevokesWhatWasAllowed() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let allowed = sha256Hex(trueBinary)
            try await withAgent(AgentHarness(watch: [mount.path], policy: try guardPolicy("enforce", allow: allowed))) {
                agent in
                try await agent.waitForGuard()
                let path = mount.child("was-allowed")
                _ = try drop(trueBinary, at: path)
                #expect(try await execStatus(path) == 0)
                #expect(try await execStatus(path) == 0)
                #expect(try await waitForExecs(agent.database, path: path, count: 2).map(\.held) == [true, false])

                agent.services.responder.policy.replace(try guardPolicy("enforce"))
                try await agent.waitForGuard(generation: 1)
                #expect(try await execStatus(path) == 126, "the allowlist entry is gone, so the file is refused")

                agent.services.responder.policy.replace(try guardPolicy("enforce", allow: allowed))
                try await agent.waitForGuard(generation: 2)
                #expect(try await execStatus(path) == 0, "allowed again after the entry comes back")
            }
        }

        /// A file the guard cannot decide about (here: above hash-size-cap) gets guard.failure.
        @Test(arguments: [("allow", Int32(0)), ("deny", Int32(126))])
        func undecidableExecsGetTheFailureAnswer(failure: String, expected: Int32) async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let policy = try PolicyParser.merge([
                try PolicyParser.parse(
                    "mode: monitor\nguard: {mode: enforce, failure: \(failure), hash-size-cap: 1KiB}\n", file: "g.yaml"
                ).get()
            ]).get()
            try await withAgent(AgentHarness(watch: [mount.path], policy: policy)) { agent in
                try await agent.waitForGuard()
                let path = mount.child("big")
                _ = try drop(trueBinary + [5], at: path)
                #expect(try await execStatus(path) == expected)
                let record = try #require(try await waitForExec(agent.database, path: path))
                #expect(record.rule == "failure" && record.sha256 == nil)
                #expect(record.reason.contains("larger than guard.hash-size-cap"))
                #expect(agent.metrics[.guardFailures] >= 1)
            }
        }

        @Test func monitorAllowsAndRecordsWhatEnforceWouldDo() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], policy: try guardPolicy("monitor"))) { agent in
                try await agent.waitForGuard()
                let path = mount.child("dropped")
                _ = try drop(trueBinary + [1], at: path)
                #expect(try await execStatus(path) == 0)
                #expect(try await execStatus(path) == 0)
                var records: [ExecRecord] = []
                let deadline = ContinuousClock.now + .seconds(10)
                while records.count < 2 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    records = try agent.database.execs().filter { $0.path == PathBytes(path) }
                }
                #expect(records.count == 2)
                #expect(records.allSatisfy { $0.verdict == .allow && $0.wouldBe == .deny && $0.mode == .monitor })
                #expect(records.map(\.cached) == [false, true], "the second exec is answered from the cache")
            }
        }

        /// An alert naming the pid of a guarded exec is correlated through the exec record, even
        /// when it names no path.
        @Test func execRecordsJoinTheCorrelation() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true),
                    policy: try guardPolicy("monitor"))
            ) { agent in
                let port = await agent.services.listening.port()
                try await agent.waitForGuard()
                let path = mount.child("attributed")
                let sha = try drop(trueBinary + [2], at: path)
                #expect(try await execStatus(path) == 0)
                let exec = try #require(try await waitForExec(agent.database, path: path))
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) && $0.sha256 == sha } }
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let alert = try JSONSerialization.data(withJSONObject: [
                    "rule": "Some process rule", "priority": "Notice", "time": formatter.string(from: Date()),
                    "output": "x", "output_fields": ["proc.pid": Int(exec.pid), "proc.name": "attributed"],
                ])
                let (status, body, _) = try await post("http://127.0.0.1:\(port)/falco", alert)
                #expect(status == 200)
                let id = try #require(body["id"] as? String)
                let stored = try #require(try agent.database.alert(id: id))
                #expect(stored.correlations.first?.sha256 == sha)
                #expect(stored.correlations.first?.matchedBy == "exec-record:proc.pid")
            }
        }

        /// kill -9 of the agent: the kernel lets execs through at once (no host hang).
        @Test func aKilledAgentLeavesExecsWorking() async throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            let state = makeStateDirectory()
            let policyFile = state + "-guard.yaml"
            let logFile = state + "-log.txt"
            defer {
                mount.remove()
                for path in [state, policyFile, logFile] { try? FileManager.default.removeItem(atPath: path) }
            }
            try "mode: monitor\nguard: {mode: enforce}\n".write(toFile: policyFile, atomically: true, encoding: .utf8)
            let path = mount.child("refused")
            _ = try drop(trueBinary + [3], at: path)
            let agent = try AgentProcess(
                ["--no-discover", "--watch", mount.path, "--no-listen", "--policy", policyFile, "--state-dir", state],
                logFile: logFile)
            #expect(try await agent.waitForLog("exec guard enforce"))
            #expect(try await execStatus(path) == 126, "guarded while the agent runs")
            agent.kill9()
            #expect(try await execStatus(path) == 0, "released when the agent is gone")
        }

        /// `guard allow` writes the policy directory and the running agent reloads it (SIGHUP).
        @Test func guardAllowReachesARunningAgent() async throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            let state = makeStateDirectory()
            let policyDirectory = state + "-policies"
            let logFile = state + "-log.txt"
            defer {
                mount.remove()
                for path in [state, policyDirectory, logFile] { try? FileManager.default.removeItem(atPath: path) }
            }
            try FileManager.default.createDirectory(atPath: policyDirectory, withIntermediateDirectories: true)
            try "mode: monitor\nguard: {mode: enforce}\n".write(
                toFile: policyDirectory + "/main.yaml", atomically: true, encoding: .utf8)
            let path = mount.child("tool")
            let sha = try drop(trueBinary + [4], at: path)
            let agent = try AgentProcess(
                [
                    "--no-discover", "--watch", mount.path, "--no-listen", "--policy", policyDirectory,
                    "--state-dir", state,
                ], logFile: logFile)
            defer { agent.kill9() }
            #expect(try await agent.waitForLog("exec guard enforce"))
            #expect(try await execStatus(path) == 126)
            let (status, stdout, stderr) = try Binary.run(
                ["guard", "allow", sha, "--policy", policyDirectory, "--state-dir", state])
            #expect(status == 0, "\(stderr)")
            #expect(stdout.contains("told the agent (pid \(agent.pid)) to reload"))
            #expect(try await agent.waitForLog("policy reloaded"))
            #expect(try await execStatus(path) == 0, "allowed after the reload")
            let (listStatus, listed, _) = try Binary.run(["guard", "list", "--policy", policyDirectory])
            #expect(listStatus == 0 && listed.contains(sha) && listed.contains("guard: enforce"))
            // Records are batched (up to 20 ms) before they reach the store: poll the command.
            var verdicts: [String] = []
            var execsJSON = ""
            let deadline = ContinuousClock.now + .seconds(5)
            while verdicts.count < 2 && ContinuousClock.now < deadline {
                let (execsStatus, output, _) = try Binary.run(["execs", "--json", "--state-dir", state])
                #expect(execsStatus == 0)
                execsJSON = output
                let execs = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])
                verdicts = execs.compactMap { $0["verdict"] as? String }
                if verdicts.count < 2 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(verdicts == ["deny", "allow"], "one record per exec: \(execsJSON)")
        }

        @Test func guardPoliciesAreValidated() {
            #expect(throws: (any Error).self) { try guardPolicy("block") }
            let bad = PolicyParser.parse(
                "guard: {mode: enforce, failure: maybe, hash-size-cap: huge}\n", file: "g.yaml")
            guard case .failure(let errors) = bad else {
                Issue.record("accepted")
                return
            }
            #expect(
                errors.errors.map(\.reason) == [
                    "guard failure must be 'allow' or 'deny', not 'maybe'",
                    "hash-size-cap 'huge' is not a size like 64MiB",
                ])
        }
    }
}

extension AgentIntegration.ExecGuardTests {
    /// The attack of the issue: an executable on a guarded tmpfs, held open for writing, exec'd,
    /// and turned into a petabyte sparse file while the guard hashes it. Its exec is answered
    /// within the deadline, and a plain exec on the same tmpfs meanwhile runs at once.
    @Test func aGrowingFileNeitherStallsItsExecNorAnyOther() async throws {
        let mount = try TestMount(size: "256m")
        defer { mount.remove() }
        try await withAgent(
            AgentHarness(
                watch: [mount.path], policy: try guardPolicy("monitor", extra: "")
            )
        ) { agent in
            let plain = mount.child("plain")
            _ = try drop(trueBinary + [5], at: plain)
            let big = mount.child("big")
            var bytes = trueBinary + [6]
            bytes += [UInt8](repeating: 0, count: (60 << 20) - bytes.count)
            _ = try drop(bytes, at: big)
            let writer = open(big, O_WRONLY)
            try #require(writer >= 0)
            defer { close(writer) }
            // The exec of the big file (it may well fail with ETXTBSY: the point is how long the
            // guard holds it), then the petabyte, then an exec of the plain file.
            let bigExec = Task { try await runProcessOffPool("/bin/sh", ["-c", "\"$0\"", big], errors: true) }
            try await Task.sleep(for: .milliseconds(5))
            #expect(ftruncate(writer, 1 << 50) == 0)
            try await Task.sleep(for: .milliseconds(50))
            let started = ContinuousClock.now
            #expect(try await execStatus(plain) == 0)
            let plainTook = ContinuousClock.now - started
            #expect(plainTook < .seconds(2), "a plain exec waited \(plainTook) behind the growing file")
            _ = try await bigExec.value
            let records = try await waitForExecs(agent.database, path: big, count: 1)
            let record = try #require(records.first)
            #expect(record.sha256 == nil, "no hash of bytes that were not read")
            #expect(record.reason.contains("deadline") || record.reason.contains("hash-size-cap"), "\(record.reason)")
            #expect(Double(record.decisionNanoseconds) < 1e9, "held for \(record.decisionNanoseconds) ns")
        }
    }
}
