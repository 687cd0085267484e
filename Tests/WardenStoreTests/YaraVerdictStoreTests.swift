// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenStore

@Suite struct YaraVerdictStoreTests {
    private static let sha = String(repeating: "ab", count: 32)

    private func verdict(_ status: YaraVerdict.Status, rules: [String], at nanos: Int64) -> YaraVerdict {
        YaraVerdict(
            sha256: Self.sha, ruleset: "set\(nanos)", status: status,
            matches: rules.map {
                YaraMatch(
                    rule: $0, namespace: "/r.yar", tags: ["t"], metadata: [YaraMeta(key: "author", value: "me")],
                    strings: [YaraStringMatch(identifier: "$a", offsets: [1, 2], count: 5)])
            }, scannedBytes: 100, size: 100, time: Timestamp(nanosecondsSinceEpoch: nanos), durationNanoseconds: 7)
    }

    /// An answer replaces what was stored; a scan without one never erases an answer.
    @Test func answersReplaceAndNonAnswersOnlyFillGaps() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let database = temporary.database
        _ = try database.apply([.yaraVerdict(verdict(.skipped, rules: [], at: 1))])
        #expect(try database.yaraVerdicts([Self.sha])[Self.sha]?.status == .skipped)
        _ = try database.apply([.yaraVerdict(verdict(.complete, rules: ["found"], at: 2))])
        let stored = try #require(try database.yaraVerdicts([Self.sha])[Self.sha])
        #expect(stored == verdict(.complete, rules: ["found"], at: 2), "every field round-trips")
        _ = try database.apply([.yaraVerdict(verdict(.timeout, rules: [], at: 3))])
        #expect(try database.yaraVerdicts([Self.sha])[Self.sha]?.matches.map(\.rule) == ["found"])
        _ = try database.apply([.yaraVerdict(verdict(.complete, rules: [], at: 4))])
        #expect(try database.yaraVerdicts([Self.sha])[Self.sha]?.ruleset == "set4")
        // Attached to the file records that hold those bytes.
        _ = try database.apply([.record(sampleRecord("/dev/shm/x", sha: Self.sha), nil)])
        #expect(try database.withYaraVerdicts(database.files()).first?.yara?.ruleset == "set4")
    }
}
