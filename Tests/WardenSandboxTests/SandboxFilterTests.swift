// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

@Suite struct SandboxFilterTests {
    /// The instructions ahead of libseccomp's program, run by a small interpreter of the three
    /// kinds they use: only i386's socketcall(SYS_SOCKET) and its socket(2) for IPv4 or IPv6 go
    /// to the observer; everything else, of any ABI, goes on to libseccomp's first instruction.
    @Test func thePrefixSendsOnlyI386SocketsToTheObserver() throws {
        let i386: UInt32 = 0x4000_0003
        let x86_64: UInt32 = 0xc000_003e
        let prefix = SandboxFilter.compatibleSocketsPrefix(SeccompArchitecture(token: i386))
        #expect(prefix.count % 8 == 0)
        let count = prefix.count / 8
        /// nil: it fell through to libseccomp's program (instruction `count`).
        func run(arch: UInt32, nr: UInt32, arg0: UInt32) -> UInt32? {
            var pc = 0
            var accumulator: UInt32 = 0
            while pc < count {
                let field = { (offset: Int) in
                    prefix[(8 * pc + offset)...].prefix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                }
                let code = UInt16(prefix[8 * pc]) | UInt16(prefix[8 * pc + 1]) << 8
                let (jumpIfTrue, jumpIfFalse, value) = (Int(prefix[8 * pc + 2]), Int(prefix[8 * pc + 3]), field(4))
                switch code {
                case 0x20:
                    accumulator = value == 4 ? arch : value == 0 ? nr : value == 16 ? arg0 : 0xdead
                    pc += 1
                case 0x15: pc += 1 + (accumulator == value ? jumpIfTrue : jumpIfFalse)
                case 0x06: return value
                default:
                    Issue.record("instruction \(code) at \(pc)")
                    return nil
                }
            }
            #expect(pc == count, "a jump past libseccomp's first instruction")
            return nil
        }
        let notify: UInt32 = 0x7fc0_0000
        #expect(run(arch: i386, nr: 102, arg0: 1) == notify)  // socketcall(SYS_SOCKET)
        #expect(run(arch: i386, nr: 102, arg0: 3) == nil)  // socketcall(SYS_CONNECT): libseccomp's
        #expect(run(arch: i386, nr: 359, arg0: 2) == notify)  // socket(AF_INET)
        #expect(run(arch: i386, nr: 359, arg0: 10) == notify)  // socket(AF_INET6)
        #expect(run(arch: i386, nr: 359, arg0: 1) == nil)  // socket(AF_UNIX)
        #expect(run(arch: i386, nr: 359, arg0: 17) == nil)  // socket(AF_PACKET): libseccomp refuses it
        #expect(run(arch: i386, nr: 4, arg0: 1) == nil)  // write
        #expect(run(arch: x86_64, nr: 41, arg0: 2) == nil)  // x86_64's socket: libseccomp's rules
        #expect(run(arch: x86_64, nr: 102, arg0: 1) == nil)  // x86_64's getuid
        #expect(run(arch: x86_64, nr: 359, arg0: 2) == nil)
        // Observing on x86_64, the program starts with it; the filter alone has none of it.
        if SandboxFilter.compatibleArchitecture?.token == i386 {
            #expect(try SandboxFilter(observe: true).program.starts(with: prefix))
            #expect(try !SandboxFilter(observe: false).program.starts(with: prefix))
        }
    }

    @Test func theFilterBuildsWithAndWithoutObservation() throws {
        let observing = try SandboxFilter(observe: true)
        let enforcing = try SandboxFilter(observe: false)
        #expect(observing.program != enforcing.program, "observation adds notify rules")
        #expect(enforcing.program.count % 8 == 0)
        #expect(SandboxFilter.name(of: 0) == "read")
    }
}
