// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Synchronization
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenLinux
import WardenStore

/// `.build/debug/fileless-probe`, built by the README's test command.
private let filelessProbe = URL(fileURLWithPath: packagePath(".build/debug/fileless-probe")).resolvingSymlinksInPath()
    .path
private let python = "/usr/bin/python3"
private let sleepBinary = URL(fileURLWithPath: "/bin/sleep").resolvingSymlinksInPath().path

/// The intake on a free port, the alerts authenticated by a bearer token (`t0ken`).
private let bearerIntake = IntakeServerConfiguration(port: 0, bearerToken: "t0ken", insecure: true)

private func policy(_ text: String) throws -> Policy {
    try PolicyParser.merge([try PolicyParser.parse(text, file: "fileless.yaml").get()]).get()
}

private func sha256(ofFile path: String) throws -> String {
    sha256Hex(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
}

/// A program started in the background; its standard output is read line by line.
private final class Background: Sendable {
    let process: Process
    private let output: FileHandle

    init(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try retryingTextFileBusy { try process.run() }
        self.process = process
        self.output = pipe.fileHandleForReading
    }

    var pid: Int32 { process.processIdentifier }

    /// The first line the program writes (blocking: the programs here write it at once).
    func firstLine() -> String {
        var bytes: [UInt8] = []
        while let byte = try? output.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits (off the cooperative pool) until it ends; its exit status or signal.
    func wait() async -> (status: Int32, signaled: Bool) {
        await withCheckedContinuation { continuation in
            Thread {
                self.process.waitUntilExit()
                continuation.resume(
                    returning: (self.process.terminationStatus, self.process.terminationReason == .uncaughtSignal))
            }.start()
        }
    }

    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A Python program that runs PROGRAM from a memfd through `/proc/self/fd/N` in a child, prints
/// the child's pid, and waits for it.
private let pythonMemfdExec = """
    import os, sys
    fd = os.memfd_create('payload', 0)
    os.write(fd, open(sys.argv[1], 'rb').read())
    pid = os.fork()
    if pid == 0:
        os.execv(f'/proc/self/fd/{fd}', ['payload'] + sys.argv[2:])
    print(pid, flush=True)
    os.waitpid(pid, 0)
    """

extension AgentIntegration {
    /// What runs without a file a watch would see, taken from the running process by the exec
    /// monitor (CN_PROC) or when an alert names the process.
    @Suite(
        .serialized, .timeLimit(.minutes(3)),
        .enabled(if: TestEnvironment.isRoot, "the process events connector needs CAP_NET_ADMIN; a tmpfs"))
    struct FilelessCaptureTests {
        /// `sh` and `python3` given a 0644 script on a tmpfs that is deleted right after they
        /// start: each script is recorded with the interpreter that ran it, and kept.
        @Test func scriptsRunByAnInterpreterAreTakenThoughDeletedAtOnce() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], execMonitor: true)) { agent in
                let shell = mount.child("payload")
                let stage = mount.child("stage.py")
                let shellText = "echo pwned; id >/dev/null; sleep 0.5\n"
                let pythonText = "import time\ntime.sleep(0.5)\nprint('staged')\n"
                try shellText.write(toFile: shell, atomically: false, encoding: .utf8)
                try pythonText.write(toFile: stage, atomically: false, encoding: .utf8)
                chmod(shell, 0o644)
                chmod(stage, 0o644)
                let run = try ChildProcess.bash(
                    "sh \(shell) >/dev/null & \(python) \(stage) >/dev/null & sleep 0.05; rm \(shell) \(stage); wait")
                _ = run
                let records = try await agent.waitForFiles { records in
                    records.filter { $0.capture?.kind == .script }.count >= 2
                }
                let scripts = records.filter { $0.capture?.kind == .script }
                let byPath = Dictionary(scripts.map { ($0.path.displayString, $0) }) { first, _ in first }
                let shellRecord = try #require(byPath[shell], "\(scripts.map(\.path))")
                let pythonRecord = try #require(byPath[stage], "\(scripts.map(\.path))")
                #expect(shellRecord.sha256 == sha256Hex(Array(shellText.utf8)))
                #expect(pythonRecord.sha256 == sha256Hex(Array(pythonText.utf8)))
                #expect(shellRecord.capture?.interpreter?.hasSuffix("sh") == true)
                #expect(pythonRecord.capture?.interpreter?.contains("python3") == true)
                #expect(shellRecord.capture?.commandLine == ["sh", shell])
                #expect(shellRecord.reasons.contains(.interpreted))
                #expect(shellRecord.mountPoint == PathBytes(mount.path))
                for record in [shellRecord, pythonRecord] {
                    let sha = try #require(record.sha256)
                    #expect(try await evidencePath(agent, sha) != nil, "an evidence copy of \(record.path)")
                }
            }
        }

        /// A program run from a memfd through `/proc/self/fd/N` (Python), `fexecve` and
        /// `execveat(fd, "", AT_EMPTY_PATH)` (C): each is recorded as a memfd with its process.
        @Test func memfdProgramsAreTakenHoweverTheyAreRun() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], execMonitor: true)) { agent in
                let expected = try sha256(ofFile: sleepBinary)
                let fromPython = try Background(python, ["-c", pythonMemfdExec, sleepBinary, "1"])
                let pythonChild = Int32(fromPython.firstLine())
                let fexecve = try Background(filelessProbe, ["fexecve", sleepBinary, "1"])
                let execveat = try Background(filelessProbe, ["execveat", sleepBinary, "1"])
                let pids = Set([pythonChild, fexecve.pid, execveat.pid].compactMap { $0 })
                #expect(pids.count == 3)
                let records = try await agent.waitForFiles { records in
                    pids.isSubset(of: Set(records.compactMap { $0.capture?.pid }))
                }
                let taken = records.compactMap { $0.capture.map { ($0.pid, $0.kind, $0.executable.displayString) } }
                for pid in pids {
                    let record = try #require(records.first { $0.capture?.pid == pid }, "\(pid) not in \(taken)")
                    let capture = try #require(record.capture)
                    #expect(capture.kind == .memfd, "\(pid)")
                    #expect(record.sha256 == expected)
                    #expect(record.path.displayString.hasPrefix("/memfd:payload"))
                    #expect(capture.source == "/proc/\(pid)/exe")
                    #expect(capture.uid == 0 && capture.ppid != nil && capture.started != nil)
                    #expect(capture.commandLine.last == "1")
                    #expect(record.kind == .elf)
                }
                #expect(try await evidencePath(agent, expected) != nil)
                for process in [fromPython, fexecve, execveat] { _ = await process.wait() }
            }
        }

        /// A binary that unlinks itself once started, and one on ext4 (not tmpfs) removed while
        /// it runs: no exec event tells either, the monitor's sweep of executable links does.
        @Test func binariesDeletedWhileTheyRunAreTaken() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let directory = "/var/tmp/shmwarden-deleted-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await withAgent(AgentHarness(watch: [mount.path], execMonitor: true)) { agent in
                let selfDeleting = directory + "/self-deleting"
                let removed = directory + "/removed"
                try FileManager.default.copyItem(atPath: filelessProbe, toPath: selfDeleting)
                try FileManager.default.copyItem(atPath: sleepBinary, toPath: removed)
                let probeSHA = try sha256(ofFile: selfDeleting)
                let sleepSHA = try sha256(ofFile: removed)
                let first = try Background(selfDeleting, ["self-delete", "6"])
                defer { first.kill() }
                #expect(first.firstLine() == "ready \(first.pid)")
                let second = try Background(removed, ["6"])
                defer { second.kill() }
                try await Task.sleep(for: .milliseconds(100))
                try FileManager.default.removeItem(atPath: removed)
                let records = try await agent.waitForFiles { records in
                    Set([first.pid, second.pid]).isSubset(of: Set(records.compactMap { $0.capture?.pid }))
                }
                let one = try #require(records.first { $0.capture?.pid == first.pid })
                let two = try #require(records.first { $0.capture?.pid == second.pid })
                #expect(one.capture?.kind == .deleted && one.sha256 == probeSHA)
                #expect(two.capture?.kind == .deleted && two.sha256 == sleepSHA)
                #expect(one.path == PathBytes(selfDeleting + " (deleted)"))
                #expect(one.state == .deleted && one.mountPoint == nil)
            }
        }

        /// Code mapped executable from a memfd and called, without any exec: taken when an
        /// alert names the process, and the alert is correlated to it by that kernel fact.
        @Test func codeMappedFromAMemfdIsTakenWhenAnAlertNamesItsProcess() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(watch: [mount.path], http: bearerIntake, execMonitor: true)
            ) { agent in
                let mapper = try Background(filelessProbe, ["map-exec", "10"])
                defer { mapper.kill() }
                #expect(mapper.firstLine() == "ready \(mapper.pid)")
                let port = await agent.services.listening.port()
                let (status, body, _) = try await post(
                    "http://127.0.0.1:\(port)/falco",
                    alert(rule: "Executable memory mapping", pid: mapper.pid, exepath: filelessProbe),
                    headers: ["Authorization": "Bearer t0ken"])
                #expect(status == 200, "\(body)")
                let id = try #require(body["id"] as? String)
                let stored = try #require(try agent.database.alerts().first { $0.id == id })
                #expect(stored.correlations.map(\.matchedBy) == ["process-capture:proc.pid"])
                let records = try agent.database.files()
                let mapping = try #require(records.first { $0.capture?.kind == .mapping })
                #expect(mapping.capture?.pid == mapper.pid)
                #expect(mapping.path.displayString.hasPrefix("/memfd:jit"))
                #expect(mapping.capture?.source.hasPrefix("/proc/\(mapper.pid)/map_files/") == true)
                #expect(mapping.size == Int64(sysconf(Int32(_SC_PAGESIZE))))
                #expect(stored.correlations.first?.fileID == mapping.id)
            }
        }

        /// "Fileless execution via memfd_create": the alert is correlated to the bytes taken from
        /// the process, its report names the capture; for a process already gone, the report
        /// says exactly that.
        @Test func theMemfdAlertIsCorrelatedToTheCapturedBytes() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(watch: [mount.path], http: bearerIntake, execMonitor: true)
            ) { agent in
                let port = await agent.services.listening.port()
                let token = ["Authorization": "Bearer t0ken"]
                let runner = try Background(filelessProbe, ["fexecve", sleepBinary, "5"])
                defer { runner.kill() }
                // Falco's alert follows the exec: post it once the process runs the memfd.
                let deadline = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < deadline,
                    (try? sys_readlink(Array("/proc/\(runner.pid)/exe".utf8)))?.starts(with: Array("/memfd:".utf8))
                        != true
                {
                    try await Task.sleep(for: .milliseconds(2))
                }
                let (status, body, _) = try await post(
                    "http://127.0.0.1:\(port)/falco", memfdAlert(pid: runner.pid), headers: token)
                #expect(status == 200, "\(body)")
                let id = try #require(body["id"] as? String)
                // Correlated on arrival, or at the second look 0.25 s later when the capture was
                // still under way on the monitor's thread.
                var stored = try #require(try agent.database.alerts().first { $0.id == id })
                let lookDeadline = ContinuousClock.now + .seconds(3)
                while stored.correlations.isEmpty && ContinuousClock.now < lookDeadline {
                    try await Task.sleep(for: .milliseconds(20))
                    stored = try #require(try agent.database.alerts().first { $0.id == id })
                }
                #expect(
                    stored.correlations.map(\.matchedBy) == ["process-capture:proc.pid"],
                    "\(String(describing: stored.noEvidenceReason)); taken: \(((try? agent.database.files()) ?? []).compactMap { $0.capture.map { ($0.pid, $0.kind) } })"
                )
                let (reportStatus, report) = try await get(
                    "http://127.0.0.1:\(port)/alerts/\(id)/report", headers: token)
                #expect(reportStatus == 200)
                let sha = try sha256(ofFile: sleepBinary)
                #expect(
                    report.contains("taken from running process \(runner.pid): its executable (a memfd)"), "\(report)")
                #expect(report.contains(sha))
                #expect(!report.contains("nothing to capture"))

                // A process that had exited when its alert arrived.
                let gone = try ChildProcess.run("/bin/sh", ["-c", "echo $$"])
                let gonePID = try #require(Int32(gone.output.trimmingCharacters(in: .whitespacesAndNewlines)))
                let (_, goneBody, _) = try await post(
                    "http://127.0.0.1:\(port)/falco", memfdAlert(pid: gonePID), headers: token)
                let goneID = try #require(goneBody["id"] as? String)
                let goneAlert = try #require(try agent.database.alerts().first { $0.id == goneID })
                #expect(goneAlert.correlations.isEmpty && goneAlert.noEvidenceReason == .memfdProcessExited)
                let (_, goneReport) = try await get(
                    "http://127.0.0.1:\(port)/alerts/\(goneID)/report", headers: token)
                #expect(goneReport.contains("process \(gonePID) had exited when the alert arrived"), "\(goneReport)")
                #expect(goneReport.contains("vm.memfd_noexec"))
            }
        }

        /// A runc-like re-exec from a memfd under an allowlisted parent is recorded benign and
        /// left alone; the same program under any other parent is killed by the
        /// `fileless-executable` rule, which acts on the kernel's view of the process.
        @Test func anAllowlistedParentsMemfdIsBenignAndAnotherIsKilled() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            // Only this test's program: the monitor sees every memfd program on the host.
            let sleepSHA = try sha256(ofFile: sleepBinary)
            try await withAgent(
                AgentHarness(
                    watch: [mount.path],
                    policy: try policy(
                        """
                        mode: enforce
                        allowlist:
                          fileless-parents: [\(filelessProbe)]
                        rules:
                          - {name: fileless, on: fileless-executable, match: {file: {sha256: [\(sleepSHA)]}}, actions: [kill-process]}
                        """), execMonitor: true)
            ) { agent in
                let benign = try Background(filelessProbe, ["fork-fexecve", sleepBinary, "1"])
                let started = ContinuousClock.now
                let attacker = try Background(filelessProbe, ["fexecve", sleepBinary, "30"])
                defer { attacker.kill() }
                let ending = await attacker.wait()
                #expect(ending.signaled && ending.status == SIGKILL, "killed: \(ending)")
                #expect(ContinuousClock.now - started < .seconds(20))
                let benignEnding = await benign.wait()
                #expect(benignEnding == (0, false), "the allowlisted one ran to its end")
                let records = try await agent.waitForFiles { records in
                    records.filter { $0.capture?.kind == .memfd && $0.capture?.ppid == benign.pid }.count == 1
                }
                let benignRecord = try #require(records.first { $0.capture?.ppid == benign.pid })
                #expect(benignRecord.capture?.benign == "allowlist fileless-parents \(filelessProbe)")
                let attackerRecord = try #require(records.first { $0.capture?.pid == attacker.pid })
                #expect(attackerRecord.capture?.benign == nil)
                let actions = try agent.database.actions()
                #expect(actions.map(\.action) == ["kill-process"], "\(actions)")
                #expect(
                    actions.first?.outcome == .performed && actions.first?.target == "pid \(attacker.pid)", "\(actions)"
                )
                #expect(actions.first?.detail.contains("its executable is a memfd") == true, "\(actions)")
            }
        }

        /// A file on a file system outside the openable ones is never opened (a FUSE file's
        /// open would wait on its daemon): with ext4 left out of the set, a binary removed from
        /// ext4 while it runs is not taken, and the monitor goes on taking what it may (a memfd
        /// program: on no mount).
        @Test func filesOnFileSystemsOutsideTheOpenableSetAreNeverOpened() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let directory = "/var/tmp/shmwarden-unopenable-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await withAgent(
                AgentHarness(watch: [mount.path], execMonitor: true) { configuration in
                    configuration.execMonitor?.openableFileSystems = ["tmpfs"]
                }
            ) { agent in
                let removed = directory + "/removed"
                try FileManager.default.copyItem(atPath: sleepBinary, toPath: removed)
                let onExt4 = try Background(removed, ["6"])
                defer { onExt4.kill() }
                try await Task.sleep(for: .milliseconds(100))
                try FileManager.default.removeItem(atPath: removed)
                // A memfd is on no mount: the kernel's own shm, always openable.
                let fromMemfd = try Background(filelessProbe, ["fexecve", sleepBinary, "3"])
                defer { fromMemfd.kill() }
                let records = try await agent.waitForFiles { records in
                    records.contains { $0.capture?.pid == fromMemfd.pid }
                }
                // Two sweeps of the executable links after the removal.
                try await Task.sleep(for: .seconds(4.5))
                let after = try agent.database.files()
                #expect(!after.contains { $0.capture?.pid == onExt4.pid }, "\(after.compactMap(\.capture))")
                #expect(records.contains { $0.capture?.pid == fromMemfd.pid && $0.capture?.kind == .memfd })
            }
        }

        static func evidencePathOf(_ agent: AgentHarness, _ sha256: String) async throws -> String? {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let path = try agent.database.blob(sha256: sha256)?.evidencePath { return path }
                try await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }
    }
}

/// The evidence copy of `sha256` once it is kept (10 s at most).
private func evidencePath(_ agent: AgentHarness, _ sha256: String) async throws -> String? {
    try await AgentIntegration.FilelessCaptureTests.evidencePathOf(agent, sha256)
}

/// An alert of `rule` about process `pid`.
private func alert(rule: String, pid: Int32, exepath: String, fields: [String: Any] = [:]) -> Data {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let object: [String: Any] = [
        "rule": rule, "priority": "Critical", "source": "syscall", "hostname": "test-node",
        "time": formatter.string(from: Date()), "output": "\(rule) pid=\(pid)",
        "output_fields": ["proc.pid": pid, "proc.exepath": exepath, "container.id": "host"].merging(fields) { $1 },
    ]
    return try! JSONSerialization.data(withJSONObject: object)
}

/// "Fileless execution via memfd_create" as Falco reports it for process `pid`.
private func memfdAlert(pid: Int32) -> Data {
    alert(
        rule: "Fileless execution via memfd_create", pid: pid, exepath: "memfd:payload",
        fields: ["evt.arg.flags": "EXE_FROM_MEMFD", "proc.is_exe_from_memfd": true, "proc.name": "payload"])
}
