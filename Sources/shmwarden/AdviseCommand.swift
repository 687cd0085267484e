// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenLinux
import WardenResponse

struct AdviseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "advise",
        abstract: "Show, for every tmpfs mount, whether it allows exec and how to remount it noexec.",
        discussion: """
            Reads /proc/self/mountinfo and prints each tmpfs mount's options, the remount command \
            (shell-quoted for the exact path), the fstab line that makes it persistent, the known \
            risks of noexec there, and the vm.memfd_noexec advice for fileless (memfd) execution. \
            It changes nothing.
            """)

    @Flag(help: "Print a JSON array, one entry per tmpfs mount (each with the memfd advice too).")
    var json = false

    struct Report: Encodable {
        var mounts: [NoexecAdvice]
        var memfd: MemfdAdvice
    }

    func run() throws {
        let report = Report(mounts: MountAdvisor.advice(for: try MountTable.read()), memfd: MountAdvisor.memfdAdvice())
        if json {
            print(
                try JSONOutput.encode(
                    report.mounts.map { mount in
                        var entry = mount
                        entry.memfd = report.memfd
                        return entry
                    }))
            return
        }
        for mount in report.mounts {
            let flags = [("noexec", mount.noexec), ("nosuid", mount.nosuid), ("nodev", mount.nodev)]
                .map { "\($0.0)=\($0.1 ? "yes" : "NO")" }.joined(separator: " ")
            print("\(mount.mountPoint)  [\(mount.options.joined(separator: ","))]  \(flags)")
            if let owner = mount.owner { print("    owned by: \(owner)") }
            if mount.remountIsCommand {
                print("    now:        \(mount.remountCommand)")
                if let line = mount.fstabLine { print("    persistent: \(line)") }
                print("    \(mount.persistence)")
            } else {
                print("    already noexec,nosuid,nodev")
            }
        }
        if report.mounts.contains(where: { !$0.noexec }) {
            print("\nRisks of noexec:")
            for risk in report.mounts.first?.risks ?? [] { print("  - \(risk)") }
        }
        print("\nmemfd execution (not on any mount): \(report.memfd.explanation)")
        print("    now:        \(report.memfd.command)")
        print("    persistent: \(report.memfd.persistentFile)")
    }
}
