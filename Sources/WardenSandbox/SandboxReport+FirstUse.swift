// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization
import WardenCore

extension SandboxReport {
    /// Pays, on the calling thread, the one-time costs that the end of a process's first run
    /// would otherwise pay while its caller waits: the Swift runtime's type metadata and
    /// protocol conformance lookups of the report's JSON encoding (every nested type), and those
    /// of the verdict's text searches. They are process-wide caches: a process's first run
    /// pays them on a thread of their own while the sample runs (`firstUseStarted`), where a
    /// CPU is free, instead of after it, on the way to the command's exit. `perf record` of
    /// `shmwarden sandbox /bin/true` put them at about 1.5 ms of its ~15 (the encoding 1.05 ms,
    /// the verdict 0.45 ms). Paid on the thread that opens the database instead, they competed
    /// with the jail's setup and the command was no faster.
    static func payFirstUseCosts() {
        var report = SandboxReport(
            id: "first-use", sha256: String(repeating: "0", count: 64), argv: ["/sample/first-use"], uid: 0,
            exit: .init(code: 0, signal: nil), timedOut: true,
            stillRunning: [.init(pid: 2, commandLine: "/sample/first-use", ownSession: true, name: "kworker")],
            durationMs: 1, syscalls: ["openat": 1], denied: ["socket": 1],
            network: [.init(syscall: "connect", family: "AF_INET", address: "192.0.2.1", port: 443)],
            lookups: [.init(request: "getaddrinfo", name: "example.invalid", pid: 2)],
            files: [
                .init(syscall: "openat", path: "/tmp/x", detail: "O_WRONLY|O_CREAT|O_TRUNC mode 0755", created: true),
                .init(syscall: "rename", path: "/tmp/x", detail: "to /tmp/y", created: false),
            ],
            processes: [
                .init(syscall: "execve", path: "/bin/sh", pid: 2, arguments: ["sh", "-c", "true"]),
                .init(syscall: "prctl", path: nil, pid: 2, renamedTo: "kworker"),
            ],
            signals: ["kill(1, 9)"],
            written: [.init(path: "/tmp/y", pathBase64: nil, size: 1, sha256: "", evidencePath: "")],
            writtenTruncated: false, stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false,
            setupError: nil, verdict: [])
        report.verdict = SandboxVerdict.sentences(report)
        _ = report.record(at: Timestamp(nanosecondsSinceEpoch: 0))
    }

    /// Set by the first run of this process to start paying the first-use costs.
    static let firstUseStarted = Atomic<Bool>(false)
}
