// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Testing
import WardenLinux

@Suite struct SeccompTests {
    @Test func syscallNumbersAndNamesRoundTripInEachABI() throws {
        let native = SeccompArchitecture.native
        let ptrace = try #require(native.number(of: "ptrace"))
        #expect(native.name(of: ptrace) == "ptrace")
        #expect(native.number(of: "no_such_call") == nil)
        if let compatible = SeccompArchitecture.compatible {
            // i386's table is not x86_64's: socketcall exists only there.
            #expect(compatible.number(of: "socketcall") == 102)
            #expect(native.number(of: "socketcall") == nil)
            #expect(compatible.name(of: 102) == "socketcall")
        }
    }

    @Test func actionsReturnTheKernelsValues() {
        #expect(SeccompAction.allow.returnValue == 0x7fff_0000)
        #expect(SeccompAction.notify.returnValue == 0x7fc0_0000)
        #expect(SeccompAction.killProcess.returnValue == 0x8000_0000)
        #expect(SeccompAction.fail(errno: EPERM).returnValue == 0x0005_0000 | UInt32(EPERM))
    }

    @Test func aBuiltFilterExportsAsBPFAndGrowsWithItsRules() throws {
        let empty = try SeccompFilterBuilder().exportBPF()
        let filter = try SeccompFilterBuilder()
        try filter.add("ptrace", .fail(errno: EPERM))
        try filter.add("socket", .notify, [SeccompComparison(argument: 0, .equal, UInt64(AF_INET))])
        try filter.add("ioctl", .fail(errno: EPERM), [.int(argument: 1, equals: 0x5412)])
        // A call this ABI lacks is skipped, not an error.
        try filter.add("no_such_call", .killProcess)
        let program = try filter.exportBPF()
        #expect(empty.count % 8 == 0 && program.count % 8 == 0)
        #expect(program.count > empty.count)
    }

    @Test func anotherABIsRulesMergeIntoOneProgram() throws {
        let compatible = try #require(SeccompArchitecture.compatible, "an x86_64 host")
        let native = try SeccompFilterBuilder()
        try native.add("ptrace", .fail(errno: EPERM))
        let nativeOnly = try native.exportBPF()
        let second = try SeccompFilterBuilder(architecture: compatible)
        try second.add("ptrace", .fail(errno: EPERM))
        try native.merge(second)
        #expect(try native.exportBPF().count > nativeOnly.count)
    }

    @Test func aListenerOnADescriptorThatIsNoListenerReceivesAnError() throws {
        let fd = try sys_eventfd()
        defer { sys_close(fd) }
        let listener = try SeccompListener(fd)
        #expect(throws: SystemCallError.self) { try listener.receive() }
        #expect(!listener.isWaiting(1))
        #expect(!listener.proceed(1))
    }
}
