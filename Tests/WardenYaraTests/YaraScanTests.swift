// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
@preconcurrency import Glibc
import SystemPackage
import Testing
import WardenCore
import WardenLinux
import WardenTestSupport
import WardenYara

private func hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

/// A private directory with `bytes` written to `name` in it; returns the file's path.
private func write(_ bytes: [UInt8], named name: String, in directory: String) throws -> String {
    let path = directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

private func scratchDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "shmwarden-yara-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Scans `path` as the agent scans a capture, with `rules`.
private func verdict(
    _ path: String, rules: YaraRuleSet, settings: YaraSettings = YaraSettings(), expecting sha: String? = nil
) throws -> YaraVerdict {
    let fd = try sys_open(Array(path.utf8), flags: O_RDONLY)
    defer { sys_close(fd) }
    let scanner = YaraFileScanner(rules: SharedYaraRules(rules, paths: rules.files), settings: settings)
    return try #require(scanner.scan(fd, expectedSHA256: sha, now: { Timestamp(nanosecondsSinceEpoch: 1) }))
}

private func shippedRules() throws -> YaraRuleSet {
    try YaraRuleSet.load([YaraSamples.shippedRules()]).get()
}

@Suite(.serialized) struct YaraScanTests {
    /// Each shipped rule matches its own sample and nothing else does; a benign ELF and script match none.
    @Test func shippedRulesMatchTheirSamplesAndNotBenignFiles() throws {
        let rules = try shippedRules()
        #expect(rules.rules.ruleCount == 4)
        #expect(rules.warnings.isEmpty, "\(rules.warnings)")
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(String, [UInt8], [String])] = [
            ("noshdr", YaraSamples.elfWithoutSectionHeaders, ["shmwarden_elf_without_section_headers"]),
            ("upx", YaraSamples.upxMarkedELF, ["shmwarden_upx_packed"]),
            ("miner.sh", YaraSamples.minerScript, ["shmwarden_miner_pool_url"]),
            ("shell.sh", YaraSamples.reverseShellScript, ["shmwarden_reverse_shell_oneliner"]),
            ("true", YaraSamples.benignELF, []),
            ("cron.sh", YaraSamples.benignScript, []),
        ]
        for (name, bytes, expected) in cases {
            let path = try write(bytes, named: name, in: directory)
            let result = try verdict(path, rules: rules, expecting: hex(bytes))
            #expect(result.status == .complete, "\(name): \(result.summary)")
            #expect(result.matches.map(\.rule) == expected, "\(name): \(result.summary)")
            #expect(result.sha256 == hex(bytes) && result.scannedBytes == Int64(bytes.count))
            #expect(result.ruleset == rules.fingerprint)
        }
        // What a match carries: the rule's file, tags, metadata, and where its strings were.
        let shell = try verdict(try write(YaraSamples.reverseShellScript, named: "s", in: directory), rules: rules)
        let match = try #require(shell.matches.first)
        #expect(match.namespace == YaraSamples.shippedRules())
        #expect(match.tags == ["reverse_shell"])
        #expect(match.meta("author") == "shmwarden" && match.meta("attack") == "T1059.004")
        let string = try #require(match.strings.first)
        #expect(string.identifier == "$dev_tcp")
        // "bash -i >& /dev/tcp/…" begins right after the 12-byte "#!/bin/bash\n".
        #expect(string.offsets.first == 12, "\(string.offsets)")
    }

    /// The sample with its section headers removed still runs: the rule names something the
    /// kernel accepts.
    @Test func theSectionlessSampleIsARunnableELF() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try write(YaraSamples.elfWithoutSectionHeaders, named: "noshdr", in: directory)
        chmod(path, 0o755)
        let process = try retryingTextFileBusy {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            try process.run()
            return process
        }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    /// A rule file that does not compile is refused with its file and line; every broken file
    /// of a set is named.
    @Test func aSyntaxErrorIsRefusedWithItsLine() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bad = try write(
            Array(
                "rule fine { condition: true }\n\nrule broken {\n  strings:\n    $a = \"x\"\n  condition:\n    $a and\n}\n"
                    .utf8),
            named: "a-bad.yar", in: directory)
        let undefined = try write(
            Array("rule other { condition: $missing }\n".utf8), named: "b-undefined.yar", in: directory)
        let errors = try #require(
            {
                if case .failure(let errors) = YaraRuleSet.load([directory]) { return errors }
                return nil
            }())
        #expect(errors.messages.contains { $0.file == bad && $0.line == 8 && $0.message.contains("syntax error") })
        #expect(errors.messages.contains { $0.file == undefined && $0.line == 1 && $0.message.contains("$missing") })
        // include is refused: a rule set is its own files.
        let including = try write(Array("include \"/etc/passwd\"\n".utf8), named: "inc.yar", in: directory)
        if case .success = YaraRuleSet.load([including]) { Issue.record("an include compiled") }
    }

    /// A reload with a broken set keeps the last good one, and a fixed set replaces it.
    @Test func aBrokenReloadKeepsTheLastGoodSet() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try write(Array("rule first { condition: true }\n".utf8), named: "r.yar", in: directory)
        let shared = SharedYaraRules(try YaraRuleSet.load([file]).get(), paths: [file])
        let before = try #require(shared.current?.fingerprint)
        _ = try write(Array("rule first { condition: \n".utf8), named: "r.yar", in: directory)
        guard case .failure = shared.reload() else {
            Issue.record("a broken set compiled")
            return
        }
        #expect(shared.current?.fingerprint == before && shared.generation == 0)
        _ = try write(Array("rule second { condition: true }\n".utf8), named: "r.yar", in: directory)
        guard case .success(let set) = shared.reload() else {
            Issue.record("a good set was refused")
            return
        }
        #expect(set.fingerprint != before && shared.generation == 1)
        let target = try write([1, 2, 3], named: "x", in: directory)
        #expect(try verdict(target, rules: set).matches.map(\.rule) == ["second"])
    }

    /// A 300 MiB file is read only up to yara.max-file-size: the verdict says so, YARA's
    /// filesize is the file's, and matches in the prefix are still found.
    @Test func aLargeFileIsStoppedAtTheCap() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rules = try write(
            Array(
                "rule big { condition: filesize == 300MB }\nrule head { strings: $h = \"HEAD\" condition: $h at 0 }\nrule tail { strings: $t = \"TAIL\" condition: $t }\n"
                    .utf8),
            named: "r.yar", in: directory)
        let set = try YaraRuleSet.load([rules]).get()
        let path = directory + "/large"
        let fd = try sys_create(Array(path.utf8), flags: O_WRONLY, permissions: 0o600)
        try Array("HEAD".utf8).withUnsafeBytes { try sys_writeAll(fd, $0) }
        #expect(ftruncate(fd.rawValue, 300 << 20) == 0)
        // The tail marker sits past the cap: it must not be read.
        _ = Array("TAIL".utf8).withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress, 4, (300 << 20) - 4) }
        sys_close(fd)
        var settings = YaraSettings()
        settings.maxFileSize = 16 << 20
        let result = try verdict(path, rules: set, settings: settings)
        #expect(result.status == .truncated)
        #expect(result.scannedBytes == 16 << 20 && result.size == 300 << 20)
        #expect(Set(result.matches.map(\.rule)) == ["big", "head"])
        #expect(result.summary.contains("first 16777216 of 314572800 bytes"))
    }

    /// Bytes that do not hash to what was recorded get no answer: a file rewritten after its
    /// hash cannot be vouched for by a scan of its new content.
    @Test func bytesThatChangedAfterTheHashGetNoAnswer() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try write(YaraSamples.benignScript, named: "f", in: directory)
        let result = try verdict(path, rules: try shippedRules(), expecting: hex(YaraSamples.minerScript))
        #expect(result.status == .changed && result.matches.isEmpty && !result.isAnswer)
        #expect(!YaraCondition().matches(result))
    }
}
