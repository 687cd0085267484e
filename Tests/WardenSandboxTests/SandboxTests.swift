// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Synchronization
import Testing
import WardenCore
import WardenLinux
import WardenSandbox
import WardenTestSupport

/// `.build/debug/sandbox-probe`, built by the README's test command.
let probe = URL(fileURLWithPath: packagePath(".build/debug/sandbox-probe")).resolvingSymlinksInPath().path

/// Processes on the host running as a run's uid (there must be none after the run).
private func sandboxProcesses(uid: UInt32) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.filter { Int($0) != nil }.compactMap { pid in
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first == Substring(String(uid))
        else { return nil }
        return pid
    }
}

/// The containment suite: each forbidden thing must fail inside, be reported, and leave no
/// process behind.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, "the sandbox needs root"))
struct SandboxTests {
    let state: String

    init() throws {
        state = makeStateDirectory()
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
    }

    func run(_ mode: String, _ extra: [String] = [], timeout: Int = 10) throws -> SandboxReport {
        try #require(
            FileManager.default.isExecutableFile(atPath: probe), "build first: swift build --product sandbox-probe")
        var options = SandboxRunner.Options()
        options.arguments = [mode] + extra
        options.timeoutSeconds = timeout
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(probe), options: options)
        #expect(report.setupError == nil, "\(report.setupError ?? "")")
        #expect(SandboxRunner.identities.contains(report.uid))
        #expect(sandboxProcesses(uid: report.uid).isEmpty, "a process of the sample survived \(mode)")
        // A run leaves its directory only to keep what the sample wrote.
        let runDirectory = state + "/sandbox/" + report.id
        if report.written.isEmpty {
            #expect(!FileManager.default.fileExists(atPath: runDirectory), "\(mode) left \(runDirectory)")
        } else {
            #expect(try FileManager.default.contentsOfDirectory(atPath: runDirectory) == ["written"])
        }
        return report
    }

    /// Runs `shell -c script` in a jail of this test's state directory.
    func runShell(_ script: String, shell: String = "/bin/sh") throws -> SandboxReport {
        var options = SandboxRunner.Options()
        options.arguments = ["-c", script]
        return try SandboxRunner(directory: state + "/sandbox").run(
            path: PathBytes(URL(fileURLWithPath: shell).resolvingSymlinksInPath().path), options: options)
    }

    @Test func aPlainRunIsObservedAndReported() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("drop")
        #expect(report.exit == SandboxReport.Exit(code: 0, signal: nil))
        #expect(report.stdout == "dropped\n")
        #expect(report.sha256 == sha256Hex(try Data(contentsOf: URL(fileURLWithPath: probe))))
        #expect(report.processes.first?.syscall == "execveat", "the sample is executed through its descriptor")
        #expect(
            report.files.contains {
                $0.path == "/tmp/stage2" && $0.created && $0.detail == "O_WRONLY|O_CREAT|O_TRUNC mode 0755"
            })
        #expect(report.files.contains { $0.syscall == "unlink" && $0.path == "/tmp/nothing" })
        let written = try #require(report.written.first)
        #expect(written.path == "/tmp/stage2" && written.size == 22)
        #expect(FileManager.default.contents(atPath: written.evidencePath).map { sha256Hex($0) } == written.sha256)
        #expect(report.verdict.first == "It exited with code 0 after \(report.durationMs) ms.")
        #expect(report.verdict.contains("It left 1 file(s) in /tmp, kept as evidence."), "\(report.verdict)")
    }

    /// A dropper's next stage goes to /dev/shm: the jail has one of its own, writable and
    /// executable as on a host, and what the sample left there is kept like /tmp's files. Shell
    /// idioms that name /dev/stderr work.
    @Test func aStageDroppedOnDevShmRunsInTheJailAndIsKept() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "printf '#!/bin/sh\\necho stage two\\n' > /dev/shm/.s2 && chmod 755 /dev/shm/.s2 && /dev/shm/.s2 "
                + "&& echo done > /dev/stderr")
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        #expect(report.stdout == "stage two\n")
        #expect(report.stderr == "done\n")
        #expect(report.processes.contains { $0.syscall == "execve" && $0.path == "/dev/shm/.s2" })
        let written = try #require(report.written.first { $0.path == "/dev/shm/.s2" }, "\(report.written)")
        #expect(written.size == 25)
        #expect(report.written.count == 1)
        #expect(report.verdict.contains("It left 1 file(s) in /dev/shm, kept as evidence."), "\(report.verdict)")
        #expect(FileManager.default.contents(atPath: written.evidencePath).map { sha256Hex($0) } == written.sha256)
        #expect(sandboxProcesses(uid: report.uid).isEmpty)
    }

    /// Hard links and symlinks are new names: each is reported at the path it was made, with
    /// what it names, and a relative one is made absolute.
    @Test func linksAreReportedWhereTheyAreMade() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "echo a > /tmp/a && ln /tmp/a /tmp/b && ln -s /etc/passwd /tmp/c && cd /tmp && ln -s a rel")
        #expect(report.exit.code == 0, "\(report.stderr)")
        let links = report.files.filter { $0.syscall.contains("link") }.map {
            "\($0.path) \($0.detail ?? "") \($0.created)"
        }
        #expect(
            links == ["/tmp/b to /tmp/a true", "/tmp/c -> /etc/passwd true", "/tmp/rel -> a true"], "\(report.files)")
        #expect(report.files.first { $0.path == "/tmp/rel" }?.passedAs == "rel")
        #expect(
            report.verdict.contains("It made 3 link(s): /tmp/b to /tmp/a; /tmp/c -> /etc/passwd; /tmp/rel -> a."),
            "\(report.verdict)")
    }

    /// What the kernel answered each observed call, from its traced exit: the report says what
    /// was refused and why, and claims nothing the read-only jail did not let happen.
    @Test(.enabled(if: SyscallExitTrace.isSupported, "the results' trace is for x86_64 hosts"))
    func theKernelsAnswersAreReported() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            ": > /tmp/made; chmod 4755 /tmp/made; true > /etc/blocked; rm -f /usr/bin/env; ln -s x /etc/l; "
                + "mkdir /tmp/.x /etc/.y; kill -9 1; /nonexistent/prog; exit 0")
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        func result(_ syscall: String, _ path: String) -> String? {
            report.files.first { $0.syscall == syscall && $0.path == path }?.result
        }
        #expect(result("openat", "/tmp/made") == "ok", "\(report.files)")
        #expect(result("fchmodat", "/tmp/made") == "ok")
        #expect(result("openat", "/etc/blocked") == "EROFS")
        #expect(result("unlinkat", "/usr/bin/env") == "EROFS")
        #expect(result("symlinkat", "/etc/l") == "EROFS")
        #expect(report.signals == ["kill(1, 9) -> EPERM"])
        #expect(report.processes.first?.result == "ok", "the sample's own exec")
        #expect(report.processes.first { $0.path == "/nonexistent/prog" }?.result == "ENOENT", "\(report.processes)")
        for sentence in [
            "It created or truncated 1 file(s): /tmp/made.",
            "It tried to create or truncate 1 more file(s), refused: /etc/blocked (EROFS).",
            "It changed the mode of 1 file(s): /tmp/made 4755.",
            "It tried to make 1 link(s), refused: /etc/l -> x (EROFS).",
            "It made 1 directory(ies): /tmp/.x.",
            "It tried to make 1 more directory(ies), refused: /etc/.y (EROFS).",
            "It tried to delete or rename 1 path(s), refused: /usr/bin/env (EROFS).",
            "It tried to send 1 signal(s), refused: kill(1, 9) (EPERM).",
        ] {
            #expect(report.verdict.contains(sentence), "\(sentence) in \(report.verdict)")
        }
        #expect(
            report.verdict.contains { $0.hasPrefix("It tried to run 1 more program(s), refused: /nonexistent/prog") })
    }

    /// A name that is not UTF-8 is reported escaped with its exact bytes beside it, and the file
    /// is kept as evidence (a decoded name would name no file); past 100 files the report says
    /// that only the first 100 are kept.
    @Test func filesWithNamesThatAreNotUTF8AreReportedAndKept() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell("printf stage > /tmp/\"$(printf 'a\\377b')\"")
        #expect(report.exit.code == 0, "\(report.stderr)")
        let exact = Data(Array("/tmp/a".utf8) + [0xff] + Array("b".utf8)).base64EncodedString()
        let opened = try #require(report.files.first { $0.created }, "\(report.files)")
        #expect(opened.path == "/tmp/a\\xffb" && opened.pathBase64 == exact, "\(opened)")
        let kept = try #require(report.written.first, "\(report.written)")
        #expect(kept.path == "/tmp/a\\xffb" && kept.pathBase64 == exact && kept.size == 5)
        #expect(FileManager.default.contents(atPath: kept.evidencePath) == Data("stage".utf8))
        #expect(!report.writtenTruncated)

        let many = try runShell("for i in $(seq 101); do : > /tmp/f$i; done")
        #expect(many.written.count == 100 && many.writtenTruncated)
        #expect(
            many.verdict.contains("It left more than 100 file(s) in /tmp; the first 100 are kept as evidence."),
            "\(many.verdict)")
    }

    /// Each exec is reported with the argument vector it passed, read from the sample's memory
    /// while the call waited: a dropper's URL and target path, and an argv[0] that poses as a
    /// kernel thread.
    @Test func execsAreReportedWithTheirArguments() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell("/bin/echo 'one two' three; exec -a '[kworker/0:1]' /bin/true", shell: "/bin/bash")
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        #expect(report.stdout == "one two three\n")
        let sample = try #require(report.processes.first)
        #expect(sample.path == SandboxReport.Process.theSample, "\(report.processes)")
        #expect(sample.arguments == report.argv)
        let execs = report.processes.filter { $0.syscall == "execve" }
        #expect(execs.map(\.path) == ["/bin/echo", "/bin/true"])
        #expect(execs.map(\.arguments) == [["/bin/echo", "one two", "three"], ["[kworker/0:1]"]])
        #expect(execs.allSatisfy { $0.argumentsComplete == nil })
        #expect(
            report.verdict.contains(
                "It ran 2 program(s): /bin/echo 'one two' three; /bin/true (argv[0] '[kworker/0:1]')."),
            "\(report.verdict)")
    }

    /// A program that runs itself again through `/proc/self/exe` (busybox's applets, a dropper
    /// under another argv[0]) is reported as the program it is, as the jail names it (the
    /// supervisor's name for the sample's copy is another).
    @Test func anExecOfItsOwnProgramIsNamed() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell("exec -a '[kswapd0]' /proc/self/exe -c 'echo again'", shell: "/bin/bash")
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        #expect(report.stdout == "again\n")
        let again = try #require(report.processes.first { $0.syscall == "execve" }, "\(report.processes)")
        // The shell is the sample here: its copy in the jail.
        #expect(again.path == report.argv.first && again.passedAs == "/proc/self/exe", "\(again)")
        #expect(again.arguments?.first == "[kswapd0]")
    }

    /// Fileless execution in the jail: an exec through a memfd's descriptor is reported with what
    /// the descriptor named, not mistaken for the sample's own exec, and the verdict says so.
    @Test func anExecFromAMemfdIsReportedAsSuch() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("memfd-exec")
        #expect(report.exit.code == 0, "\(report.stdout) \(report.stderr)")
        let execs = report.processes.filter { $0.syscall == "execveat" }
        #expect(execs.count == 2, "\(report.processes)")
        #expect(execs.first?.path == SandboxReport.Process.theSample)
        let stage = try #require(execs.last)
        #expect(stage.path == "/memfd:stage2 (deleted)", "\(stage)")
        #expect(stage.arguments == ["[kthreadd]"])
        #expect(
            report.verdict.contains(
                "It tried to execute from memory (a memfd: fileless execution): /memfd:stage2 (deleted)."),
            "\(report.verdict)")
        #expect(!report.verdict.contains("Nothing else was observed."))
        // The memfd's making and the rename before it are calls of their own.
        let memfd = report.files.first { $0.syscall == "memfd_create" }
        #expect(memfd?.path == "/memfd:stage2" && memfd?.detail == nil, "\(report.files)")
        #expect(report.processes.compactMap(\.renamedTo) == ["kworker/0:1"], "\(report.processes)")
        #expect(report.verdict.contains("It renamed itself as ps shows it (prctl PR_SET_NAME): kworker/0:1."))
        #expect(
            report.verdict.contains("It created 1 file(s) that exist only in memory (memfd_create): /memfd:stage2."))
        #expect(!report.verdict.contains { $0.hasPrefix("It created or truncated") }, "\(report.verdict)")

        // The same by path: execve("/proc/self/fd/N").
        let byPath = try run("memfd-exec", ["by-path"])
        #expect(byPath.exit.code == 0, "\(byPath.stdout) \(byPath.stderr)")
        let viaProc = try #require(byPath.processes.first { $0.syscall == "execve" }, "\(byPath.processes)")
        #expect(viaProc.path == "/memfd:stage2 (deleted)" && viaProc.passedAs?.hasPrefix("/proc/self/fd/") == true)
        #expect(byPath.verdict.contains { $0.hasPrefix("It tried to execute from memory") }, "\(byPath.verdict)")
    }

    /// fchmod names the file its descriptor refers to, not "fd 3".
    @Test func fchmodNamesItsFile() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("fchmod")
        #expect(report.exit.code == 0, "\(report.stdout) \(report.stderr)")
        let change = try #require(report.files.first { $0.syscall == "fchmod" }, "\(report.files)")
        #expect(change.path == "/tmp/stage3" && change.detail == "755")
        #expect(report.verdict.contains("It changed the mode of 1 file(s): /tmp/stage3 755."), "\(report.verdict)")
    }

    /// A path relative to a directory descriptor is made absolute when the call writes or the
    /// path may name a sensitive file, and left as passed otherwise.
    @Test func descriptorRelativePathsThatMatterAreMadeAbsolute() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("dirfd-open")
        #expect(report.exit.code == 0, "\(report.stdout) \(report.stderr)")
        #expect(report.files.contains { $0.path == "/etc/shadow" && $0.passedAs == "shadow" }, "\(report.files)")
        #expect(report.files.contains { $0.path == "/tmp/stage4" && $0.passedAs == "stage4" && $0.created })
        // An ordinary read stays as passed, with the descriptor it is relative to.
        #expect(
            report.files.contains { $0.path == "hostname" && $0.passedAs == nil && $0.directoryDescriptor != nil },
            "\(report.files)")
        #expect(report.files.contains { $0.path == "/etc/shadow" && $0.directoryDescriptor == nil })
        #expect(
            report.verdict.contains("It tried to open credential files: /etc/shadow (ENOENT)."), "\(report.verdict)")
    }

    /// A sample larger than the jail's root is refused up front with its size, not with the
    /// ENOSPC its copy would have hit.
    @Test func aSampleLargerThanTheJailIsRefusedWithItsSize() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let big = state + "/big"
        #expect(FileManager.default.createFile(atPath: big, contents: Data("#!/bin/sh\n".utf8)))
        let handle = try #require(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: UInt64(SandboxRunner.sampleSizeLimit + 1))  // sparse: no disk used
        try handle.close()
        do {
            _ = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(big))
            Issue.record("a sample over the limit ran")
        } catch let error as SandboxRunner.RunError {
            #expect(error.description.contains("\(SandboxRunner.sampleSizeLimit + 1) bytes"), "\(error)")
            #expect(error.description.contains("at most \(SandboxRunner.sampleSizeLimit) bytes"))
        }
    }

    /// Argument vectors are kept up to a budget per run: a sample that execs in a loop with large
    /// ones cannot make the supervisor hold them all. Past it, execs keep their path only.
    @Test func argumentVectorsAreKeptUpToABudget() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        // 40 execs of a missing program, each with 32 arguments of 1,000 bytes: 1.28 MB in all.
        let report = try runShell(
            #"a=$(printf '%1000s' x); i=0; while [ $i -lt 40 ]; do /nonexistent "#
                + String(repeating: "\"$a\" ", count: 32)
                + #"2>/dev/null; i=$((i+1)); done"#)
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        let execs = report.processes.filter { $0.path == "/nonexistent" }
        #expect(execs.count == 40)
        let kept = execs.compactMap(\.arguments).reduce(0) { $0 + $1.reduce(0) { $0 + $1.utf8.count } }
        let budget = 1 << 20  // SandboxObserver.argumentBudget
        #expect(kept >= budget && kept < budget + 33_000, "\(kept)")
        #expect(execs.last?.arguments == nil)
        #expect(execs.first?.arguments?.count == 33)
    }

    /// Host name lookups reach the jail's nscd socket and are on record: a name is answered with
    /// an address of its own (198.18.0.0/15), the same each time, localhost with the loopback,
    /// an address's name "not found"; user and group lookups still read the jail's files.
    @Test func hostNameLookupsAreRecorded() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "getent ahostsv4 c2.example.net; getent hosts 192.0.2.7; echo $?; id -un; getent hosts C2.example.net; "
                + "getent ahostsv4 localhost")
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        let lines = report.stdout.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        #expect(
            lines == [
                "198.18.0.1 STREAM c2.example.net", "198.18.0.1 DGRAM", "198.18.0.1 RAW", "2", "sandbox",
                "198.18.0.1 C2.example.net", "127.0.0.1 STREAM localhost", "127.0.0.1 DGRAM", "127.0.0.1 RAW", "",
            ], "getent: not found (2) for the address; id reads the jail's /etc/passwd: \(report.stdout)")
        #expect(
            report.lookups.map { "\($0.request) \($0.name) \($0.answer ?? "-")" } == [
                "getaddrinfo c2.example.net 198.18.0.1", "gethostbyaddr 192.0.2.7 -",
                "gethostbyname (IPv6) C2.example.net -", "gethostbyname C2.example.net 198.18.0.1",
                "getaddrinfo localhost 127.0.0.1",
            ], "\(report.lookups)")
        // glibc's own connects to the socket are listed, but are no attempt of the sample's.
        #expect(report.network.contains { $0.address == "/var/run/nscd/socket" })
        #expect(!report.verdict.contains { $0.hasPrefix("It tried to connect or send") }, "\(report.verdict)")
        #expect(
            report.verdict.contains(
                "It looked up 5 host name(s) or address(es) through glibc, answered by the jail's name service: "
                    + "c2.example.net (198.18.0.1), 192.0.2.7 (not found), C2.example.net (not found), "
                    + "C2.example.net (198.18.0.1), localhost (127.0.0.1)."),
            "\(report.verdict)")
        #expect(
            report.verdict.contains { $0.hasPrefix("The jail's name service answers each host name with an address") })
    }

    /// A thread (clone with CLONE_THREAD) is counted with the calls, not reported as a process
    /// started; a fork is.
    @Test func aThreadIsNoProcess() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "python3 -c \"import os, threading\nt = threading.Thread(target=print, args=('thread',))\nt.start(); t.join()\n"
                + "child = os.fork()\nif child == 0: os._exit(0)\nos.waitpid(child, 0)\"")
        #expect(report.stdout == "thread\n", "\(report.stdout) \(report.stderr)")
        // glibc's pthread_create: clone3 (refused, ENOSYS), then clone with CLONE_THREAD; the
        // fork: clone without it.
        #expect((report.syscalls["clone"] ?? 0) >= 2, "\(report.syscalls)")
        #expect(report.processes.filter { $0.syscall == "clone" }.count == 1, "\(report.processes)")
    }

    /// With names answered "not found" (`--names-not-found`), a lookup fails as before, and
    /// localhost still resolves.
    @Test func namesCanBeAnsweredNotFound() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        var options = SandboxRunner.Options()
        options.answerNames = false
        options.arguments = ["-c", "getent ahostsv4 c2.example.net; echo $?; getent hosts localhost"]
        let shell = URL(fileURLWithPath: "/bin/sh").resolvingSymlinksInPath().path
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(shell), options: options)
        let lines = report.stdout.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        #expect(lines == ["2", "127.0.0.1 localhost"], "\(report.stdout)")
        #expect(
            report.lookups.map { "\($0.name) \($0.answer ?? "-")" }.contains("c2.example.net -"), "\(report.lookups)")
        #expect(!report.verdict.contains { $0.hasPrefix("The jail's name service answers each host name") })
    }

    /// A name looked up, then connected to: the connection is made to the sink and reported
    /// under the name, with what was sent there.
    @Test func aConnectionToANameLookedUpIsReportedUnderIt() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "python3 -c \"import socket; s = socket.create_connection(('c2.example', 8443)); "
                + "s.sendall(b'HELLO'); print(s.getpeername())\"")
        #expect(report.stdout == "('198.18.0.1', 8443)\n", "\(report.stdout) \(report.stderr)")
        let connect = report.network.first { $0.syscall == "connect" && $0.family == "AF_INET" }
        #expect(connect?.hostName == "c2.example" && connect?.address == "198.18.0.1" && connect?.sent == "HELLO")
        #expect(
            report.verdict.contains {
                $0.hasPrefix("Over its connection to AF_INET 198.18.0.1 8443 (c2.example), made to the jail's sink")
            }, "\(report.verdict)")
    }

    /// Connections that send nothing, announce a huge key or speak another version are closed
    /// unanswered (within half a second each) and recorded as nothing; a lookup after them is.
    @Test func theNameServiceOutlastsAbusiveClients() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        var options = SandboxRunner.Options()
        options.arguments = ["nscd-abuse", "after.example"]
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(probe), options: options)
        #expect(
            report.exit.code == 0 && report.stdout.hasPrefix("198.18.0.1 "),
            "getent's answer: \(report.setupError ?? "") \(report.stdout) \(report.stderr)")
        #expect(report.lookups.map(\.name) == ["after.example"])
        #expect(report.durationMs < 3000)
    }

    /// A path relative to the working directory is reported absolute (`cd /etc; cat shadow`),
    /// with the form the sample passed; one relative to another descriptor stays as passed.
    @Test func pathsRelativeToTheWorkingDirectoryAreMadeAbsolute() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell(
            "cd /etc && cat shadow; cd /tmp && : > ./a && mv a ../dev/shm/b; find /usr/share/doc -maxdepth 2 >/dev/null"
        )
        #expect(report.exit.code == 0, "\(report.setupError ?? "") \(report.stderr)")
        let shadow = try #require(report.files.first { $0.passedAs == "shadow" }, "\(report.files)")
        #expect(shadow.path == "/etc/shadow" && shadow.syscall.hasPrefix("open"))
        #expect(report.files.contains { $0.path == "/tmp/a" && $0.passedAs == "./a" && $0.created })
        #expect(
            report.files.contains {
                $0.syscall.hasPrefix("rename") && $0.path == "/tmp/a" && $0.detail == "to /dev/shm/b"
            })
        #expect(
            report.verdict.contains("It tried to open credential files: /etc/shadow (ENOENT)."), "\(report.verdict)")
        // find opens what it walks against a directory descriptor: those stay relative.
        #expect(report.files.contains { !$0.path.hasPrefix("/") && $0.passedAs == nil })
    }

    @Test func noDescriptorOfTheSupervisorReachesTheSample() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        // Over a thousand descriptors without close-on-exec, as a busy agent with a careless
        // library would have: the jail's own pipes then get numbers above 1000 too.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        // Fill every number below 1000, so the jail's own descriptors land at 1000 and up, among
        // the numbers the launcher parks descriptors at while it closes the rest.
        var leaks: [Int32] = []
        while let last = leaks.last.map({ $0 }) ?? Optional(-1), last < 999 {
            let fd = open("/dev/null", O_RDONLY)
            guard fd >= 0 else { break }
            leaks.append(fd)
        }
        defer { leaks.forEach { close($0) } }
        #expect(leaks.last == 999)
        let report = try run("fds")
        // stdin, stdout, stderr, and the sample's own descriptor (kept for #! interpreters).
        #expect(report.stdout == "0 1 2 4 \n", "\(report.stdout)")
    }

    @Test func theHostLoopbackIsUnreachable() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        listen(listener, 8)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        // Observed: the socket is a stand-in, and the connect is answered as the jail's own
        // loopback would answer it, and reported.
        let report = try run("connect-host", [String(port)])
        #expect(report.exit.code == 3, "\(report.stdout)")
        #expect(report.stdout.hasPrefix("connect refused: Connection refused"), "\(report.stdout)")
        #expect(report.denied.isEmpty, "\(report.denied)")
        #expect(
            report.network.contains(
                .init(syscall: "connect", family: "AF_INET", address: "127.0.0.1", port: port, result: "ECONNREFUSED")),
            "\(report.network)")
        // The filter alone refuses the socket.
        var options = SandboxRunner.Options()
        options.arguments = ["connect-host", String(port)]
        options.observe = false
        let unobserved = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(probe), options: options)
        #expect(unobserved.exit.code == 3, "\(unobserved.stdout)")
        #expect(unobserved.stdout.hasPrefix("socket(AF_INET) refused: Operation not permitted"))
        #expect(unobserved.denied["socket"] == 1)
        #expect(
            unobserved.verdict.contains {
                $0.hasPrefix("Its 1 refused socket call(s) asked for a family other than AF_UNIX")
            })
        // Nothing reached the listener.
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        #expect(accept(listener, nil, nil) < 0)
    }

    /// A dropper's network calls are each reported with where they went and what they got, as a
    /// host with no network answers them; the sockets standing in for IPv4 and IPv6 ones reach
    /// nothing of the host's, not even its abstract unix sockets.
    @Test func networkCallsAreReportedAndAnsweredAsWithNoNetwork() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let name = "shmwarden-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let hostListener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(hostListener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes = Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in nameBytes.enumerated() { path[index + 1] = byte }
        }
        let addressLength = socklen_t(MemoryLayout<sa_family_t>.size + 1 + nameBytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(hostListener, $0, addressLength) }
        }
        try #require(bound == 0 && listen(hostListener, 8) == 0)

        let report = try run("network", [name])
        #expect(
            report.stdout == """
                connect ok
                write 11
                read eof
                fd cloexec kept
                connect again Transport endpoint is already connected
                bind ok
                listen ok
                bind 22 Permission denied
                sendto ok
                sendmsg Network is unreachable
                raw Operation not permitted
                packet Operation not permitted
                abstract Connection refused

                """, "\(report.stdout)")
        #expect(report.exit.code == 3)
        // The connect-back is made to the sink, which keeps what was sent and hangs up.
        var sunk = SandboxReport.NetworkAttempt(
            syscall: "connect", family: "AF_INET", address: "203.0.113.7", port: 4444, result: "ok")
        sunk.sentBytes = 11
        sunk.sent = "HELLO c2\\x0a\\x01\\xff"
        sunk.sentBase64 = "SEVMTE8gYzIKAf8="
        // The DNS query sent to 8.8.8.8 is never delivered, and kept as it was.
        let question: [UInt8] =
            [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 2] + Array("c2".utf8) + [7] + Array("example".utf8) + [7]
            + Array("invalid".utf8) + [0, 0, 1, 0, 1]
        var query = SandboxReport.NetworkAttempt(
            syscall: "sendto", family: "AF_INET", address: "8.8.8.8", port: 53, result: "ok")
        query.sentBytes = question.count
        query.sent = PathBytes(question).displayString
        query.sentBase64 = PathBytes(question).base64
        let expected: [SandboxReport.NetworkAttempt] = [
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            sunk,
            .init(syscall: "connect", family: "AF_INET", address: "203.0.113.7", port: 4444, result: "EISCONN"),
            .init(syscall: "socket", family: "AF_INET6", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "bind", family: "AF_INET6", address: "::", port: 31337, result: "ok"),
            // Made on the stand-in by the kernel, with the address it was bound to.
            .init(
                syscall: "listen", family: "AF_INET6", address: "::", port: 31337,
                result: SyscallExitTrace.isSupported ? "ok" : nil),
            .init(syscall: "socket", family: "AF_INET6", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "bind", family: "AF_INET6", address: "::", port: 22, result: "EACCES"),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_DGRAM", result: "ok"),
            query,
            {
                var datagram = SandboxReport.NetworkAttempt(
                    syscall: "sendmsg", family: "AF_INET", address: "198.51.100.3", port: 9999, result: "ENETUNREACH")
                datagram.sentBytes = 4
                datagram.sent = "ping"
                datagram.sentBase64 = "cGluZw=="
                return datagram
            }(),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_RAW", result: "EPERM"),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            // Let through to the kernel, whose answer the trace shows: nothing listens there
            // in the jail's namespace.
            .init(syscall: "connect", family: "AF_UNIX", address: "@" + name, result: "ECONNREFUSED"),
        ]
        #expect(report.network == expected, "\(report.network)")
        // The DNS query's question, delivered to the jail's name server and answered.
        #expect(
            report.lookups.filter { $0.request.hasPrefix("DNS") }.map { "\($0.request) \($0.name) \($0.answer ?? "-")" }
                == ["DNS A c2.example.invalid 198.18.0.1"], "\(report.lookups)")
        #expect(
            report.verdict.contains(
                "It sent DNS queries of its own, not through glibc, for 1 name(s): c2.example.invalid (A: 198.18.0.1); none reached a name server outside: the jail's own answered, or the query was not delivered."
            ), "\(report.verdict)")
        // The raw socket (the observer's refusal) and the packet socket (the filter's); the
        // calls answered as a host would are no refusals.
        #expect(report.denied == ["socket": 2], "\(report.denied)")
        #expect(report.syscalls["socket"] == 6 && report.syscalls["bind"] == 2, "\(report.syscalls)")
        #expect(
            report.verdict.contains {
                $0.contains(
                    "It tried to connect or send: AF_INET 198.51.100.3 9999 (ENETUNREACH); AF_INET 203.0.113.7 4444 (EISCONN); AF_INET 203.0.113.7 4444 (ok); AF_INET 8.8.8.8 53 (ok)"
                )
            }, "\(report.verdict)")
        #expect(
            report.verdict.contains {
                $0
                    == "It tried to bind sockets, to listen or receive on: AF_INET6 :: 22 (EACCES); AF_INET6 :: 31337 (ok)."
            }, "\(report.verdict)")
        #expect(
            report.verdict.contains(
                "It listened for connections on: AF_INET6 :: 31337\(SyscallExitTrace.isSupported ? " (ok)" : "")."),
            "\(report.verdict)")
        #expect(
            report.verdict.contains {
                $0.hasPrefix(
                    "It made 5 IPv4 or IPv6 socket(s) (AF_INET SOCK_DGRAM ×1, AF_INET SOCK_STREAM ×2, AF_INET6 SOCK_STREAM ×2)."
                )
            })
        #expect(
            report.verdict.contains(
                "Over its connection to AF_INET 203.0.113.7 4444, made to the jail's sink, it sent 11 byte(s): HELLO c2\\x0a\\x01\\xff"
            ), "\(report.verdict)")
        #expect(report.verdict.contains { $0.contains("(AF_INET SOCK_RAW ×1)") })
        // Nothing reached the host's abstract socket.
        _ = fcntl(hostListener, F_SETFL, O_NONBLOCK)
        #expect(accept(hostListener, nil, nil) < 0)
    }

    /// A stand-in asked what it is, or given an option at an IP level, answers as the IPv4 or
    /// IPv6 socket asked for would (a unix socket said AF_UNIX and EOPNOTSUPP, and a client that
    /// sets TCP_NODELAY failed there); an HTTP request over a connection to the sink is answered.
    /// A unix socket's own queries stay the kernel's.
    @Test func standInsAnswerForTheSocketsTheyStandFor() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("stand-in-queries")
        #expect(
            report.stdout == """
                nodelay ok
                nodelay read 1 (4)
                ttl 64
                domain 2 protocol 6 type 1
                peer before Transport endpoint is not connected
                name 2 192.168.1.37 port (16)
                peer 2 203.0.113.7:80
                cut short 16
                bad pointer Bad address
                answer HTTP/1.1 200 OK
                bound 10 :: port (28)
                listening 0.0.0.0 port
                unix 1
                unix nodelay Operation not supported

                """, "\(report.stdout)")
        #expect(report.exit.code == 3)
        // Counted, not listed: the network entries are the socket, connect and bind calls.
        // (SO_TYPE is the unix socket's own, and right: not notified.)
        #expect(
            report.syscalls["getsockname"] == 6 && report.syscalls["setsockopt"] == 2
                && report.syscalls["getsockopt"] == 4, "\(report.syscalls)")
        #expect(
            report.network.map(\.syscall) == ["socket", "connect", "socket", "bind", "socket", "listen"],
            "\(report.network)")
        // The listen, with the port it got.
        #expect(
            report.network.last.map { $0.address == "0.0.0.0" && ($0.port ?? 0) > 0 } == true, "\(report.network)")
        let connect = report.network[1]
        #expect(connect.sinkAnswer == "HTTP 200 with an empty body" && connect.sent?.hasPrefix("GET /stage2 ") == true)
        #expect(
            report.verdict.contains {
                $0.hasPrefix(
                    "Over its connection to AF_INET 203.0.113.7 80, made to the jail's sink, it sent 42 byte(s): GET /stage2"
                )
                    && $0.hasSuffix("The sink answered HTTP 200 with an empty body.")
            }, "\(report.verdict)")
    }

    /// A resolver of its own on a connected datagram socket (Go's) finds the jail's name server
    /// in resolv.conf, which records the name and answers at once with its address.
    @Test func aResolverOfItsOwnIsAnsweredAndItsNameRecorded() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("resolve-connected", ["pool.miner.example"])
        #expect(report.stdout == "server 127.0.0.1 id matches rcode 0 address 198.18.0.1\n", "\(report.stdout)")
        #expect(
            report.lookups.map { "\($0.request) \($0.name) \($0.answer ?? "-")" }
                == ["DNS A pool.miner.example 198.18.0.1"], "\(report.lookups)")
        #expect(report.lookups.first?.pid == report.processes.first?.pid)
        #expect(
            report.network.contains(
                .init(syscall: "connect", family: "AF_INET", address: "127.0.0.1", port: 53, result: "ok")))
        #expect(report.denied.isEmpty, "\(report.denied)")

        // One with its name server built in (Mirai's 8.8.8.8) is answered the same way.
        let builtIn = try run("resolve-connected", ["cnc.example", "8.8.8.8"])
        #expect(builtIn.stdout == "server 8.8.8.8 id matches rcode 0 address 198.18.0.1\n", "\(builtIn.stdout)")
        #expect(builtIn.lookups.map(\.name) == ["cnc.example"], "\(builtIn.lookups)")
        #expect(
            builtIn.network.contains(
                .init(syscall: "connect", family: "AF_INET", address: "8.8.8.8", port: 53, result: "ok")))
    }

    /// A resolver on an unconnected datagram socket (musl's, and Rust's through it) has its
    /// query delivered to the jail's name server and gets the answer from the address it sent
    /// to, as it checks; a second receive, with nothing waiting, fails as a non-blocking one does.
    @Test func anUnconnectedResolverIsAnsweredFromItsServersAddress() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("resolve-unconnected", ["cnc.example", "8.8.8.8"])
        #expect(
            report.stdout == """
                sendto whole
                from 8.8.8.8:53 (16) the server, id matches, rcode 0, address 198.18.0.1
                again Resource temporarily unavailable

                """, "\(report.stdout)")
        // Recorded once, by the name server, with its answer and the sample's pid.
        #expect(
            report.lookups.map { "\($0.request) \($0.name) \($0.answer ?? "-") \($0.pid)" }
                == ["DNS A cnc.example 198.18.0.1 \(report.processes.first?.pid ?? 0)"], "\(report.lookups)")
        #expect(report.network.contains { $0.syscall == "sendto" && $0.port == 53 && $0.result == "ok" })
        #expect(report.syscalls["recvfrom"] == 2, "\(report.syscalls)")
    }

    /// DNS over TCP, to a name server outside or to the loopback's (glibc's after a truncated
    /// answer), is answered by the sink from the jail's name service, query after query on one
    /// connection, and each question is on record.
    @Test func dnsOverTCPIsAnswered() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let script = """
            import socket, struct
            for server in ('8.8.8.8', '127.0.0.1'):
                s = socket.create_connection((server, 53))
                for name in (b'\\x02c2\\x07example\\x00', b'\\x04pool\\x07example\\x00'):
                    q = bytes.fromhex('abcd01000001000000000000') + name + b'\\x00\\x01\\x00\\x01'
                    s.sendall(struct.pack('>H', len(q)) + q)
                    n = struct.unpack('>H', s.recv(2))[0]
                    a = s.recv(n)
                    print(server, a[:2].hex(), a[3] & 15, '.'.join(map(str, a[-4:])))
            """
        var options = SandboxRunner.Options()
        options.arguments = ["-c", script]
        let python = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(python), options: options)
        #expect(
            report.stdout == """
                8.8.8.8 abcd 0 198.18.0.1
                8.8.8.8 abcd 0 198.18.0.2
                127.0.0.1 abcd 0 198.18.0.1
                127.0.0.1 abcd 0 198.18.0.2

                """, "\(report.stdout) \(report.stderr)")
        #expect(
            report.lookups.map { "\($0.request) \($0.name) \($0.answer ?? "-")" } == [
                "DNS A c2.example 198.18.0.1", "DNS A pool.example 198.18.0.2", "DNS A c2.example 198.18.0.1",
                "DNS A pool.example 198.18.0.2",
            ], "\(report.lookups)")
        #expect(
            report.verdict.contains {
                $0.hasPrefix(
                    "Over its connection to AF_INET 127.0.0.1 53, made to the jail's sink, it sent DNS queries over TCP"
                )
            }, "\(report.verdict)")
    }

    /// A static musl program resolves its C2 by name (musl's own resolver, never glibc's nscd
    /// socket), connects there and sends its beacon: all of it on record under the name.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/musl-gcc"), "musl-tools"))
    func aMuslProgramResolvesAndConnectsByName() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let source = state + "/beacon.c"
        try Data(
            """
            #include <netdb.h>
            #include <stdio.h>
            #include <sys/socket.h>
            #include <unistd.h>
            int main(void) {
                struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *found;
                int rc = getaddrinfo("beacon.c2.example", "8443", &hints, &found);
                if (rc != 0) { printf("getaddrinfo: %s\\n", gai_strerror(rc)); return 1; }
                int s = socket(found->ai_family, SOCK_STREAM, 0);
                if (connect(s, found->ai_addr, found->ai_addrlen) != 0) { perror("connect"); return 2; }
                printf("sent %zd\\n", write(s, "BEACON\\n", 7));
                return 0;
            }
            """.utf8
        ).write(to: URL(fileURLWithPath: source))
        let binary = state + "/beacon"
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/musl-gcc")
        compiler.arguments = ["-static", "-O2", "-o", binary, source]
        try compiler.run()
        compiler.waitUntilExit()
        try #require(compiler.terminationStatus == 0)
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(binary))
        #expect(report.stdout == "sent 7\n", "\(report.stdout) \(report.verdict)")
        // Both questions (A and AAAA), the address given for the first.
        #expect(
            Set(report.lookups.map { "\($0.request) \($0.name) \($0.answer ?? "-")" })
                == ["DNS A beacon.c2.example 198.18.0.1", "DNS AAAA beacon.c2.example -"], "\(report.lookups)")
        let connect = report.network.first { $0.syscall == "connect" && $0.port == 8443 }
        #expect(connect?.hostName == "beacon.c2.example" && connect?.sent == "BEACON\\x0a", "\(report.network)")
    }

    @Test(arguments: [
        ("mount", "mount refused: Operation not permitted", "mount"),
        ("unshare-user", "unshare(CLONE_NEWUSER) refused: Operation not permitted", "unshare"),
        ("tiocsti", "ioctl(TIOCSTI) refused: Operation not permitted", "ioctl"),
        ("io-uring", "io_uring_setup refused: Operation not permitted", "io_uring_setup"),
        // The kernel refuses these by itself: pid 1 here is the jail's init, and /etc has no shadow.
        ("kill-pid1", "kill(1, SIGKILL) refused: Operation not permitted", ""),
        ("read-shadow", "open(/etc/shadow) refused: No such file or directory", ""),
    ])
    func forbiddenCallsFail(mode: String, expected: String, deniedBy syscall: String) throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run(mode)
        #expect(report.exit.code == 3)
        #expect(report.stdout.hasPrefix(expected), "\(report.stdout)")
        if !syscall.isEmpty { #expect(report.denied[syscall] == 1, "\(report.denied)") }
    }

    /// Every refused call is counted, however many: the kernel's log (/dev/kmsg) passes 10
    /// audit records per 5 s when no auditd runs, the audit socket all of them.
    @Test func everyRefusedCallIsCounted() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try runShell("for i in $(seq 30); do unshare -U true 2>/dev/null; done; echo done")
        #expect(report.stdout == "done\n", "\(report.stdout) \(report.stderr)")
        #expect(report.denied["unshare"] == 30, "\(report.denied)")
    }

    /// ptrace is refused, not killed for: what the sample does next is in the report.
    @Test func ptraceIsRefusedAndTheSampleGoesOn() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("ptrace-parent")
        #expect(
            report.exit.code == 3 && report.stdout.hasPrefix("ptrace refused: Operation not permitted"),
            "\(report.stdout)")
        #expect(report.denied["ptrace"] == 1, "\(report.denied)")
        // PTRACE_TRACEME, the anti-debugging check: "not traced" (0), and it carries on.
        let traceme = try run("ptrace-traceme")
        #expect(traceme.exit.code == 0 && traceme.stdout == "traceme 0\n", "\(traceme.stdout)")
        #expect(traceme.files.contains { $0.path == "/tmp/after-traceme" }, "\(traceme.files.map(\.path))")
    }

    /// A call made through another ABI than the native one meets the same rules (i386's, which
    /// the filter covers by its own numbering) or is killed (x32's, which it does not cover).
    @Test(.enabled(if: SandboxFilter.compatibleArchitecture != nil, "an x86_64 host"))
    func callsThroughAnotherABIAreHeldToTheSameRules() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        // ptrace(PTRACE_TRACEME) through i386's numbering gets the native rule's answer: 0.
        let i386 = try run("ptrace-i386")
        #expect(i386.exit.code == 0 && i386.stdout.contains("i386 ptrace returned 0"), "\(i386.exit) \(i386.stdout)")
        let x32 = try run("x32")
        #expect(x32.exit.signal == SIGSYS && !x32.stdout.contains("returned"), "\(x32.exit) \(x32.stdout)")
    }

    /// 64 processes of 256 MiB each: each within its rlimit, 16 GiB together. The run's cgroup
    /// stops them at its memory limit, and the report says so.
    @Test func theRunsCgroupBoundsAllItsProcessesTogether() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("fork-alloc", ["64", "256"], timeout: 20)
        let resources = try #require(report.resources)
        try #require(resources.cgroup.hasPrefix("v"), "no cgroup here: \(resources.cgroup)")
        #expect(resources.memoryLimitBytes == 1 << 30 && resources.processLimit == 64)
        #expect((resources.oomKills ?? 0) > 0, "\(resources) \(report.stdout)")
        #expect((resources.peakMemoryBytes ?? 0) <= (1 << 30) + (16 << 20), "\(resources)")
        #expect(
            report.verdict.contains {
                $0.hasPrefix("The sandbox's memory limit (1024 MiB for all its processes) stopped it")
            })
        // The leaf is gone with the run.
        let leaves = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/memory")) ?? []
        #expect(!leaves.contains { $0.contains(report.id) })
    }

    @Test func resourceLimitsHold() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let fork = try run("fork-bomb", timeout: 5)
        #expect(fork.stdout.hasPrefix("forked "), "\(fork.stdout)")
        #expect(fork.exit.code == 3 || fork.timedOut)
        let write = try run("write-big")
        #expect(write.exit.code == 3 && write.stdout.hasPrefix("wrote 67108864 bytes"), "\(write.stdout)")
        let alloc = try run("alloc-big")
        #expect(alloc.exit.code == 3 && alloc.stdout.hasPrefix("malloc(10 GiB) refused"), "\(alloc.stdout)")
    }

    @Test func theTimeoutKillsEveryProcessEvenOneThatEscapedItsSession() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("sleep-escape", timeout: 2)
        #expect(report.timedOut)
        #expect(report.exit.signal == SIGKILL)
        #expect(report.durationMs < 5000)
    }

    @Test func theSampleRunsAsTheSandboxUserWithItsOwnNames() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes("/usr/bin/id"))
        let uid = report.uid
        #expect(SandboxRunner.identities.contains(uid))
        #expect(report.stdout == "uid=\(uid)(sandbox) gid=\(uid)(sandbox) groups=\(uid)(sandbox)\n", "\(report.stdout)")
        #expect(sandboxProcesses(uid: uid).isEmpty)
    }

    /// Each run has an identity of its own, so the refused calls counted for a run (from the
    /// kernel's audit records, by uid) are its own even while another run refuses calls.
    @Test func runsAtOnceCountOnlyTheirOwnRefusedCalls() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let runner = SandboxRunner(directory: state + "/sandbox")
        let quiet = Mutex<SandboxReport?>(nil)
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        Thread {
            started.signal()
            var options = SandboxRunner.Options()
            options.arguments = ["1"]
            let report = try? runner.run(path: PathBytes("/usr/bin/sleep"), options: options)
            quiet.withLock { $0 = report }
            finished.signal()
        }.start()
        started.wait()
        Thread.sleep(forTimeInterval: 0.2)  // the quiet run is under way
        var options = SandboxRunner.Options()
        options.arguments = ["mount"]
        let noisy = try runner.run(path: PathBytes(probe), options: options)
        #expect(noisy.denied["mount"] == 1)
        finished.wait()
        let report = try #require(quiet.withLock { $0 })
        #expect(report.exit.code == 0)
        #expect(report.durationMs > noisy.durationMs, "the noisy run ran within the quiet one")
        #expect(report.denied == [:], "the quiet run counted another run's refused calls")
        #expect(report.uid != noisy.uid)
        #expect(sandboxProcesses(uid: report.uid).isEmpty && sandboxProcesses(uid: noisy.uid).isEmpty)
    }

    /// A file the kernel cannot execute (text without `#!`) is reported as such, not as a
    /// broken jail.
    @Test func aFileTheKernelCannotExecuteSaysSo() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let sample = state + "/notes.txt"
        try Data("just some text\n".utf8).write(to: URL(fileURLWithPath: sample))
        chmod(sample, 0o755)
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(sample))
        #expect(
            report.setupError?.hasPrefix("the kernel would not execute it (execveat: ") == true,
            "\(report.setupError ?? "")")
        #expect(report.exit.code == nil && report.exit.signal == nil)
        #expect(report.verdict.first?.hasPrefix("The sample did not run: the kernel would not execute it") == true)
    }

    /// A dropper that starts a daemon and exits: its own exit status is kept, and the daemon
    /// still running at the time limit is named before the pid namespace is killed.
    @Test func whatASampleLeavesRunningIsNamedAndItsOwnExitKept() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        var options = SandboxRunner.Options()
        options.timeoutSeconds = 1
        // A shell without job control leaves `&` jobs in its process group: setsid(2) succeeds
        // without a fork, so the daemon is `sleep` itself.
        options.arguments = ["-c", "setsid sleep 30 & sleep 30 & exit 3"]
        let report = try SandboxRunner(directory: state + "/sandbox").run(
            path: PathBytes(URL(fileURLWithPath: "/bin/sh").resolvingSymlinksInPath().path), options: options)
        #expect(report.timedOut)
        #expect(report.exit == .init(code: 3, signal: nil, atTimeLimit: false))
        let left = report.stillRunning.map { "\($0.commandLine) \($0.ownSession)" }.sorted()
        #expect(left == ["sleep 30 false", "sleep 30 true"], "\(report.stillRunning)")
        #expect(
            report.verdict.first?.hasPrefix(
                "It exited with code 3, and 2 process(es) it left behind were still running at the time limit, 1 of "
                    + "them in a session of its own (a daemon): pid ") == true, "\(report.verdict)")
        #expect(sandboxProcesses(uid: report.uid).isEmpty)

        // One that is still at work itself is killed at the limit, and listed.
        options.arguments = ["-c", "exec sleep 30"]
        let busy = try SandboxRunner(directory: state + "/sandbox").run(
            path: PathBytes(URL(fileURLWithPath: "/bin/sh").resolvingSymlinksInPath().path), options: options)
        #expect(busy.exit == .init(code: nil, signal: SIGKILL, atTimeLimit: true))
        #expect(busy.stillRunning.map(\.commandLine) == ["sleep 30"])
    }

    /// A process that forks its successor and exits, over and over (a pid that never stays
    /// still, the way some droppers evade a list-then-kill), is named at the time limit: the
    /// jail's processes are all stopped at once before they are listed. Listed while running,
    /// the one /proc showed was gone when it was read, and its successor not yet shown.
    @Test func aProcessThatKeepsChangingItsPidIsNamedAtTheLimit() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let hopper = state + "/hop.sh"
        // Each generation starts the next, then exits: at any moment one or two are alive. (A
        // script run through its descriptor is its interpreter's /dev/fd/4.)
        try Data("#!/bin/sh\n/bin/sh \"$0\" &\nexit 0\n".utf8).write(to: URL(fileURLWithPath: hopper))
        var options = SandboxRunner.Options()
        options.timeoutSeconds = 1
        // Listed while running, one run in three or more came back empty: five runs.
        for _ in 0..<5 {
            let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(hopper), options: options)
            #expect(report.timedOut)
            #expect(!report.stillRunning.isEmpty, "\(report.verdict)")
            #expect(
                report.stillRunning.allSatisfy { $0.commandLine == "/bin/sh /dev/fd/4" }, "\(report.stillRunning)")
            #expect(sandboxProcesses(uid: report.uid).isEmpty)
        }
    }

    /// A 32-bit x86 program (i386 system calls, on this x86_64 kernel) runs and is observed
    /// like a native one, under the same rules: the filter covered the native ABI only, and
    /// killed such a sample at its first call (and the refused call's number was then read in
    /// x86_64's table: its write(2) reported as stat).
    @Test(.enabled(if: SandboxFilter.compatibleArchitecture != nil, "an x86_64 host"))
    func a32BitX86ProgramRunsObservedUnderTheSameRules() throws {
        var program = I386Program()
        program.call(5, .string("/etc/passwd"), .number(0))  // open
        program.call(359, .number(UInt32(AF_INET)), .number(1), .number(0))  // socket(AF_INET, SOCK_STREAM)
        // Sockets the older i386 way, through socketcall(2), whose arguments the filter cannot
        // read and the observer does: a unix one (descriptor 6: 3 is /etc/passwd, 4 the
        // sample's own, 5 the IPv4 stand-in above) connected to a container runtime's socket
        // (which the jail lacks); an IPv4 one (descriptor 7) connected to a C2 and written to; a
        // packet socket, refused.
        program.call(102, .number(1), .words([UInt32(AF_UNIX), 1, 0]))
        let runtime: [UInt8] = [UInt8(AF_UNIX), 0] + Array("/var/run/docker.sock".utf8) + [0]
        program.call(102, .number(3), .addressBlock(fd: 6, address: runtime))
        program.call(102, .number(1), .words([UInt32(AF_INET), 1, 0]))
        let c2: [UInt8] = [UInt8(AF_INET), 0, 0x11, 0x5c, 203, 0, 113, 7] + [UInt8](repeating: 0, count: 8)
        program.call(102, .number(3), .addressBlock(fd: 7, address: c2))
        program.call(4, .number(7), .string("i386 c2\n"), .number(8))  // write
        // Its queries through socketcall, answered for the stand-in: setsockopt(TCP_NODELAY),
        // getsockopt of it, getpeername; what they returned written to /tmp/answers (descriptor 8).
        program.call(102, .number(14), .optionBlock(fd: 7, level: 6, option: 1, value: 1))
        program.call(102, .number(15), .optionQueryBlock(fd: 7, level: 6, option: 1, buffer: "option", size: 4))
        program.call(102, .number(7), .queryBlock(fd: 7, buffer: "peer", size: 16))
        program.call(5, .string("/tmp/answers"), .number(0o101), .number(0o644))  // open(O_WRONLY | O_CREAT)
        program.call(4, .number(8), .buffer("peer", size: 16), .number(16))  // write
        program.call(4, .number(8), .buffer("option", size: 4), .number(4))  // write
        program.call(102, .number(1), .words([UInt32(AF_PACKET), 3, 0]))
        program.call(22, .string("/tmp"))  // umount, i386's older unmount call
        program.call(4, .number(1), .string("i386 here\n"), .number(10))  // write
        program.call(11, .string("/bin/echo"), .strings(["/bin/echo", "from", "i386"]), .number(0))  // execve
        let path = state + "/i386-sample"
        try Data(program.bytes).write(to: URL(fileURLWithPath: path))
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(path))
        #expect(report.exit == .init(code: 0, signal: nil), "\(report.verdict)")
        #expect(report.stdout == "i386 here\nfrom i386\n", "\(report.stdout)")
        #expect(report.files.contains { $0.syscall == "open" && $0.path == "/etc/passwd" }, "\(report.files)")
        #expect(
            report.processes.contains { $0.syscall == "execve" && $0.arguments == ["/bin/echo", "from", "i386"] },
            "\(report.processes)")
        // What i386's calls came to is traced by i386's numbers, from its first call on.
        let traced = SyscallExitTrace.isSupported
        #expect(report.files.first { $0.path == "/etc/passwd" }?.result == (traced ? "ok" : nil), "\(report.files)")
        #expect(report.processes.last?.result == (traced ? "ok" : nil), "\(report.processes)")
        // The packet socket through socketcall (the observer's refusal).
        #expect(report.denied == ["socket": 1, "umount": 1], "\(report.denied)")
        var sunk = SandboxReport.NetworkAttempt(
            syscall: "connect", family: "AF_INET", address: "203.0.113.7", port: 4444, result: "ok")
        sunk.sentBytes = 8
        sunk.sent = "i386 c2\\x0a"
        sunk.sentBase64 = "aTM4NiBjMgo="
        let expected: [SandboxReport.NetworkAttempt] = [
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            .init(syscall: "socket", family: "AF_UNIX", type: "SOCK_STREAM", result: "ok"),
            // Through socketcall to the kernel, which finds no such socket in the jail.
            .init(
                syscall: "connect", family: "AF_UNIX", address: "/var/run/docker.sock",
                result: SyscallExitTrace.isSupported ? "ENOENT" : nil),
            .init(syscall: "socket", family: "AF_INET", type: "SOCK_STREAM", result: "ok"),
            sunk,
            .init(syscall: "socket", family: "AF_PACKET", type: "SOCK_RAW", result: "EPERM"),
        ]
        #expect(report.network == expected, "\(report.network)")
        #expect(report.verdict.contains { $0.hasPrefix("It tried to reach a container runtime's socket") })
        // The connection's peer, as an IPv4 socket gives it, and the option as it was set.
        let answers: [UInt8] = c2 + [1, 0, 0, 0]
        #expect(
            report.written.map { "\($0.path) \($0.sha256)" } == ["/tmp/answers \(sha256Hex(Data(answers)))"],
            "\(report.written)")
        // Its two opens, socket, eight socketcalls and execve (the refused ones are not
        // notified; /bin/echo is x86_64).
        #expect(report.i386Calls == 12, "\(report.syscalls)")
        #expect(
            report.verdict.contains { $0.hasPrefix("12 of its observed calls went through the 32-bit x86 (i386) ABI") })

        // ptrace is refused in i386's numbering too: PTRACE_ATTACH of pid 1 gets EPERM, and the
        // program goes on to its exit(5).
        var tracer = I386Program()
        tracer.call(26, .number(16), .number(1))  // ptrace(PTRACE_ATTACH, 1)
        tracer.call(1, .number(5))  // exit(5)
        try Data(tracer.bytes).write(to: URL(fileURLWithPath: path))
        let refused = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes(path))
        #expect(refused.exit.code == 5 && refused.denied["ptrace"] == 1, "\(refused.exit) \(refused.denied)")
        #expect(sandboxProcesses(uid: refused.uid).isEmpty)
    }

    /// A sample whose interpreter or dynamic loader the jail lacks is reported with the path
    /// the kernel looked for, read from the sample itself, not as a broken jail.
    @Test func aMissingInterpreterOrLoaderIsNamed() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let runner = SandboxRunner(directory: state + "/sandbox")
        let script = state + "/stage.sh"
        try Data("#!/opt/implant/bin/sh -e\necho hi\n".utf8).write(to: URL(fileURLWithPath: script))
        let scriptReport = try runner.run(path: PathBytes(script))
        #expect(
            scriptReport.setupError
                == "the kernel would not execute it (execveat: No such file or directory): its #! line names the "
                + "interpreter /opt/implant/bin/sh, which this host does not have either",
            "\(scriptReport.setupError ?? "")")

        // /bin/true built against uClibc (an IoT bot's libc): the same program with uClibc's
        // loader as its PT_INTERP. (Not musl's: the tests install musl-tools, loader and all.)
        var elf = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
        let glibcLoader = Array("/lib64/ld-linux-x86-64.so.2".utf8)
        let foreignLoader = Array("/lib/ld-uClibc.so.0".utf8)
        let at = try #require(
            (0...(elf.count - glibcLoader.count)).first {
                elf[$0..<($0 + glibcLoader.count)].elementsEqual(glibcLoader)
            })
        elf.replaceSubrange(
            at..<(at + glibcLoader.count),
            with: foreignLoader + [UInt8](repeating: 0, count: glibcLoader.count - foreignLoader.count))
        let uClibc = state + "/true-uclibc"
        try Data(elf).write(to: URL(fileURLWithPath: uClibc))
        let elfReport = try runner.run(path: PathBytes(uClibc))
        #expect(
            elfReport.setupError
                == "the kernel would not execute it (execveat: No such file or directory): its dynamic loader "
                + "(PT_INTERP) is /lib/ld-uClibc.so.0, which this host does not have either",
            "\(elfReport.setupError ?? "")")
        #expect(elfReport.verdict.first?.hasPrefix("The sample did not run: ") == true)
    }

    /// The modes a sample gives its files are in the report: they must not depend on the
    /// supervisor's umask (the agent's is 077).
    @Test func theSampleGetsAnOrdinaryUmask() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let previous = umask(0o077)
        defer { umask(previous) }
        let report = try runShell("umask")
        #expect(report.stdout == "0022\n", "\(report.stdout) \(report.stderr)")
    }

    /// Ignored signals and the blocked mask survive exec: the sample must start with neither,
    /// whatever the supervisor ignores (the agent: SIGHUP, SIGTERM, SIGINT) or blocks.
    @Test func theSampleStartsWithDefaultSignals() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        var blocked = sigset_t()
        var before = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGWINCH)
        pthread_sigmask(SIG_BLOCK, &blocked, &before)
        defer { pthread_sigmask(SIG_SETMASK, &before, nil) }
        let report = try runShell("grep -E '^Sig(Ign|Blk):' /proc/self/status")
        #expect(
            report.stdout == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "\(report.stdout) \(report.stderr)")
    }

    /// Threads being created in the supervisor while it spawns jails (the agent always has
    /// some): the jail's setup must not wait on them. glibc's setresuid/setgroups do, through
    /// the thread list the raw clone inherited; the launcher uses the raw syscalls.
    @Test func spawningWhileOtherThreadsStartNeverHangsTheSetup() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let churning = Atomic<Bool>(true)
        let churn = Thread {
            while churning.load(ordering: .relaxed) {
                let threads = (0..<8).map { _ in Thread { _ = getpid() } }
                threads.forEach { $0.start() }
            }
        }
        churn.start()
        defer { churning.store(false, ordering: .relaxed) }
        var options = SandboxRunner.Options()
        options.timeoutSeconds = 3
        options.observe = false
        for _ in 0..<25 {
            let report = try SandboxRunner(directory: state + "/sandbox").run(
                path: PathBytes("/usr/bin/true"), options: options)
            #expect(!report.timedOut && report.exit.code == 0, "\(report.setupError ?? "") \(report.verdict)")
            if report.timedOut { break }
        }
    }

    /// The jail and its observer share one CPU: the sample cannot occupy more of the host.
    @Test func theSampleRunsOnOneCPUAndTheCallerKeepsItsOwn() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let before = try nproc()
        let report = try SandboxRunner(directory: state + "/sandbox").run(path: PathBytes("/usr/bin/nproc"))
        #expect(report.stdout == "1\n", "\(report.stdout)")
        #expect(try nproc() == before, "the calling thread's CPUs are put back")
        #expect(before == "\(sysconf(Int32(_SC_NPROCESSORS_ONLN)))\n")
    }

    /// Jails take the CPUs in turn: two runs one after the other are each on one CPU, and not on
    /// the same one (a host's agent and a command would otherwise both start at CPU 0).
    @Test func jailsTakeTheCPUsInTurn() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        try #require(online >= 2, "one CPU: nothing to spread over")
        var options = SandboxRunner.Options()
        options.arguments = ["/proc/self/status"]
        let cpus = try (0..<2).map { _ in
            let report = try SandboxRunner(directory: state + "/sandbox").run(
                path: PathBytes("/usr/bin/cat"), options: options)
            let line = report.stdout.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
            return line.map { String($0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)) }
        }
        #expect(cpus.allSatisfy { $0.map { Int($0) != nil } ?? false }, "each on one CPU: \(cpus)")
        #expect(cpus[0] != cpus[1], "\(cpus)")
    }

    /// `nproc` run from this thread: the CPUs its affinity allows.
    private func nproc() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nproc")
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func aSetuidBinaryGivesNoPrivilege() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let report = try run("setuid")
        #expect(report.exit.code != 0)
        #expect(!report.stdout.contains("\n0\n") && report.stdout != "0\n")
    }
}
