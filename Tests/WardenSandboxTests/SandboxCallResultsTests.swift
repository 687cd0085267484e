// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

/// Pairing notified calls with traced exits: by thread, by number, inside the window from the
/// call's answer to its thread's next answer. A missing exit leaves a call without a result,
/// never with another call's.
@Suite struct SandboxCallResultsTests {
    typealias Call = SandboxCallResults.Call
    typealias Exit = SyscallExitTrace.Exit
    // x86_64's numbers (any numbers would do: the pairing compares them, nothing more).
    let openat: Int64 = 257
    let kill: Int64 = 62
    let execve: Int64 = 59
    let execveat: Int64 = 322

    @Test func eachCallGetsItsOwnExit() {
        let calls = [
            Call(tid: 7, number: openat, answeredAt: 10), Call(tid: 8, number: kill, answeredAt: 12),
            Call(tid: 7, number: openat, answeredAt: 30),
        ]
        // Two CPUs' buffers, each in its own order.
        let exits = [
            Exit(tid: 7, time: 35, number: openat, value: 4), Exit(tid: 8, time: 14, number: kill, value: -1),
            Exit(tid: 7, time: 11, number: openat, value: -30),
        ]
        #expect(SandboxCallResults.values(of: calls, in: exits) == [-30, -1, 4])
    }

    @Test func aLostExitLeavesItsCallWithoutAResult() {
        let calls = [Call(tid: 7, number: openat, answeredAt: 10), Call(tid: 7, number: openat, answeredAt: 30)]
        // The first call's exit was dropped: the second's comes after the second answer.
        let exits = [Exit(tid: 7, time: 31, number: openat, value: 3)]
        #expect(SandboxCallResults.values(of: calls, in: exits) == [nil, 3])
        #expect(SandboxCallResults.values(of: calls, in: []) == [nil, nil])
    }

    @Test func exitsBeforeTheAnswerOrOfOtherCallsAreNotTaken() {
        let calls = [Call(tid: 7, number: kill, answeredAt: 10)]
        let exits = [
            Exit(tid: 7, time: 9, number: kill, value: 0),  // an earlier call's
            Exit(tid: 7, time: 11, number: openat, value: 3),  // a call not notified
            Exit(tid: 9, time: 12, number: kill, value: 0),  // another thread's
            Exit(tid: 7, time: 13, number: kill, value: -3),
        ]
        #expect(SandboxCallResults.values(of: calls, in: exits) == [-3])
    }

    /// An execveat that replaced the program exits as an execve; one that failed, as itself.
    @Test func anExecveatThatSucceededExitsAsAnExecve() {
        let calls = [
            Call(tid: 7, number: execveat, answeredAt: 10, numbersAfterExec: [execve]),
            Call(tid: 8, number: execveat, answeredAt: 10, numbersAfterExec: [execve]),
        ]
        let exits = [
            Exit(tid: 7, time: 20, number: execve, value: 0), Exit(tid: 8, time: 20, number: execveat, value: -2),
        ]
        #expect(SandboxCallResults.values(of: calls, in: exits).map { $0.map(ErrnoName.result) } == ["ok", "ENOENT"])
    }

    @Test func errnoNamesAreLinuxs() {
        #expect(ErrnoName.of(30) == "EROFS")
        #expect(ErrnoName.of(13) == "EACCES")
        #expect(ErrnoName.of(11) == "EAGAIN")
        #expect(ErrnoName.of(95) == "EOPNOTSUPP")
        #expect(ErrnoName.of(999) == "errno 999")
        #expect(ErrnoName.result(0) == "ok")
        #expect(ErrnoName.result(12) == "ok")
        #expect(ErrnoName.result(-1) == "EPERM")
        #expect(ErrnoName.result(-513) == "interrupted")
    }
}
