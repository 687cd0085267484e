// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

@testable import WardenSandbox

/// The Markdown form of a sandbox run: every fact of the JSON form, and none of the sample's
/// text able to break out of the cell, span or block it is shown in.
@Suite struct SandboxReportMarkdownTests {
    private let report = SandboxReport(
        id: "s1", sha256: String(repeating: "a", count: 64), argv: ["/sample/drop", "-x", "a b"], uid: 2_147_483_646,
        exit: .init(code: 0, signal: nil), timedOut: true,
        stillRunning: [.init(pid: 42, commandLine: "/tmp/.x/miner --pool p", ownSession: true, name: "kworker/0:1")],
        durationMs: 4.5, syscalls: ["openat": 2, "execve": 1], denied: ["socket": 3],
        network: [
            .init(syscall: "connect", family: "AF_UNIX", address: "/run/docker.sock", port: nil),
            .init(syscall: "connect", family: "AF_INET", address: "203.0.113.7", port: 4444, result: "ENETUNREACH"),
            {
                var sunk = SandboxReport.NetworkAttempt(
                    syscall: "connect", family: "AF_INET", address: "198.51.100.2", port: 3333, result: "ok")
                sunk.sentBytes = 19
                sunk.sent = #"{"method":"login"}\x0a"#
                return sunk
            }(),
        ],
        lookups: [.init(request: "getaddrinfo", name: "c2.example", pid: 41, answer: "198.18.0.1")],
        files: [
            .init(syscall: "openat", path: "/tmp/a|b`c", detail: "O_WRONLY|O_CREAT mode 0755", created: true),
            .init(
                syscall: "openat", path: "/etc/shadow", detail: "O_RDONLY", created: false, passedAs: "shadow",
                result: "EACCES"),
            .init(syscall: "openat", path: "cfg", detail: "O_RDONLY", created: false, directoryDescriptor: 5),
        ],
        processes: [
            {
                var curl = SandboxReport.Process(
                    syscall: "execve", path: "/usr/bin/curl", pid: 41,
                    arguments: ["curl", "-o", "/tmp/x", "http://h/y"])
                curl.result = "ok"
                return curl
            }(),
            .init(syscall: "prctl", path: nil, pid: 42, renamedTo: "kworker/0:1"),
        ],
        signals: ["kill(1, 9)"],
        written: [
            .init(
                path: "/tmp/x", pathBase64: nil, size: 5, sha256: String(repeating: "b", count: 64),
                evidencePath: "/e/x")
        ],
        writtenTruncated: true, stdout: "done\n```\nnot a fence end\n", stderr: "", stdoutTruncated: true,
        stderrTruncated: false, setupError: nil, verdict: ["It exited with code 0, and 1 process(es) …", "Second."])

    @Test func everyFactHasItsPlace() {
        let lines = SandboxReportMarkdown.render(report).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        #expect(lines.first == "# Sandbox run `s1`")
        #expect(lines.contains("| command | `/sample/drop -x 'a b'` |"))
        #expect(lines.contains("| ended | exit code 0 (time limit reached) |"))
        #expect(!lines.contains { $0.hasPrefix("| observed calls through i386's ABI") }, "none here")
        #expect(lines.contains("- It exited with code 0, and 1 process(es) …") && lines.contains("- Second."))
        #expect(lines.contains("| 42 | `/tmp/.x/miner --pool p` | yes (a daemon) | `kworker/0:1` |"))
        #expect(lines.contains("| execve | 41 | `/usr/bin/curl` | `/usr/bin/curl -o /tmp/x http://h/y` | ok |"))
        #expect(lines.contains("| prctl | 42 |  | `PR_SET_NAME kworker/0:1` |  |"))
        // A pipe would end the cell, a backtick the span: escaped, and a longer fence.
        #expect(lines.contains("| openat | ``/tmp/a\\|b`c`` | `O_WRONLY\\|O_CREAT mode 0755` |  |  |"))
        #expect(lines.contains("| openat | `/etc/shadow` | `O_RDONLY` | `shadow` | EACCES |"))
        #expect(lines.contains("| openat | `cfg` | `O_RDONLY` | relative to descriptor 5 |  |"))
        #expect(lines.contains("| connect | AF_UNIX | `/run/docker.sock` |  |  |  |  |"))
        #expect(lines.contains("| connect | AF_INET | `203.0.113.7` | 4444 |  | ENETUNREACH |  |"))
        #expect(
            lines.contains(
                #"| connect | AF_INET | `198.51.100.2` | 3333 |  | ok | 19 bytes: `{"method":"login"}\x0a` |"#))
        // What a result means, said once above the table, since the sample got an answer.
        #expect(lines.contains(SandboxVerdict.standInNote))
        #expect(lines.contains("| getaddrinfo | `c2.example` | `198.18.0.1` | 41 |"))
        #expect(lines.contains("| `kill(1, 9)` |"))
        #expect(lines.contains("More were left; the first 100 are kept."))
        #expect(lines.contains("| `/tmp/x` | 5 | `\(String(repeating: "b", count: 64))` | `/e/x` |"))
        #expect(
            lines.contains("| execve | 1 |") && lines.contains("| openat | 2 |") && lines.contains("| socket | 3 |"))
        // The sample's output holds a fence of three backticks: the block's is longer.
        let stdout = try? #require(lines.firstIndex(of: "## stdout (cut: the capture keeps the first 65536 bytes)"))
        #expect(
            stdout.map { Array(lines[($0 + 2)...($0 + 6)]) } == ["````text", "done", "```", "not a fence end", "````"])
        #expect(!lines.contains { $0.hasPrefix("## stderr") }, "an empty stream has no section")
    }

    @Test func aRunThatDidNotStartSaysWhy() {
        var failed = report
        failed.setupError = "the kernel would not execute it (execveat: Exec format error): it is empty"
        failed.timedOut = false
        #expect(
            SandboxReportMarkdown.render(failed).contains(
                "| ended | did not run: the kernel would not execute it (execveat: Exec format error): it is empty |"))
        failed.setupError = nil
        failed.exit = .init(code: nil, signal: 9, atTimeLimit: true)
        #expect(SandboxReportMarkdown.render(failed).contains("| ended | signal 9 (killed at the time limit) |"))
    }
}
