// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

/// What `/proc/PID/…` says about a process, parsed from text a process partly chooses.
struct ProcessFactsTests {
    @Test func statusGivesTheParentAndTheRealUID() {
        let status = Array("Name:\tsleep\nUmask:\t0022\nPPid:\t41\nUid:\t1000\t0\t0\t0\nGid:\t5\n".utf8)
        let facts = ProcessFacts.parentAndUID(status: status)
        #expect(facts.ppid == 41 && facts.uid == 1000)
        #expect(ProcessFacts.parentAndUID(status: Array("garbage".utf8)) == (nil, nil))
    }

    /// The name is chosen by the process: spaces and parentheses in it do not shift the fields.
    @Test func theStartTimeIsCountedAfterTheName() {
        // Fields 4 to 21, between the state (field 3) and the start time (field 22).
        let rest = (4...21).map { "\($0)" }.joined(separator: " ")
        let stat = Array("123 (evil) 1 2 3 (x) S \(rest) 98765 23 24\n".utf8)
        #expect(ProcessFacts.startTicks(stat: stat) == 98765)
        #expect(ProcessFacts.startTicks(stat: Array("1 (short) S 1 2".utf8)) == nil)
        #expect(ProcessFacts.startTicks(stat: Array("no parenthesis".utf8)) == nil)
    }

    @Test func startedFromTicksAndBootTime() {
        #expect(
            ProcessFacts.bootTime(procStat: Array("cpu 1 2\nbtime 1700000000\nprocesses 5\n".utf8)) == 1_700_000_000)
        #expect(ProcessFacts.bootTime(procStat: Array("cpu 1 2\n".utf8)) == nil)
        let started = ProcessFacts.started(ticks: 250, bootTime: 1_700_000_000, ticksPerSecond: 100)
        #expect(started == Timestamp(seconds: 1_700_000_002, nanoseconds: 500_000_000))
        #expect(ProcessFacts.started(ticks: 1, bootTime: 0, ticksPerSecond: 0) == nil)
        #expect(ProcessFacts.started(ticks: .max, bootTime: 0, ticksPerSecond: 100) == nil)
    }

    @Test func argumentsKeepEmptyOnesAndTheirBytes() {
        #expect(ProcessFacts.arguments(commandLine: Array("sh\0/dev/shm/x\0\0y\0".utf8)).count == 4)
        #expect(ProcessFacts.arguments(commandLine: Array("sh\0-c".utf8)) == [Array("sh".utf8), Array("-c".utf8)])
        #expect(ProcessFacts.arguments(commandLine: [0xff, 0, 0x41]) == [[0xff], [0x41]])
        #expect(ProcessFacts.arguments(commandLine: []) == [])
    }

    @Test(arguments: [
        ("0::/system.slice/docker-\(String(repeating: "ab", count: 32)).scope\n", String(repeating: "ab", count: 32)),
        ("12:pids:/docker/\(String(repeating: "0f", count: 32))\n", String(repeating: "0f", count: 32)),
        (
            "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-\(String(repeating: "12", count: 32)).scope\n",
            String(repeating: "12", count: 32)
        ),
        (
            "0::/machine.slice/libpod-\(String(repeating: "cd", count: 32)).scope/container\n",
            String(repeating: "cd", count: 32)
        ),
    ])
    func containerIDsFromCgroupPaths(cgroup: String, id: String) {
        #expect(ProcessFacts.containerID(cgroup: Array(cgroup.utf8)) == id)
    }

    @Test func theHostHasNoContainerID() {
        #expect(ProcessFacts.containerID(cgroup: Array("0::/user.slice/user-0.slice/session-3.scope\n".utf8)) == nil)
        // 63 or 65 hex digits are not an id.
        let near = "0::/x-\(String(repeating: "a", count: 63)).scope/\(String(repeating: "b", count: 65))\n"
        #expect(ProcessFacts.containerID(cgroup: Array(near.utf8)) == nil)
    }

    /// Executable mappings backed by a memfd or a deleted file, once per inode; nothing else.
    @Test func filelessMappingsOfMaps() {
        let maps = """
            55d0c0000000-55d0c0002000 r--p 00000000 fd:01 1234 /usr/bin/sleep
            55d0c0002000-55d0c0006000 r-xp 00002000 fd:01 1234 /usr/bin/sleep
            7f0000000000-7f0000001000 r-xp 00000000 00:01 77 /memfd:jit (deleted)
            7f0000001000-7f0000002000 r-xp 00000000 00:01 77 /memfd:jit (deleted)
            7f0000002000-7f0000003000 rw-p 00000000 00:01 78 /memfd:data (deleted)
            7f0000003000-7f0000004000 r-xp 00001000 fd:01 99 /var/tmp/with space (deleted)
            7f0000004000-7f0000005000 r-xp 00000000 00:00 0 [vdso]
            7f0000005000-7f0000006000 r-xp 00000000 00:00 0 
            not a mapping line
            """
        let found = ProcessFacts.filelessMappings(maps: Array(maps.utf8))
        #expect(found.map(\.range) == ["7f0000000000-7f0000001000", "7f0000003000-7f0000004000"])
        #expect(found.map(\.inode) == [77, 99])
        #expect(
            found.map { String(decoding: $0.path, as: UTF8.self) } == [
                "/memfd:jit (deleted)", "/var/tmp/with space (deleted)",
            ])
        #expect(found.map(\.major) == [0, 0xfd] && found.map(\.minor) == [1, 1])
        #expect(ProcessFacts.filelessMappings(maps: []) == [])
    }

    /// Where a file lives, told by the kernel's text about the process: the device of the
    /// executable's mapping, the mount of a descriptor.
    @Test func devicesAndMountsWithoutOpeningAnything() {
        let maps = Array(
            """
            55d0c0000000-55d0c0002000 r--p 00000000 00:2f 1234 /mnt/fuse/tool (deleted)
            55d0c0002000-55d0c0006000 r-xp 00002000 00:2f 1234 /mnt/fuse/tool (deleted)
            """.utf8)
        let device = ProcessFacts.mappedDevice(maps: maps, path: Array("/mnt/fuse/tool (deleted)".utf8))
        #expect(device?.major == 0 && device?.minor == 0x2f)
        #expect(ProcessFacts.mappedDevice(maps: maps, path: Array("/mnt/fuse/tool".utf8)) == nil)
        #expect(ProcessFacts.mountID(fdinfo: Array("pos:\t0\nflags:\t0100000\nmnt_id:\t29\nino:\t5\n".utf8)) == 29)
        #expect(ProcessFacts.mountID(fdinfo: Array("pos: 0\n".utf8)) == nil)
        #expect(!ProcessFacts.openableFileSystems.contains("fuse") && !ProcessFacts.openableFileSystems.contains("nfs"))
        #expect(ProcessFacts.openableFileSystems.contains("tmpfs"))
    }

    @Test func whatAnExecutableLinkSaysIsCaptured() {
        func kind(_ link: String, links: UInt64 = 1, tmpfs: Bool = false, recorded: Bool = false) -> ProcessCapture
            .Kind?
        {
            ProcessExecutable.captureKind(
                link: PathBytes(link), linkCount: links, onWatchedTmpfs: tmpfs, alreadyRecorded: recorded)
        }
        #expect(kind("/memfd:payload (deleted)", links: 0) == .memfd)
        #expect(kind("/usr/sbin/cron (deleted)") == .deleted)
        #expect(kind("/var/tmp/x", links: 0) == .deleted)
        #expect(kind("/dev/shm/x", tmpfs: true) == .tmpfs)
        #expect(kind("/dev/shm/x", tmpfs: true, recorded: true) == nil)
        #expect(kind("/usr/bin/sleep") == nil)
        #expect(ProcessExecutable.withoutDeletedSuffix(PathBytes("/a (deleted)")) == PathBytes("/a"))
        #expect(ProcessExecutable.withoutDeletedSuffix(PathBytes("/a")) == PathBytes("/a"))
    }
}

/// Which argument of an interpreter's command line is its script file, if any.
struct InterpretedScriptTests {
    /// The per-exec question, answered on bytes: the same answers as `interpreter(of:in:)`.
    @Test func interpreterNamesAgreeWithTheFullMatch() {
        let names = InterpreterNames(InterpretedScript.defaultInterpreters)
        for program in [
            "/usr/bin/python3.11", "/usr/bin/python3", "/bin/sh", "/usr/bin/php8.2", "/usr/bin/sleep", "/usr/bin/shred",
            "/usr/bin/python", "/usr/bin/3", "/usr/bin/.", "", "/", "/usr/bin/bash5.2", "/usr/bin/nodejs",
        ] {
            let bytes = Array(program.utf8)
            #expect(
                names.matches(bytes)
                    == (InterpretedScript.interpreter(of: bytes, in: InterpretedScript.defaultInterpreters) != nil),
                "\(program)")
        }
    }

    @Test func interpretersByNameAndVersionedName() {
        let list = InterpretedScript.defaultInterpreters
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/python3.11".utf8), in: list) == "python3")
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/dash".utf8), in: list) == "dash")
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/php8.2".utf8), in: list) == "php")
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/sleep".utf8), in: list) == nil)
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/shred".utf8), in: list) == nil)
        #expect(InterpretedScript.interpreter(of: Array("/usr/bin/python3".utf8), in: ["perl"]) == nil)
    }

    @Test(
        arguments: [
            ("sh", ["sh", "/dev/shm/payload"], "/dev/shm/payload"),
            ("sh", ["sh", "-e", "-x", "payload", "arg"], "payload"),
            ("sh", ["sh", "-c", "echo hi", "name"], nil),
            ("sh", ["sh", "-s", "x"], nil),
            ("bash", ["bash", "--rcfile", "/etc/rc", "/dev/shm/run"], "/dev/shm/run"),
            ("bash", ["bash", "-o", "pipefail", "s.sh"], "s.sh"),
            ("bash", ["bash", "--", "-odd-name"], "-odd-name"),
            ("python3", ["python3", "-u", "-W", "ignore", "/dev/shm/stage.py"], "/dev/shm/stage.py"),
            ("python3", ["python3", "-m", "http.server"], nil),
            ("python3", ["python3", "-", "x"], nil),
            ("python3", ["python3", "-c", "print(1)"], nil),
            ("python3", ["python3", "-Wignore", "/proc/self/fd/3"], "/proc/self/fd/3"),
            ("perl", ["perl", "-e", "print 1"], nil),
            ("perl", ["perl", "-w", "x.pl"], "x.pl"),
            ("busybox", ["busybox", "sh", "/tmp/x"], "/tmp/x"),
            ("php", ["php", "-f", "/dev/shm/a.php"], "/dev/shm/a.php"),
            ("php", ["php", "-f/dev/shm/b.php"], "/dev/shm/b.php"),
            ("node", ["node", "-r", "mod", "app.js"], "app.js"),
            ("node", ["node", "--eval", "1"], nil),
            ("sh", ["sh"], nil),
        ] as [(String, [String], String?)])
    func theScriptArgument(interpreter: String, arguments: [String], script: String?) {
        let found = InterpretedScript.scriptArgument(arguments.map { Array($0.utf8) }, interpreter: interpreter)
        #expect(found.map { String(decoding: $0, as: UTF8.self) } == script)
    }

    @Test func descriptorPathsAndNormalizedOnes() {
        func normalized(_ path: String) -> String? {
            ProcessFacts.lexicallyNormalized(Array(path.utf8)).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(normalized("/dev/shm/./a/../x") == "/dev/shm/x")
        #expect(normalized("/../../etc//passwd") == "/etc/passwd")
        #expect(normalized("/") == "/" && normalized("/..") == "/")
        #expect(normalized("run.sh") == nil)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/proc/self/fd/3".utf8)) == 3)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/dev/fd/7".utf8)) == 7)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/proc/thread-self/fd/9".utf8)) == 9)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/proc/17/fd/2".utf8)) == 2)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/proc/x/fd/2".utf8)) == nil)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/proc/self/fd/٣".utf8)) == nil)
        #expect(ProcessPath.descriptorNumber(inPath: Array("/dev/fd/".utf8)) == nil)
    }
}
