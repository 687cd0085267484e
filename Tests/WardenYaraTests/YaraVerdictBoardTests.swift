// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenLinux
import WardenYara

@Suite struct YaraVerdictBoardTests {
    private let sha = String(repeating: "c", count: 64)

    private func verdict(_ rule: String) -> YaraVerdict {
        YaraVerdict(
            sha256: sha, ruleset: "set", status: .complete, matches: [YaraMatch(rule: rule, namespace: "/r.yar")],
            time: Timestamp(nanosecondsSinceEpoch: 0))
    }

    /// A responder waits for an expected scan until its verdict is published, no longer.
    @Test func aWaiterGetsTheVerdictOfAnExpectedScan() throws {
        let board = YaraVerdictBoard()
        #expect(
            board.verdict(for: sha, waitingUntil: sys_monotonicNanoseconds() + 1_000_000_000) == nil,
            "not expected: no wait")
        board.expect(sha)
        let published = verdict("found")
        // A thread of its own: the waits below block theirs, as the responder's does.
        Thread.detachNewThread { [sha] in
            usleep(50_000)
            board.publish(sha, published)
        }
        let started = sys_monotonicNanoseconds()
        let got = board.verdict(for: sha, waitingUntil: started + 5_000_000_000)
        #expect(got == published)
        #expect(sys_monotonicNanoseconds() - started < 4_000_000_000, "woken by the publication, not the deadline")
    }

    /// A scan the guard publishes (not expected) leaves an expected one pending, and the
    /// capture pipeline's wait for the guard's scan ends when it is published.
    @Test func theGuardsPublicationsSettleNothingTheyDidNotExpect() throws {
        let board = YaraVerdictBoard()
        board.expect(sha)
        board.begin(sha)
        #expect(board.isScanning(sha))
        board.publish(sha, verdict("guard"), expected: false)
        #expect(!board.isScanning(sha))
        #expect(board.latest(sha)?.matches.first?.rule == "guard")
        // Still pending: a waiter waits for the capture's own publication (or its deadline).
        let started = sys_monotonicNanoseconds()
        _ = board.verdict(for: sha, waitingUntil: started + 100_000_000)
        #expect(sys_monotonicNanoseconds() - started >= 90_000_000)
        board.publish(sha, nil)
        #expect(
            board.verdict(for: sha, waitingUntil: sys_monotonicNanoseconds() + 1_000_000_000)?.matches.first?.rule
                == "guard")
        board.begin(sha)
        Thread.detachNewThread { [sha] in
            usleep(50_000)
            board.publish(sha, nil, expected: false)
        }
        board.waitWhileScanning(sha, until: sys_monotonicNanoseconds() + 5_000_000_000)
        #expect(!board.isScanning(sha))
    }
}
