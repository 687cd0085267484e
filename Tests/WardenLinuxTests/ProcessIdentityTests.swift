// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Testing
import WardenLinux

/// The exec guard's "who is this process": the pidfd ioctl and the /proc fallback agree.
@Suite struct ProcessIdentityTests {
    @Test func ownIdentityMatchesGetppidAndGeteuid() {
        let identity = sys_processIdentity(of: getpid())
        #expect(identity.ppid == getppid())
        #expect(identity.uid == geteuid())
        #expect(sys_parentPID(of: getpid()) == getppid(), "the /proc fallback says the same")
    }

    /// A child that exited but was not reaped still answers (the guard reads a process that
    /// may exit right after its exec); once reaped, it is gone.
    @Test func aZombieAnswersAndAReapedProcessDoesNot() throws {
        let child = fork()
        if child == 0 { _exit(0) }
        try #require(child > 0)
        var info = siginfo_t()
        _ = waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT)  // exited, not reaped
        let zombie = sys_processIdentity(of: child)
        #expect(zombie.ppid == getpid())
        #expect(zombie.uid == geteuid())
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
        #expect(sys_processIdentity(of: child) == ProcessIdentity(ppid: nil, uid: nil))
    }
}
