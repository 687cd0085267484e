// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing

/// The built `shmwarden` binary, driven as a user drives it.
enum Binary {
    /// `<package>/.build/debug/shmwarden`; the README's test command builds it before testing.
    static let path: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/debug/shmwarden").path
    }()

    static var exists: Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// Runs the binary to completion: (exit status, stdout, stderr).
    static func run(_ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

extension SensorIntegration {
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
            for key in ["path", "sha256", "size", "mode", "uid", "gid", "device", "inode", "kind", "firstSeen", "state", "evidencePath"] {
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
            process.arguments = ["run", "--state-dir", state, "--no-discover", "--watch", mount.path, "--log-level", "info"]
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
