// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenLinux
import WardenSensors
import WardenStore

/// Reads and writes a sysctl file, restoring the old value afterwards.
struct SysctlOverride {
    let path: String
    let previous: String

    init(_ path: String, _ value: String) throws {
        self.path = path
        previous = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try value.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func restore() { try? previous.write(toFile: path, atomically: false, encoding: .utf8) }
}

extension AgentIntegration {

    /// Overflow, mounts coming and going, the watch limit, and inotify on its own: the kernel edges.
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct SensorKernelLimitTests {
        @Test(.enabled(if: TestEnvironment.isRoot, "needs root to lower fs.inotify.max_queued_events and mount tmpfs"))
        func overflowRescansAndLosesNoExecutable() async throws {
            let mount = try TestMount(size: "256m")
            defer { mount.remove() }
            // A queue limit applies to instances created after it is set: lower both, start, restore.
            let inotifyLimit = try SysctlOverride("/proc/sys/fs/inotify/max_queued_events", "32")
            let fanotifyLimit = try? SysctlOverride("/proc/sys/fs/fanotify/max_queued_events", "32")
            let agent: AgentHarness
            do {
                agent = try await AgentHarness(watch: [mount.path])
            } catch {
                inotifyLimit.restore()
                fanotifyLimit?.restore()
                throw error
            }
            inotifyLimit.restore()
            fanotifyLimit?.restore()
            try await withAgent(agent) { agent in
                let count = 3000
                var expected: [PathBytes: String] = [:]
                for index in 0..<count {
                    let path = mount.child("burst-\(index).sh")
                    expected[PathBytes(path)] = try drop(Array("#!/bin/sh\n# burst \(index)\n".utf8), at: path)
                }
                let records = try await agent.waitForFiles(timeout: .seconds(60)) { records in
                    records.filter { $0.state == .present }.count >= count
                }
                let recorded = Dictionary(records.map { ($0.path, $0.sha256) }, uniquingKeysWith: { $1 })
                let missing = expected.filter { recorded[$0.key] != $0.value }
                #expect(missing.isEmpty, "\(missing.count) of \(count) executables missing or wrong")
                #expect(
                    agent.metrics[.kernelOverflows] + agent.metrics[.queueOverflows] >= 1, "the test did not overflow")
                #expect(agent.metrics[.rescans] >= 2, "start plus at least one overflow rescan")
                #expect(try !agent.database.sensorEvents(kind: .overflow).isEmpty)
            }
        }

        @Test(.enabled(if: TestEnvironment.isRoot, "needs root to mount tmpfs"))
        func tmpfsMountedWhileRunningIsWatched() async throws {
            let base = "/tmp/shmwarden-mounts-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: base + "/later", withIntermediateDirectories: true)
            defer {
                _ = umount2(base + "/later", Int32(MNT_DETACH))
                try? FileManager.default.removeItem(atPath: base)
            }
            try await withAgent(AgentHarness(watch: [], discovery: .under(PathBytes(base)))) { agent in
                #expect(Glibc.mount("tmpfs", base + "/later", "tmpfs", 0, "size=16m") == 0)
                #expect(try await agent.waitForMetrics { $0[.mountsAdded] >= 1 }, "the new mount was not noticed")
                let path = base + "/later/payload"
                let sha = try drop(trueBinary, at: path)
                let records = try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                let record = try #require(records.first { $0.path == PathBytes(path) })
                #expect(record.sha256 == sha)
                #expect(record.mountPoint == PathBytes(base + "/later"))
                // Unmounting takes the file with it: the record says so.
                #expect(umount2(base + "/later", Int32(MNT_DETACH)) == 0)
                #expect(try await agent.waitForMetrics { $0[.mountsRemoved] >= 1 }, "the unmount was not noticed")
                try await agent.waitForFiles { $0.first { $0.path == PathBytes(path) }?.state == .deleted }
                #expect(try !agent.database.sensorEvents(kind: .mountAdded).isEmpty)
                #expect(try !agent.database.sensorEvents(kind: .mountRemoved).isEmpty)
            }
        }

        @Test func watchLimitFallsBackToPeriodicRescans() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let limited = mount.child("limited")
            try FileManager.default.createDirectory(atPath: limited, withIntermediateDirectories: false)
            // The root's watch succeeds; every directory below it hits "ENOSPC" at the syscall seam.
            SyscallFaults.fail("inotify_add_watch", under: Array((limited + "/").utf8), after: 0, with: .noSpace)
            defer { SyscallFaults.clear(under: Array((limited + "/").utf8)) }
            try await withAgent(
                AgentHarness(
                    watch: [limited], fallbackRescanIntervalMilliseconds: 200, useFanotify: false)
            ) { agent in
                try FileManager.default.createDirectory(
                    atPath: limited + "/unwatched", withIntermediateDirectories: false)
                #expect(try await agent.waitForMetrics { $0[.watchLimitHits] >= 1 })
                let path = limited + "/unwatched/payload"
                let sha = try drop(trueBinary, at: path)
                let records = try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                #expect(records.first { $0.path == PathBytes(path) }?.sha256 == sha)
                #expect(try !agent.database.sensorEvents(kind: .watchLimit).isEmpty)
            }
        }

        /// A user who makes thousands of directories on /dev/shm must not take root's inotify
        /// watches from systemd and udev: the sensor stops at its share and rescans instead.
        @Test func theSensorTakesNoMoreThanItsShareOfWatches() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            for index in 0..<20 {
                try FileManager.default.createDirectory(
                    atPath: mount.child("d\(index)"), withIntermediateDirectories: false)
            }
            let limit = Double(
                try String(contentsOfFile: "/proc/sys/fs/inotify/max_user_watches", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines))!
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], fallbackRescanIntervalMilliseconds: 200, useFanotify: false,
                    configure: { $0.inotifyWatchShare = 5.5 / limit })
            ) { agent in
                #expect(try await agent.waitForMetrics { $0[.watchBudgetHits] >= 1 })
                #expect(agent.metrics[.watchesAdded] <= 5)
                // Files in the unwatched directories are still found, by the rescans.
                let path = mount.child("d19/payload")
                let sha = try drop(trueBinary + [3], at: path)
                let records = try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                #expect(records.first { $0.path == PathBytes(path) }?.sha256 == sha)
                #expect(try agent.database.sensorEvents(kind: .watchLimit).contains { $0.detail.contains("share") })
            }
        }

        @Test func inotifyAloneStillPinsAtCreate() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(AgentHarness(watch: [mount.path], useFanotify: false)) { agent in
                // Create, then write, close, execute, delete: the pin taken at IN_CREATE keeps the
                // bytes. The test waits for the pin before writing: a dropper that finishes before
                // the sensor reads IN_CREATE at all wins (a documented limit of inotify alone, which
                // a loaded machine hit in CI: nothing recorded), and that is not what this checks.
                let path = mount.child("dropper")
                let fd = try sys_create(Array(path.utf8), flags: O_WRONLY, permissions: 0o755)
                #expect(try await agent.waitForMetrics { $0[.filesPinned] >= 1 }, "no pin at IN_CREATE")
                try trueBinary.withUnsafeBytes { try sys_writeAll(fd, $0) }
                sys_close(fd)
                let sha = sha256Hex(trueBinary)
                let (status, _) = try runProcess(path, [])
                #expect(status == 0)
                _ = unlink(path)
                let records = try await agent.waitForFiles {
                    $0.contains { $0.path == PathBytes(path) && $0.state == .deleted }
                }
                let record = try #require(records.first { $0.path == PathBytes(path) })
                #expect(record.sha256 == sha)
                #expect(agent.metrics[.fanotifyEvents] == 0)
                #expect(agent.metrics[.filesPinned] >= 1)
            }
        }

        @Test(.enabled(if: TestEnvironment.isRoot, "fanotify needs CAP_SYS_ADMIN"))
        func fanotifyCarriesTheDescriptorOfAnExecutedFile() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            // Placed before the agent starts: only the exec event can bring it in as a new event.
            let path = mount.child("preexisting")
            let sha = try drop(trueBinary + [5], at: path)
            try await withAgent(AgentHarness(watch: [mount.path])) { agent in
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                let before = agent.metrics[.fanotifyEvents]
                let (status, _) = try runProcess(path, [])
                #expect(status == 0)
                #expect(try await agent.waitForMetrics { $0[.fanotifyEvents] > before }, "no FAN_OPEN_EXEC event")
                #expect(try agent.database.files(FileQuery(path: path)).first?.sha256 == sha)
            }
        }
    }
}

extension AgentIntegration.SensorKernelLimitTests {
    /// A user drops a thousand unique executables, more than the state directory's file system
    /// holds: copies stop at the budget (each record says why), every file is still recorded,
    /// the database stays intact, and alerts are still taken.
    @Test func aFullStateDirectoryStopsCopiesNotRecordsOrAlerts() async throws {
        let state = try TestMount(size: "64m")
        let drops = try TestMount(size: "256m")
        defer {
            drops.remove()
            state.remove()
        }
        try await withAgent(
            AgentHarness(
                watch: [drops.path], http: IntakeServerConfiguration(port: 0, insecure: true),
                stateDirectory: state.child("state")), keepState: true
        ) { agent in
            let port = await agent.services.listening.port()
            let filler = [UInt8](repeating: 0x41, count: 100 << 10)
            for index in 0..<1000 {
                var bytes = trueBinary
                withUnsafeBytes(of: UInt32(index)) { bytes += $0 }
                _ = try drop(bytes + filler, at: drops.child("x\(index)"))
            }
            let records = try await agent.waitForFiles(timeout: .seconds(120)) { records in
                records.filter { $0.sha256 != nil }.count >= 1000
            }
            #expect(records.filter { $0.sha256 != nil }.count >= 1000)
            #expect(try await agent.waitForMetrics { $0[.evidenceSkipped] >= 1 })
            let (status, _, _) = try await post(
                "http://127.0.0.1:\(port)/falco", devShmAlert(exepath: drops.child("x1")))
            #expect(status == 200)
            let (_, metrics) = try await get("http://127.0.0.1:\(port)/metrics")
            #expect(gauge("shmwarden_state_over_budget", in: metrics) == 1)
        }
        let reopened = try EvidenceDatabase(path: state.child("state") + "/shmwarden.sqlite")
        #expect(try reopened.integrityCheck() == ["ok"])
        let files = try reopened.files()
        let skipped = files.filter { $0.evidenceState.hasPrefix("skipped, budget") }
        #expect(!skipped.isEmpty)
        #expect(files.filter { $0.evidenceState == "stored" }.count > 100, "copies were made until the budget")
        #expect(try reopened.alertCount() == 1)
        // At least a tenth of the file system stayed free.
        let space = try #require(sys_fileSystemSpace(Array(state.path.utf8)))
        #expect(space.available >= space.size / 10 - (1 << 20), "\(space)")
    }
}
