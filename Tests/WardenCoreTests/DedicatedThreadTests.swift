// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

/// Threads carry their names to the kernel (`top -H`, `ps -L`, perf), and hand back results.
@Suite struct DedicatedThreadTests {
    private static func kernelName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?")
            .trimmingCharacters(in: .newlines)
    }

    @Test func eachWayOfStartingNamesTheThreadForTheKernel() async throws {
        let first = try await DedicatedThread.result(name: "warden-test1") { Self.kernelName() }
        #expect(first == "warden-test1", "\(first)")
        let second = try DedicatedThread.start(name: "warden-test2") { Self.kernelName() }.value()
        #expect(second == "warden-test2", "\(second)")
        // Linux refuses more than 15 bytes: the name is cut to fit, at a character boundary.
        let cut = try await DedicatedThread.result(name: "shmwarden-longer-name") { Self.kernelName() }
        #expect(cut == "shmwarden-longe", "\(cut)")
        #expect(try await DedicatedThread.result(name: "warden-ééééééé") { Self.kernelName() } == "warden-éééé")
    }

    @Test func pendingHandsBackWhatTheThreadThrewToEveryCaller() {
        struct Refused: Error {}
        let pending = DedicatedThread.start(name: "warden-test3") { () throws -> Int in throw Refused() }
        for _ in 0..<2 { #expect(throws: Refused.self) { try pending.value() } }
    }
}
