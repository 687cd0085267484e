// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenResponse
import WardenTestSupport

/// Real child processes, run from a copy of `sleep` on a tmpfs like a dropped binary.
@Suite(.serialized) struct ProcessKillerTests {
    let mount: TestMount
    let binary: String

    init() throws {
        mount = try TestMount()
        binary = mount.child("sleeper")
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: binary)
        chmod(binary, 0o755)
    }

    func identity(_ path: String) throws -> (device: UInt64, inode: UInt64) {
        let status = try #require(lstatOf(Array(path.utf8)))
        return (UInt64(status.st_dev), UInt64(status.st_ino))
    }

    @Test func killsTheProcessRunningTheEvidenceFile() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["30"])
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(file: try identity(binary)), signal: .kill)
        guard case .signalled(let detail) = outcome else {
            Issue.record("not signalled: \(outcome)")
            kill(child.processIdentifier, SIGKILL)
            return
        }
        #expect(detail.contains("SIGKILL") && detail.contains("sleeper"))
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL)
    }

    @Test func refusesAProcessRunningAnotherExecutable() throws {
        defer { mount.remove() }
        // The same pid now runs /bin/sleep itself, not the dropped copy: as after pid reuse.
        let child = try launch("/bin/sleep", ["30"])
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(file: try identity(binary)), signal: .kill)
        guard case .refused(let reason) = outcome else {
            Issue.record("a mismatched process was signalled: \(outcome)")
            return
        }
        #expect(reason.contains("not the evidence file"))
        #expect(child.isRunning)
    }

    @Test func checksByInodeOrPathWhenThereIsNoEvidenceFile() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["30"])
        defer {
            if child.isRunning { kill(child.processIdentifier, SIGKILL) }
            child.waitUntilExit()
        }
        let wrongInode = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(inode: try identity(binary).inode + 1), signal: .term)
        guard case .refused = wrongInode else {
            Issue.record("wrong proc.exe_ino was signalled")
            return
        }
        let wrongPath = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(path: PathBytes("/dev/shm/other")), signal: .term)
        guard case .refused = wrongPath else {
            Issue.record("wrong proc.exepath was signalled")
            return
        }
        #expect(
            ProcessKiller.kill(pid: child.processIdentifier, expecting: .init(), signal: .term)
                == .refused(
                    "nothing to check process \(child.processIdentifier) against (no evidence, proc.exe_ino or proc.exepath)"
                ))
        #expect(child.isRunning)
        let byPath = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(path: PathBytes(binary)), signal: .kill)
        guard case .signalled = byPath else {
            Issue.record("matching proc.exepath was refused: \(byPath)")
            return
        }
        child.waitUntilExit()
        #expect(child.terminationStatus == SIGKILL)
    }

    @Test func refusesGoneProcessesAndItself() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["0"])
        child.waitUntilExit()
        let pid = child.processIdentifier
        #expect(
            ProcessKiller.kill(pid: pid, expecting: .init(file: try identity(binary)), signal: .kill)
                == .refused("process \(pid) has already exited"))
        #expect(
            ProcessKiller.kill(pid: getpid(), expecting: .init(path: PathBytes("/x")), signal: .kill)
                == .refused("pid \(getpid()) is shmwarden itself"))
        #expect(ProcessKiller.kill(pid: 1, expecting: .init(), signal: .kill) == .refused("pid 1 is never signalled"))
    }
}
