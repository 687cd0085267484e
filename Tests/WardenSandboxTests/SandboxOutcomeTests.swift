// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Testing
import WardenLinux

@testable import WardenSandbox

/// How a run ended, read from the launcher's status records: pure, no jail.
@Suite struct SandboxOutcomeTests {
    /// One `struct warden_sandbox_status` record: stage, errno, kind (1 exited, 2 killed), value.
    static func record(stage: Int32 = 0, errno: Int32 = 0, kind: Int32 = 0, value: Int32 = 0) -> [UInt8] {
        [stage, errno, kind, value].flatMap { field in withUnsafeBytes(of: field) { Array($0) } }
    }

    @Test func statusRecordsAreDecodedAndATornOneIsLeftOut() {
        let bytes = Self.record(kind: 1, value: 3) + Self.record(stage: 20, errno: ENOEXEC) + [1, 2, 3]
        let statuses = SandboxSpawn.Status.decode(bytes)
        #expect(statuses.count == 2)
        #expect(statuses[0].failedStage == nil && statuses[0].exitCode == 3 && statuses[0].signal == nil)
        #expect(statuses[1].failedStage == "execveat" && statuses[1].errno == ENOEXEC)
        #expect(SandboxSpawn.Status.decode(Self.record(stage: 99)).first?.failedStage == "stage 99")
    }

    @Test func anExitAKillAndATimeLimitAreToldApart() {
        let refusal: (Int32) -> String = { "refused \($0)" }
        let exited = SandboxRunner.outcome(
            of: SandboxSpawn.Status.decode(Self.record(kind: 1, value: 7)), timedOut: false, execRefusal: refusal)
        #expect(exited.0.code == 7 && exited.0.signal == nil && exited.setupError == nil)
        let killed = SandboxRunner.outcome(
            of: SandboxSpawn.Status.decode(Self.record(kind: 2, value: SIGSEGV)), timedOut: false,
            execRefusal: refusal)
        #expect(killed.0.signal == SIGSEGV && killed.0.code == nil)
        let atLimit = SandboxRunner.outcome(of: [], timedOut: true, execRefusal: refusal)
        #expect(atLimit.0.signal == SIGKILL && atLimit.0.atTimeLimit == true)
    }

    @Test func aFailedSetupSaysWhereAndAFailedExecWhy() {
        let refusal: (Int32) -> String = { "refused \($0)" }
        let mount = SandboxRunner.outcome(
            of: SandboxSpawn.Status.decode(Self.record(stage: 5, errno: EPERM)), timedOut: false,
            execRefusal: refusal)
        #expect(mount.setupError?.hasPrefix("sandbox setup failed at stage pivot_root: ") == true)
        let exec = SandboxRunner.outcome(
            of: SandboxSpawn.Status.decode(Self.record(stage: 20, errno: ENOENT)), timedOut: false,
            execRefusal: refusal)
        #expect(exec.setupError == "refused \(ENOENT)")
    }
}
