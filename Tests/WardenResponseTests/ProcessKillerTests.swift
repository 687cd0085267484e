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

    /// The store's answer, for the one file `path` names.
    func captured(_ path: String) throws -> (UInt64, UInt64) -> Bool {
        let file = try identity(path)
        return { $0 == file.device && $1 == file.inode }
    }

    @Test func killsAProcessRunningACapturedFile() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["30"])
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(file: try identity(binary)), signal: .kill,
            isCaptured: try captured(binary))
        guard case .signalled(let detail) = outcome else {
            Issue.record("not signalled: \(outcome)")
            kill(child.processIdentifier, SIGKILL)
            return
        }
        #expect(detail.contains("SIGKILL") && detail.contains("sleeper") && detail.contains("captured"))
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
            pid: child.processIdentifier, expecting: .init(file: try identity(binary)), signal: .kill,
            isCaptured: try captured(binary))
        guard case .refused(let reason) = outcome else {
            Issue.record("a mismatched process was signalled: \(outcome)")
            return
        }
        #expect(reason.contains("not the evidence file"))
        #expect(child.isRunning)
    }

    /// What a forged alert asks: a process that runs a system binary, named by pid. Without
    /// the kernel saying it runs a captured, memfd or deleted file, nothing is signalled.
    @Test func refusesAProcessWhoseExecutableWasNotCaptured() throws {
        defer { mount.remove() }
        let child = try launch("/bin/sleep", ["30"])
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(), signal: .kill, isCaptured: { _, _ in false })
        guard case .refused(let reason) = outcome else {
            Issue.record("an uncaptured executable's process was signalled: \(outcome)")
            return
        }
        #expect(reason.contains("not a file shmwarden captured"), "\(reason)")
        #expect(child.isRunning)
    }

    @Test func killsAProcessWhoseExecutableWasDeleted() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["30"])
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        unlink(binary)
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(), signal: .kill, isCaptured: { _, _ in false })
        guard case .signalled(let detail) = outcome else {
            Issue.record("a deleted executable's process was not signalled: \(outcome)")
            return
        }
        #expect(detail.contains("was deleted"))
        child.waitUntilExit()
        #expect(child.terminationStatus == SIGKILL)
    }

    @Test func protectedProgramsAreNeverSignalled() throws {
        defer { mount.remove() }
        let sshd = mount.child("sshd")
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: sshd)
        chmod(sshd, 0o755)
        let child = try launch(sshd, ["30"])
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        let outcome = ProcessKiller.kill(
            pid: child.processIdentifier, expecting: .init(), signal: .kill, isCaptured: { _, _ in true })
        #expect(
            outcome
                == .refused("process \(child.processIdentifier) runs \(sshd): sshd is protected (sshd); not signalled"))
        #expect(child.isRunning)
    }

    @Test func refusesGoneProcessesItselfItsParentAndKernelThreads() throws {
        defer { mount.remove() }
        let child = try launch(binary, ["0"])
        child.waitUntilExit()
        let pid = child.processIdentifier
        let always: (UInt64, UInt64) -> Bool = { _, _ in true }
        #expect(
            ProcessKiller.kill(
                pid: pid, expecting: .init(file: try identity(binary)), signal: .kill, isCaptured: always)
                == .refused("process \(pid) has already exited"))
        #expect(
            ProcessKiller.kill(pid: getpid(), expecting: .init(), signal: .kill, isCaptured: always)
                == .refused("pid \(getpid()) is shmwarden itself"))
        #expect(
            ProcessKiller.kill(pid: getppid(), expecting: .init(), signal: .kill, isCaptured: always)
                == .refused("pid \(getppid()) is shmwarden's parent"))
        #expect(
            ProcessKiller.kill(pid: 1, expecting: .init(), signal: .kill, isCaptured: always)
                == .refused("pid 1 is never signalled"))
        // kthreadd (pid 2) has no executable.
        guard
            case .refused(let reason) = ProcessKiller.kill(
                pid: 2, expecting: .init(), signal: .kill, isCaptured: always)
        else {
            Issue.record("a kernel thread was signalled")
            return
        }
        #expect(reason.contains("no executable"))
    }
}
