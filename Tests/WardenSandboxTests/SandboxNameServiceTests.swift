// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

@Suite struct SandboxNameServiceTests {
    /// glibc's nscd requests and the negative answers it takes as "not found" (not as "no nscd").
    @Test func nameServiceRequestsAndAnswers() {
        func bytes(_ fields: [Int32]) -> [UInt8] {
            fields.flatMap { value in withUnsafeBytes(of: value) { Array($0) } }
        }
        #expect(SandboxNameService.parseHeader(bytes([2, 14, 15]))! == (14, 15))
        #expect(SandboxNameService.parseHeader(bytes([3, 14, 15])) == nil, "another protocol version")
        #expect(SandboxNameService.parseHeader(bytes([2, 14, 0])) == nil, "an empty key")
        #expect(SandboxNameService.parseHeader(bytes([2, 14, 1025])) == nil, "a key over the limit")
        #expect(SandboxNameService.parseHeader(bytes([2, 14])) == nil)
        #expect(SandboxNameService.describe(Array("c2.example.net\0".utf8), .getAddressInfo) == "c2.example.net")
        #expect(SandboxNameService.describe([192, 0, 2, 7], .getHostByAddress) == "192.0.2.7")
        #expect(
            SandboxNameService.describe(
                [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1], .getHostByAddressIPv6)
                == "2001:db8:0:0:0:0:0:1")
        #expect(SandboxNameService.notFoundAnswer(.getAddressInfo) == bytes([2, 0, 0, 0, 0, 1]))
        #expect(SandboxNameService.notFoundAnswer(.getHostByName) == bytes([2, 0, 0, 0, -1, -1, 0, 1]))
        // Found: the header, then what glibc reads after it (aicache.c's and hstcache.c's layouts).
        #expect(
            SandboxNameService.foundAnswer(.getAddressInfo, name: "c2.io", address: [198, 18, 0, 1])
                == bytes([2, 1, 1, 4, 6, 0]) + [198, 18, 0, 1, 2] + Array("c2.io\0".utf8))
        #expect(
            SandboxNameService.foundAnswer(.getHostByName, name: "c2.io", address: [198, 18, 0, 1])
                == bytes([2, 1, 6, 0, 2, 4, 1, 0]) + Array("c2.io\0".utf8) + [198, 18, 0, 1])
    }
}
