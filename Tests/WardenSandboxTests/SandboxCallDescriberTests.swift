// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

@Suite struct SandboxCallDescriberTests {
    @Test func socketAddressesOfEachFamily() {
        // AF_INET 127.0.0.1:8080
        let inet: [UInt8] = [2, 0, 0x1f, 0x90, 127, 0, 0, 1] + Array(repeating: 0, count: 8)
        #expect(
            SandboxCallDescriber.socketAddress(inet, syscall: "connect")
                == .init(syscall: "connect", family: "AF_INET", address: "127.0.0.1", port: 8080))
        // AF_INET6 [::1]:443
        var inet6: [UInt8] = [10, 0, 0x01, 0xbb, 0, 0, 0, 0] + Array(repeating: 0, count: 16) + [0, 0, 0, 0]
        inet6[23] = 1
        #expect(SandboxCallDescriber.socketAddress(inet6, syscall: "sendto").address == "::1")
        #expect(SandboxCallDescriber.socketAddress(inet6, syscall: "sendto").port == 443)
        // AF_UNIX path and abstract
        let path: [UInt8] = [1, 0] + Array("/run/x.sock".utf8) + [0]
        #expect(SandboxCallDescriber.socketAddress(path, syscall: "connect").address == "/run/x.sock")
        let abstract: [UInt8] = [1, 0, 0] + Array("hidden".utf8)
        #expect(SandboxCallDescriber.socketAddress(abstract, syscall: "connect").address == "@hidden")
        #expect(SandboxCallDescriber.socketAddress([1], syscall: "connect").family == "unknown")
    }

    /// Relative paths against a working directory the kernel named (no symlinks in it).
    @Test func relativePathsJoinTheWorkingDirectory() {
        func join(_ directory: String, _ relative: String) -> String {
            String(decoding: SandboxCallDescriber.join(Array(directory.utf8), Array(relative.utf8)), as: UTF8.self)
        }
        #expect(join("/etc", "shadow") == "/etc/shadow")
        #expect(join("/", "x") == "/x")
        #expect(join("/tmp", "./a/./b") == "/tmp/a/b")
        #expect(join("/tmp", "../dev/shm/x") == "/dev/shm/x")
        #expect(join("/", "../../x") == "/x")
        #expect(join("/tmp", "..") == "/")
        // After another component, `..` stays: that component may be a symlink.
        #expect(join("/tmp", "link/../x") == "/tmp/link/../x")
    }

    @Test func descriptorPaths() {
        func number(_ path: String) -> Int32? { ProcessPath.descriptorNumber(inPath: Array(path.utf8)) }
        #expect(number("/proc/self/fd/3") == 3)
        #expect(number("/proc/thread-self/fd/12") == 12)
        #expect(number("/proc/4242/fd/7") == 7)
        #expect(number("/dev/fd/4") == 4)
        #expect(number("/proc/self/fd/x") == nil)
        #expect(number("/proc/self/fdinfo/3") == nil)
        #expect(number("/proc/self/fd/3/x") == nil)
        #expect(number("/usr/bin/true") == nil)
        #expect(number("proc/self/fd/3") == nil)
    }

    @Test func openFlagsAndModes() {
        #expect(SandboxCallDescriber.openFlags(O_RDONLY) == "O_RDONLY")
        #expect(SandboxCallDescriber.openFlags(O_RDWR | O_APPEND) == "O_RDWR|O_APPEND")
        #expect(
            SandboxCallDescriber.openFlags(O_WRONLY | O_CREAT | O_EXCL, mode: 0o4755)
                == "O_WRONLY|O_CREAT|O_EXCL mode 4755")
        #expect(SandboxCallDescriber.openFlags(O_WRONLY | O_CREAT, mode: 0o600) == "O_WRONLY|O_CREAT mode 0600")
    }
}
