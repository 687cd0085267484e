// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenLinux

/// The shipped systemd unit, `dist/systemd/shmwarden.service`, against what the agent does under
/// it. The sandbox action runs samples from the service, so the service's capability bounding
/// set and every seccomp restriction systemd puts on it are the jail's too.
enum ServiceUnit {
    static let path = packagePath("dist/systemd/shmwarden.service")

    /// The values of `key=` in the unit, in order (a later line adds to or replaces an earlier one
    /// as systemd says per key; the tests read the one line each key has).
    static func values(_ key: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix(key + "=") }
            .map { String($0.dropFirst(key.count + 1)) }
    }

    /// `CapabilityBoundingSet=` as setpriv(1) names them: `sys_admin`, `setuid`, …
    static func boundingSet() throws -> [String] {
        try values("CapabilityBoundingSet").flatMap { $0.split(separator: " ") }
            .map { $0.lowercased().replacingOccurrences(of: "cap_", with: "") }
    }
}

extension AgentIntegration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct ServiceUnitTests {
        /// `.build/debug/sandbox-probe`, built by the README's test command.
        static let probe = packagePath(".build/debug/sandbox-probe")

        /// Runs `shmwarden sandbox` with exactly `capabilities` in its bounding set, as systemd
        /// starts the agent (root without file capabilities: what is bounded is all it has).
        func sandbox(_ sample: String, _ arguments: [String], capabilities: [String], state: String) throws
            -> (status: Int32, report: [String: Any])
        {
            let setpriv = Process()
            setpriv.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            setpriv.arguments =
                ["--bounding-set", (["-all"] + capabilities.map { "+" + $0 }).joined(separator: ","), Binary.path]
                + ["sandbox", sample, "--state-dir", state, "--json", "--timeout", "20", "--"] + arguments
            let out = Pipe()
            setpriv.standardOutput = out
            setpriv.standardError = FileHandle.nullDevice
            try setpriv.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            setpriv.waitUntilExit()
            let report = try #require(
                try JSONSerialization.jsonObject(with: data) as? [String: Any],
                "no report: \(String(decoding: data, as: UTF8.self))")
            return (setpriv.terminationStatus, report)
        }

        /// The sandbox runs, as an unprivileged uid, with its refused calls counted, with nothing
        /// but the unit's capabilities; one capability fewer and the jail cannot start, which the
        /// command says with exit 1 and the report's reason.
        @Test(.enabled(if: TestEnvironment.isRoot, "the sandbox needs root"))
        func theSandboxRunsWithTheUnitsCapabilities() throws {
            try #require(Binary.exists, "build first: swift build")
            try #require(FileManager.default.isExecutableFile(atPath: Self.probe), "build first: swift build")
            let capabilities = try ServiceUnit.boundingSet()
            try #require(capabilities.contains("sys_admin"), "no CapabilityBoundingSet in \(ServiceUnit.path)")
            let state = makeStateDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }

            let (status, report) = try sandbox(Self.probe, ["mount"], capabilities: capabilities, state: state)
            #expect(status == 0, "\(report["setupError"] ?? "")")
            #expect(report["setupError"] == nil)
            #expect((report["uid"] as? Int ?? 0) > 0)
            #expect((report["exit"] as? [String: Any])?["code"] as? Int != nil)
            #expect((report["denied"] as? [String: Int])?["mount"] ?? 0 >= 1, "\(report["denied"] ?? "")")
            // What the calls came to is traced with the unit's capabilities too (perf on the
            // sample: CAP_SYS_ADMIN and CAP_SYS_PTRACE).
            if SyscallExitTrace.isSupported {
                let processes = report["processes"] as? [[String: Any]] ?? []
                #expect(processes.first?["result"] as? String == "ok", "\(processes)")
            }

            // An IPv4 socket's stand-in is made in the jail's network namespace, which the
            // observer's thread joins (setns: CAP_SYS_ADMIN): a resolver of its own is answered.
            let (resolved, lookups) = try sandbox(
                Self.probe, ["resolve-connected", "c2.example.invalid"], capabilities: capabilities, state: state)
            #expect(resolved == 0, "\(lookups["setupError"] ?? "")")
            #expect(
                lookups["stdout"] as? String == "server 127.0.0.1 id matches rcode 0 address 198.18.0.1\n",
                "\(lookups["stdout"] ?? "")")
            #expect(
                (lookups["lookups"] as? [[String: Any]])?.first?["name"] as? String == "c2.example.invalid",
                "\(lookups["lookups"] ?? "")")
            // One on an unconnected socket (musl's): its query goes through a copy of the
            // sample's socket (pidfd_getfd: CAP_SYS_PTRACE), sent as the sample's process
            // (SCM_CREDENTIALS of another pid: CAP_SYS_ADMIN), and its answer is written into the
            // sample's memory (process_vm_writev: CAP_SYS_PTRACE).
            let (_, unconnected) = try sandbox(
                Self.probe, ["resolve-unconnected", "c2.example.invalid", "127.0.0.1"], capabilities: capabilities,
                state: state)
            #expect(
                (unconnected["stdout"] as? String)?.contains("from 127.0.0.1:53 (16) the server, id matches, rcode 0")
                    == true, "\(unconnected["stdout"] ?? "") \(unconnected["setupError"] ?? "")")
            let asked = (unconnected["lookups"] as? [[String: Any]])?.first
            let sample = (unconnected["processes"] as? [[String: Any]])?.first
            #expect(asked?["pid"] as? Int == sample?["pid"] as? Int && asked?["pid"] != nil, "\(asked ?? [:])")

            let (withoutSetUID, failed) = try sandbox(
                "/bin/true", [], capabilities: capabilities.filter { $0 != "setuid" && $0 != "setgid" }, state: state)
            #expect(withoutSetUID == 1)
            #expect((failed["setupError"] as? String)?.contains("setgroups") == true, "\(failed["setupError"] ?? "")")
        }

        /// What systemd would add to the service that the jail cannot live with: each is a
        /// seccomp filter or namespace rule the sample would inherit for good.
        @Test func theUnitLeavesTheSandboxWhatItNeeds() throws {
            // The jail makes new pid, mount, net, ipc, uts and cgroup namespaces.
            let namespaces = try ServiceUnit.values("RestrictNamespaces")
            #expect(namespaces.allSatisfy { $0 == "~user" || $0 == "no" }, "\(namespaces)")
            // sethostname(2) in the jail's own uts namespace: ProtectHostname refuses it.
            #expect(try ServiceUnit.values("ProtectHostname").allSatisfy { $0 == "no" })
            // A packed sample makes its unpacked code executable.
            #expect(try ServiceUnit.values("MemoryDenyWriteExecute").allSatisfy { $0 == "no" })
            // The audit records of refused calls come over netlink.
            let families = try ServiceUnit.values("RestrictAddressFamilies").flatMap { $0.split(separator: " ") }
            #expect(families.isEmpty || families.contains("AF_NETLINK"), "\(families)")
            #expect(try ServiceUnit.boundingSet().contains("audit_read"))
        }
    }
}
