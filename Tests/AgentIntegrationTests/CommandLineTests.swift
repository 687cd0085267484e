// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing

/// The built `shmwarden` binary, driven as a user drives it.
enum Binary {
    /// `<package>/.build/debug/shmwarden`; the README's test command builds it before testing.
    static let path = packagePath(".build/debug/shmwarden")

    static var exists: Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// Runs the binary to completion: (exit status, stdout, stderr).
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        try runProcess(arguments, environment: environment).result
    }

    /// `output` parsed as JSON, as `T` (a test's `#require` says when it is not).
    static func json<T>(_ output: String, as: T.Type = [String: Any].self) throws -> T? {
        try JSONSerialization.jsonObject(with: Data(output.utf8)) as? T
    }

    /// Runs the binary to completion, with how it ended.
    static func runProcess(
        _ arguments: [String], environment: [String: String] = [:], executable: String = Binary.path
    ) throws -> (result: (Int32, String, String), reason: Process.TerminationReason) {
        let child = try ChildProcess.run(executable, arguments, environment: environment)
        return ((child.status, child.output, child.errors), child.reason)
    }
}

extension AgentIntegration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct CommandLineTests {
        @Test(arguments: [
            ["files", "--sha256", "not-hex"],
            ["run", "--no-discover"],
            ["scan", "--hash-size-cap", "lots"],
            ["files", "--state-dir", "/nonexistent/shmwarden-state"],
            ["no-such-command"],
            ["scan", "--log-level", "loud"],
        ])
        func badInputExitsTwoWithAReason(arguments: [String]) throws {
            try #require(Binary.exists, "build first: swift build")
            let (status, _, stderr) = try Binary.run(arguments)
            #expect(status == 2)
            #expect(!stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        }

        /// A command is parsed by its own parser first (a faster start); whatever that parser
        /// refuses goes through the root parse, so help and errors still name `shmwarden <command>`.
        @Test func commandsParsedDirectlyStillAnswerAsTheRootDoes() throws {
            try #require(Binary.exists, "build first: swift build")
            let (invalid, _, invalidErrors) = try Binary.run(["sandbox", "/bin/true", "--timeout", "0"])
            #expect(invalid == 2)
            #expect(invalidErrors.contains("--timeout must be 1 to 3600 seconds"))
            #expect(invalidErrors.contains("Usage: shmwarden sandbox "))
            let (help, helpText, _) = try Binary.run(["files", "--help"])
            #expect(help == 0)
            #expect(helpText.contains("USAGE: shmwarden files "))
            // A command with subcommands of its own is not parsed directly: `list` is its
            // subcommand, not a path to quarantine.
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let (listed, listText, _) = try Binary.run(["quarantine", "list", "--state-dir", state])
            #expect(listed == 0)
            #expect(listText.contains("quarantine is empty"))
        }

        /// `sandbox` reads its documented options by hand (a faster start) with ArgumentParser's
        /// meaning, and leaves anything else to ArgumentParser.
        @Test func sandboxOptionsReadByHandMeanWhatArgumentParserReads() throws {
            try #require(Binary.exists, "build first: swift build")
            guard getuid() == 0 else { return }  // the sandbox needs root; CI is root
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            // Options on both sides of the file, `=` forms, a flag after the file, and sample
            // arguments that look like options after `--`.
            let (status, output, errors) = try Binary.run([
                "sandbox", "--json", "--state-dir=\(state)", "/bin/echo", "--no-observe", "--", "-n", "a b",
            ])
            #expect(status == 0, "\(errors)")
            let report = try #require(try Binary.json(output))
            #expect(report["stdout"] as? String == "a b")
            #expect((report["syscalls"] as? [String: Any])?.isEmpty == true, "--no-observe was not applied")
            // The last --timeout wins, as in ArgumentParser.
            let (slept, sleptOutput, _) = try Binary.run([
                "sandbox", "/bin/sleep", "--timeout", "30", "--timeout=1", "--json", "--state-dir", state, "--", "20",
            ])
            #expect(slept == 0)
            let sleep = try #require(try Binary.json(sleptOutput))
            #expect(sleep["timedOut"] as? Bool == true)
            #expect((sleep["durationMs"] as? Double ?? 0) < 10_000)
            // What the hand reading refuses reaches ArgumentParser, which explains it.
            let (missing, _, missingErrors) = try Binary.run(["sandbox", "/bin/true", "--timeout", "--json"])
            #expect(missing == 2)
            #expect(missingErrors.contains("Missing value for '--timeout <timeout>'"))
            let (twoFiles, _, twoFilesErrors) = try Binary.run(["sandbox", "/bin/true", "/bin/false"])
            #expect(twoFiles == 2)
            #expect(twoFilesErrors.contains("Unexpected argument '/bin/false'"))
        }

        /// Every run is stored: `--list` lists the runs newest first, `--show ID` prints one again
        /// as the run printed it, and an unknown id is bad input.
        @Test func storedRunsListNewestFirstAndPrintAgain() throws {
            try #require(Binary.exists, "build first: swift build")
            guard getuid() == 0 else { return }  // the sandbox needs root; CI is root
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            var runs: [[String: Any]] = []
            for program in ["/bin/true", "/bin/false"] {
                let (_, output, errors) = try Binary.run(["sandbox", "--json", "--state-dir", state, program])
                runs.append(try #require(try Binary.json(output), "\(errors)"))
            }
            let (listed, listedOutput, _) = try Binary.run(["sandbox", "--state-dir", state, "--list", "--json"])
            let list = try #require(try Binary.json(listedOutput, as: [[String: Any]].self))
            #expect(listed == 0 && list.map { $0["id"] as? String } == runs.reversed().map { $0["id"] as? String })
            #expect(list.first?["verdict"] as? [String] == runs.last?["verdict"] as? [String])
            let id = try #require(runs.first?["id"] as? String)
            let (shown, shownOutput, shownErrors) = try Binary.run([
                "sandbox", "--state-dir", state, "--show", id, "--json",
            ])
            #expect(shown == 0, "\(shownErrors)")
            let again = try #require(try Binary.json(shownOutput, as: NSDictionary.self))
            #expect(again == runs.first.map { $0 as NSDictionary })
            let (unknown, _, unknownErrors) = try Binary.run(["sandbox", "--state-dir", state, "--show", "nope"])
            #expect(unknown == 2 && unknownErrors.contains("no sandbox run with id 'nope'"), "\(unknownErrors)")
        }

        /// `--markdown` prints a run for a ticket; the stored run prints the same again.
        @Test func aRunPrintsAsMarkdownAndSoDoesItsStoredCopy() throws {
            try #require(Binary.exists, "build first: swift build")
            guard getuid() == 0 else { return }  // the sandbox needs root; CI is root
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let (ran, markdown, errors) = try Binary.run([
                "sandbox", "--markdown", "--state-dir", state, "/bin/sh", "--", "-c", "echo hi; exit 4",
            ])
            #expect(ran == 0, "\(errors)")
            let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let title = try #require(lines.first)
            #expect(title.hasPrefix("# Sandbox run `s") && title.hasSuffix("`"), "\(markdown)")
            #expect(lines.contains("| ended | exit code 4 |") && lines.contains("## Verdict"), "\(markdown)")
            #expect(markdown.contains("## stdout\n\n```text\nhi\n```\n"), "\(markdown)")
            let id = String(title.dropFirst("# Sandbox run `".count).dropLast())
            let (shown, again, _) = try Binary.run(["sandbox", "--state-dir", state, "--show", id, "--markdown"])
            #expect(shown == 0 && again == markdown)
            let (both, _, bothErrors) = try Binary.run([
                "sandbox", "--state-dir", state, "--json", "--markdown", "/bin/true",
            ])
            #expect(both == 2 && bothErrors.contains("give one of --json and --markdown"), "\(bothErrors)")
        }

        /// The sample's output reaches the terminal with its escape sequences shown, not sent.
        @Test func aSamplesEscapeSequencesAreShownNotSent() throws {
            try #require(Binary.exists, "build first: swift build")
            guard getuid() == 0 else { return }  // the sandbox needs root; CI is root
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let (printed, text, _) = try Binary.run([
                "sandbox", "--state-dir", state, "/bin/sh", "--", "-c", #"printf '\033]0;owned\007ok\n'"#,
            ])
            #expect(printed == 0 && text.contains(#"\x1b]0;owned\x07ok"#) && !text.contains("\u{1B}"), "\(text)")
        }

        /// A file name that is not UTF-8 (a byte 0xff) still names its file: Swift's decoding of
        /// argv would turn it into U+FFFD, and the file could be neither sandboxed nor quarantined.
        @Test func pathArgumentsThatAreNotUTF8NameTheirFile() throws {
            try #require(Binary.exists, "build first: swift build")
            guard getuid() == 0 else { return }  // the sandbox needs root; CI is root
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let name = Array("drop".utf8) + [0xff] + Array("x".utf8)
            let path = Array((state + "/").utf8) + name
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "/bin/true"))
            let fd = (path + [0]).withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL, 0o755) }
            }
            try #require(fd >= 0)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            // The shell makes the byte: Foundation's Process takes only Strings.
            func shmwarden(_ command: String) throws -> (Int32, String, String) {
                try Binary.runProcess(
                    ["-c", "exec \"$0\" \(command) \"$1/$(printf 'drop\\377x')\"", Binary.path, state],
                    executable: "/bin/sh"
                ).result
            }
            let (ran, output, errors) = try shmwarden("sandbox --json --state-dir \"$1\"")
            #expect(ran == 0, "\(errors)")
            let report = try #require(try Binary.json(output))
            #expect((report["exit"] as? [String: Any])?["code"] as? Int == 0, "\(output)")

            let (quarantined, sidecar, quarantineErrors) = try shmwarden("quarantine --json --state-dir \"$1\"")
            #expect(quarantined == 0, "\(quarantineErrors)")
            let entry = try #require(try Binary.json(sidecar))
            #expect((entry["originalPathBase64"] as? String).flatMap { Data(base64Encoded: $0) } == Data(path))
            #expect(
                (path + [0]).withUnsafeBufferPointer {
                    $0.withMemoryRebound(to: CChar.self) { access($0.baseAddress!, F_OK) }
                } != 0)
        }

        @Test func helpExitsZero() throws {
            try #require(Binary.exists, "build first: swift build")
            let (status, stdout, _) = try Binary.run(["run", "--help"])
            #expect(status == 0)
            #expect(stdout.contains("--state-dir"))
            #expect(stdout.contains("--watch"))
        }

        @Test func scanAndFilesSpeakTheJSONContract() throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            defer { mount.remove() }
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let sha = try drop(trueBinary, at: mount.child("elf"))
            let (status, stdout, stderr) = try Binary.run([
                "scan", "--state-dir", state, "--no-discover", "--watch", mount.path, "--json",
            ])
            #expect(status == 0, "\(stderr)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
            #expect(summary["roots"] as? [String] == [mount.path])
            let (filesStatus, filesOut, _) = try Binary.run(["files", "--state-dir", state, "--sha256", sha, "--json"])
            #expect(filesStatus == 0)
            let files = try #require(try JSONSerialization.jsonObject(with: Data(filesOut.utf8)) as? [[String: Any]])
            let record = try #require(files.first)
            for key in [
                "path", "sha256", "size", "mode", "uid", "gid", "device", "inode", "kind", "firstSeen", "state",
                "evidencePath",
            ] {
                #expect(record[key] != nil, "missing \(key)")
            }
            #expect(record["path"] as? String == mount.child("elf"))
            #expect(record["kind"] as? String == "elf")
            #expect(record["state"] as? String == "present")
            #expect(record["size"] as? Int == trueBinary.count)
            let statePermissions = try FileManager.default.attributesOfItem(atPath: state)[.posixPermissions] as? Int
            #expect(statePermissions == 0o700)
        }

        @Test func runRecordsUntilSIGTERMThenExitsCleanly() async throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            defer { mount.remove() }
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Binary.path)
            process.arguments = [
                "run", "--state-dir", state, "--no-discover", "--watch", mount.path, "--log-level", "info",
                "--insecure",
            ]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            // Ready once the start rescan has been logged.
            var log = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while !log.contains("rescanning") && ContinuousClock.now < deadline {
                log += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
            }
            #expect(log.contains("rescanning"))
            let sha = try drop(trueBinary + [42], at: mount.child("late"))
            var found = false
            while !found && ContinuousClock.now < deadline {
                let (_, out, _) = try Binary.run(["files", "--state-dir", state, "--sha256", sha, "--json"])
                found = out.contains(sha)
                if !found { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(found)
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 0)
        }
    }
}

extension AgentIntegration.CommandLineTests {
    @Test func ingestStoresGoodLinesAndExitsTwoOnABadOne() throws {
        try #require(Binary.exists, "build first: swift build")
        let state = makeStateDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let file = state + ".ndjson"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let lines = [
            #"{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:00:00.1Z","output_fields":{"proc.exepath":"/dev/shm/a"}}"#,
            "this is not json",
            #"{"rule":"Fileless execution via memfd_create","priority":"Critical","time":"2026-11-29T12:00:00.2Z","output_fields":{"proc.is_exe_from_memfd":true}}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let (status, _, stderr) = try Binary.run(["ingest", "--state-dir", state, file])
        #expect(status == 2)
        #expect(stderr.contains("line 2: malformed JSON"))
        #expect(stderr.contains("2 stored"))
        let (listed, out, _) = try Binary.run(["alerts", "--state-dir", state, "--json"])
        #expect(listed == 0)
        let alerts = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
        #expect(alerts.count == 2)
        #expect(alerts.map { $0["noEvidenceReason"] as? String } == ["neverSeen", "memfdExecution"])
        for key in ["id", "rule", "priority", "time", "hostname", "source", "correlations", "actions"] {
            #expect(alerts[0].keys.contains(key), "missing \(key)")
        }
    }

    @Test func anAcceptedAlertSurvivesKillNine() async throws {
        try #require(Binary.exists, "build first: swift build")
        let mount = try TestMount()
        defer { mount.remove() }
        let state = makeStateDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        func start() throws -> (Process, Pipe) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Binary.path)
            process.arguments = [
                "run", "--state-dir", state, "--no-discover", "--watch", mount.path, "--listen", "127.0.0.1:0",
                "--insecure",
            ]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return (process, err)
        }
        let (process, err) = try start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var log = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while !log.contains("http.address=") && ContinuousClock.now < deadline {
            log += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        }
        let address = try #require(log.split(separator: " ").first { $0.hasPrefix("http.address=") })
        let port = try #require(address.split(separator: ":").last.map(String.init))
        let (status, body, _) = try await post("http://127.0.0.1:\(port)/falco", devShmAlert(exepath: "/dev/shm/k9"))
        #expect(status == 200)
        let id = try #require(body["id"] as? String)
        // No graceful shutdown: the 200 must already mean "on disk".
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let (listed, out, _) = try Binary.run(["alerts", "--state-dir", state, "--json"])
        #expect(listed == 0)
        #expect(out.contains(id))
    }

    /// The jail's tmpfs mounts live in a mount namespace of the run's own: the host never sees
    /// them, and a `shmwarden sandbox` killed mid-run leaves no mount, process or directory.
    @Test(.enabled(if: TestEnvironment.isRoot, "the sandbox needs root"))
    func aSandboxKilledMidRunLeavesNoMountBehind() async throws {
        try #require(Binary.exists, "build first: swift build")
        let state = makeStateDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        // A name of its own, to find this run's sample among the host's processes.
        let name = "sleep-\(UInt32.random(in: 0...UInt32.max))"
        let sample = state + "/" + name
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: sample)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = ["sandbox", sample, "--state-dir", state, "--timeout", "60", "--", "30"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func samplePIDs() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
                Int(pid) != nil
                    && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map {
                        String(decoding: $0, as: UTF8.self).hasPrefix("/sample/" + name)
                    } ?? false)
            }
        }
        func hostMounts() throws -> [String] {
            try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n")
                .filter { $0.contains(state) }.map(String.init)
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while samplePIDs().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try #require(!samplePIDs().isEmpty, "the sample never started")
        #expect(try hostMounts() == [], "the jail's mounts are visible on the host")

        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // The sample dies with its supervisor (PR_SET_PDEATHSIG); its namespace, and with it
        // the jail's mounts, with the sample.
        let gone = ContinuousClock.now + .seconds(10)
        while !samplePIDs().isEmpty && ContinuousClock.now < gone { try await Task.sleep(for: .milliseconds(20)) }
        #expect(samplePIDs().isEmpty, "the sample outlived its supervisor")
        #expect(try hostMounts() == [], "a killed run left mounts on the host")
        // Nor a directory: runs share one mount point, and only a run that keeps files makes one.
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/sandbox") == ["jail"])
    }
}

/// `shmwarden run` as a separate process, its log in a file the test can wait on.
final class AgentProcess {
    let process = Process()
    let logFile: String

    /// Starts `shmwarden run` with `arguments` (after `run`).
    init(_ arguments: [String], logFile: String) throws {
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)  // a failure shows at the FileHandle below
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = ["run"] + arguments
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits (20 s at most) until the log contains `text`.
    func waitForLog(_ text: String) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains(text) == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The TCP port the agent logged it listens on, once it has (nil after 20 s).
    func httpPort() async throws -> Int? {
        guard try await waitForLog("http.address=") else { return nil }
        let log = try String(contentsOfFile: logFile, encoding: .utf8)
        guard let address = log.split(whereSeparator: \.isWhitespace).first(where: { $0.hasPrefix("http.address=") })
        else { return nil }
        return address.split(separator: ":").last.flatMap { Int(String($0.prefix { $0.isNumber })) }
    }

    /// kill -9 and reap.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
