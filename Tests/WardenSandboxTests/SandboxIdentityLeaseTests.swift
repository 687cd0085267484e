// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenSandbox

/// A sandbox identity is held by one run at a time, host-wide, through an abstract unix socket.
struct SandboxIdentityLeaseTests {
    /// A range of its own per test: other tests' runs use `SandboxRunner.identities`.
    static func range(_ count: UInt32) -> ClosedRange<UInt32> {
        let top = 2_000_000_000 - UInt32.random(in: 0..<1_000_000) * 8
        return (top - count + 1)...top
    }

    @Test func anIdentityInUseIsSkippedAndFreeAgainOnceReleased() throws {
        let range = Self.range(3)
        let first = try SandboxIdentityLease.acquire(in: range, start: 0)
        #expect(first.identity == range.upperBound)
        let second = try SandboxIdentityLease.acquire(in: range, start: 0)
        #expect(second.identity == range.upperBound - 1)
        // From the bottom, around to the top.
        let third = try SandboxIdentityLease.acquire(in: range, start: 2)
        #expect(third.identity == range.lowerBound)
        #expect(throws: SandboxIdentityLease.Exhausted.self) { try SandboxIdentityLease.acquire(in: range, start: 1) }
        first.release()
        // A process another test spawns at this moment holds a copy of the lease's descriptor
        // from its fork until its exec (close-on-exec), so the name may stay bound that long.
        let deadline = ContinuousClock.now + .seconds(5)
        var again = try? SandboxIdentityLease.acquire(in: range, start: 1)
        while again == nil && ContinuousClock.now < deadline {
            usleep(1_000)
            again = try? SandboxIdentityLease.acquire(in: range, start: 1)
        }
        #expect(again?.identity == range.upperBound)
    }

    /// The claim is the kernel's, host-wide: an identity another process holds is skipped, and
    /// it is free again once that process dies, though it never released anything.
    @Test func anIdentityAnotherProcessHoldsIsFreeOnceItDies() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: probe), "build first: swift build --product sandbox-probe")
        let range = Self.range(2)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: probe)
        holder.arguments = [
            "hold-abstract", String(decoding: SandboxIdentityLease.name(of: range.upperBound), as: UTF8.self),
        ]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        // Its first line says the name is held.
        var line = [UInt8]()
        while line.last != UInt8(ascii: "\n"), let byte = try out.fileHandleForReading.read(upToCount: 1)?.first {
            line.append(byte)
        }
        #expect(String(decoding: line, as: UTF8.self) == "held\n")

        let lease = try SandboxIdentityLease.acquire(in: range, start: 0)
        #expect(lease.identity == range.lowerBound)
        lease.release()
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let freed = try SandboxIdentityLease.acquire(in: range, start: 0)
        #expect(freed.identity == range.upperBound)
    }
}

extension SandboxTests {
    /// A run takes an identity no other run holds, and with none free it does not run at all.
    @Test func aRunTakesAnIdentityNoOtherRunHolds() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let range = SandboxIdentityLeaseTests.range(2)
        let held = try SandboxIdentityLease.acquire(in: range, start: 0)
        var options = SandboxRunner.Options()
        options.identities = range
        let runner = SandboxRunner(directory: state + "/sandbox")
        let report = try runner.run(path: PathBytes("/usr/bin/true"), options: options)
        #expect(report.uid == range.lowerBound)
        #expect(report.exit.code == 0, "\(report.setupError ?? "")")

        let other = try SandboxIdentityLease.acquire(in: range, start: 1)
        #expect(other.identity == range.lowerBound, "the run kept its identity after it ended")
        #expect(throws: SandboxRunner.RunError.self) {
            try runner.run(path: PathBytes("/usr/bin/true"), options: options)
        }
        withExtendedLifetime((held, other)) {}
    }
}
