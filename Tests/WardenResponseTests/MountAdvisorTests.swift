// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux
import WardenResponse
import WardenTestSupport

@Suite(.enabled(if: TestEnvironment.isRoot, "needs root to mount and remount"))
struct MountAdvisorTests {
    @Test func adviceForMountsWithAndWithoutNoexec() throws {
        let open = try TestMount()
        let hardened = try TestMount(options: "noexec,nosuid,nodev")
        defer {
            open.remove()
            hardened.remove()
        }
        let advice = MountAdvisor.advice(for: try MountTable.read())
        let openAdvice = try #require(advice.first { $0.mountPoint == open.path })
        let hardenedAdvice = try #require(advice.first { $0.mountPoint == hardened.path })
        #expect(!openAdvice.noexec && !openAdvice.nosuid && !openAdvice.nodev)
        #expect(openAdvice.remountCommand == "mount -o remount,noexec,nosuid,nodev \(open.path)")
        #expect(
            openAdvice.fstabLine == "tmpfs \(open.path) tmpfs rw,relatime,nosuid,nodev,noexec,size=65536k,mode=755 0 0")
        #expect(hardenedAdvice.noexec && hardenedAdvice.nosuid && hardenedAdvice.nodev)
        #expect(hardenedAdvice.remountCommand.isEmpty)
        #expect(openAdvice.risks.contains { $0.contains("PROT_EXEC") })
    }

    @Test func remountAddsNoexecKeepsTheRestAndExecFails() throws {
        let mount = try TestMount(options: "nodev")
        defer { mount.remove() }
        let binary = mount.child("true")
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: binary)
        chmod(binary, 0o755)
        let before = try launch(binary, [])
        before.waitUntilExit()
        #expect(before.terminationStatus == 0)

        let result = try MountAdvisor.remount(PathBytes(mount.path), adding: [.noexec])
        #expect(!result.alreadySet)
        #expect(result.after.contains("noexec") && result.after.contains("nodev"), "\(result.after)")
        #expect(!result.after.contains("nosuid"))
        let entry = try #require(MountAdvisor.mount(at: PathBytes(mount.path), in: try MountTable.read()))
        #expect(entry.superOptions.contains("size=65536k"), "the filesystem's own options are untouched")
        // The kernel now refuses to execute from it.
        #expect(throws: (any Error).self) { try launch(binary, []) }
        #expect(try MountAdvisor.remount(PathBytes(mount.path), adding: [.noexec]).alreadySet)
    }

    @Test func memfdAdviceReadsTheSysctl() {
        let advice = MountAdvisor.memfdAdvice()
        let exists = FileManager.default.fileExists(atPath: "/proc/sys/vm/memfd_noexec")
        #expect((advice.current != nil) == exists)
        #expect(advice.command == "sysctl -w vm.memfd_noexec=2")
    }
}
