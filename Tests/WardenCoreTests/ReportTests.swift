// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenTestSupport
import Yams

/// Report inputs written for these tests: the three /dev/shm-related Falco rules and a rule
/// shmwarden knows nothing about, with fixed times so the output is byte-stable.
enum ReportFixtures {
    static let t0 = Timestamp(rfc3339: "2026-11-29T12:00:00Z")!
    static let elf = ELFFacts(
        bits: 64, endianness: "little", machine: "x86_64", type: "executable", interpreter: nil, isStatic: true,
        isStripped: true)
    static let sha = String(repeating: "3f", count: 32)

    static func file(
        _ path: [UInt8], mount: String, state: FileState, id: Int64 = 7, evidence: Bool = true
    ) -> FileRecord {
        FileRecord(
            id: id, path: PathBytes(path), mountPoint: PathBytes(mount), fileType: .regular, device: 44, inode: 1234,
            size: 829_528, mode: 0o100755, uid: 0, gid: 0, linkCount: 1, modified: t0, changed: t0, firstSeen: t0,
            lastSeen: t0, deletedAt: state == .deleted ? Timestamp(rfc3339: "2026-11-29T12:00:01.5Z") : nil,
            state: state, kind: .elf, reasons: [.elf, .execBit], hashStatus: .ok, sha256: sha, elf: elf,
            evidencePath: evidence ? "/var/lib/shmwarden/evidence/sha256/3f/\(sha)" : nil)
    }

    static let devShmMount = MountFacts(
        mountPoint: PathBytes("/dev/shm"), options: ["rw", "nosuid", "nodev", "relatime"],
        superOptions: ["rw", "size=65536k", "inode64"], fsType: "tmpfs", source: "tmpfs")

    static func alert(_ json: String) -> FalcoAlert { try! FalcoAlert.decode(Data(json.utf8)) }

    static let devShm = ReportInput(
        alertID: "a-devshm",
        alert: alert(
            #"{"hostname":"node-a","output":"Warning File execution detected from /dev/shm","priority":"Warning","rule":"Execution from /dev/shm","source":"syscall","tags":["T1059.004","container","host","maturity_stable","mitre_execution"],"time":"2026-11-29T12:00:02.000000001Z","output_fields":{"container.id":"host","evt.arg.flags":"EXE_WRITABLE|EXE_LOWER_LAYER","evt.res":"SUCCESS","evt.type":"execve","fd.name":"/dev/shm/x","group.gid":0,"proc.cmdline":"x --fast","proc.cwd":"/root/","proc.exepath":"/dev/shm/x","proc.name":"x","proc.pcmdline":"bash","proc.pname":"bash","proc.pid":4242,"proc.tty":34816,"user.loginuid":-1,"user.name":"root","user.uid":0}}"#
        ),
        receivedAt: Timestamp(rfc3339: "2026-11-29T12:00:02.2Z")!,
        evidence: [
            ReportEvidence(
                file: file(Array("/dev/shm/x".utf8), mount: "/dev/shm", state: .present),
                matchedBy: "proc.exepath,fd.name",
                confidence: 0.99, mount: devShmMount, quarantineID: nil)
        ],
        noEvidenceReason: nil,
        actions: [
            ReportAction(
                time: "2026-11-29T12:00:02.300000000Z", rule: "executed-from-tmpfs", action: "quarantine",
                mode: "monitor",
                outcome: "planned", target: "/dev/shm/x", detail: "would quarantine /dev/shm/x (sha256 \(sha))")
        ],
        eventDropNearby: false, memfdNoexec: 0, generatedAt: Timestamp(rfc3339: "2026-11-29T12:05:00Z")!)

    static let dropInContainer = ReportInput(
        alertID: "6f1c9a34-3f5e-4c4b-9a1e-2f7d2bfa3a11",
        alert: alert(
            #"{"uuid":"6f1c9a34-3f5e-4c4b-9a1e-2f7d2bfa3a11","hostname":"node-b","output":"Executing binary not part of base image","priority":"Critical","rule":"Drop and execute new binary in container","source":"syscall","tags":["PCI_DSS_11.5.1","TA0003","container","maturity_stable","mitre_persistence","process"],"time":"2026-11-29T12:00:03.5Z","output_fields":{"container.id":"0123456789ab","container.image.repository":"docker.io/library/nginx","container.name":"web","evt.arg.flags":"EXE_WRITABLE|EXE_UPPER_LAYER","proc.exe":"./payload","proc.cwd":"/dev/shm","proc.exe_ino":1234,"proc.exepath":"/dev/shm/payload","proc.cmdline":"payload -c 'x: y'","proc.name":"payload","user.name":"nobody","user.uid":65534,"user.loginuid":1000}}"#
        ),
        receivedAt: Timestamp(rfc3339: "2026-11-29T12:00:30Z")!,
        evidence: [
            ReportEvidence(
                file: file(
                    Array("/var/lib/docker/containers/0123456789abcdef/mounts/shm/payload".utf8),
                    mount: "/var/lib/docker/containers/0123456789abcdef/mounts/shm", state: .quarantined),
                matchedBy: "container-shm:proc.exepath", confidence: 0.95,
                mount: MountFacts(
                    mountPoint: PathBytes("/var/lib/docker/containers/0123456789abcdef/mounts/shm"),
                    options: ["rw", "relatime"], superOptions: ["rw", "size=65536k"], fsType: "tmpfs", source: "shm"),
                quarantineID: "qt4b2x1-9f3a")
        ],
        noEvidenceReason: nil, actions: [], eventDropNearby: false, memfdNoexec: 0,
        generatedAt: Timestamp(rfc3339: "2026-11-29T12:05:00Z")!)

    static let memfd = ReportInput(
        alertID: "a-memfd",
        alert: alert(
            #"{"hostname":"node-c","output":"Fileless execution via memfd_create","priority":"Critical","rule":"Fileless execution via memfd_create","source":"syscall","tags":["T1620","container","host","maturity_stable","mitre_defense_evasion","process"],"time":"2026-11-29T12:00:04Z","output_fields":{"container.id":"host","evt.arg.flags":"EXE_WRITABLE|EXE_FROM_MEMFD","proc.exepath":"memfd:payload (deleted)","proc.cmdline":"payload","proc.name":"payload","proc.pid":4242,"user.name":"svc","user.uid":998,"user.loginuid":-1}}"#
        ),
        receivedAt: Timestamp(rfc3339: "2026-11-29T12:00:04.1Z")!, evidence: [], noEvidenceReason: .memfdProcessExited,
        actions: [], eventDropNearby: false, memfdNoexec: 0, generatedAt: Timestamp(rfc3339: "2026-11-29T12:05:00Z")!)

    /// The same alert, the process's bytes taken through /proc/PID/exe before it exited.
    static let memfdCaptured: ReportInput = {
        var taken = file(Array("/memfd:payload (deleted)".utf8), mount: "/", state: .deleted)
        taken.mountPoint = nil
        taken.capture = ProcessCapture(
            kind: .memfd, source: "/proc/4242/exe", pid: 4242, ppid: 4200, uid: 998,
            executable: PathBytes("/memfd:payload (deleted)"), commandLine: ["payload", "--beacon", "it's"],
            started: Timestamp(rfc3339: "2026-11-29T12:00:03.9Z"), containerID: nil,
            parentExecutable: PathBytes("/usr/bin/python3.11"))
        var input = memfd
        input.alertID = "a-memfd-captured"
        input.evidence = [
            ReportEvidence(
                file: taken, matchedBy: "process-capture:proc.pid", confidence: 0.98, mount: nil, quarantineID: nil)
        ]
        input.noEvidenceReason = nil
        return input
    }()

    static let unknownRule = ReportInput(
        alertID: "a-custom",
        alert: alert(
            #"{"output":"custom","priority":"Notice","rule":"Our own rule","time":"2026-11-29T12:00:05Z","output_fields":{"proc.name":"tool","weird.field":"<NA>","n":18446744073709551615}}"#
        ),
        receivedAt: Timestamp(rfc3339: "2026-11-29T12:00:05Z")!, evidence: [], noEvidenceReason: .noPathInAlert,
        actions: [], eventDropNearby: true, memfdNoexec: nil, generatedAt: Timestamp(rfc3339: "2026-11-29T12:05:00Z")!)

    static let all: [(String, ReportInput)] = [
        ("execution-from-dev-shm", devShm), ("drop-and-execute-in-container", dropInContainer),
        ("fileless-memfd", memfd), ("fileless-memfd-captured", memfdCaptured), ("unknown-rule", unknownRule),
    ]
}

@Suite struct ReportTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Golden")

    /// The rendered Markdown and JSON are compared byte for byte with the reviewed files in
    /// Golden/; run with SHMWARDEN_UPDATE_GOLDEN=1 to rewrite them after a deliberate change.
    @Test(arguments: ReportFixtures.all.map(\.0))
    func goldenReports(name: String) throws {
        let input = try #require(ReportFixtures.all.first { $0.0 == name }?.1)
        let report = ReportBuilder.build(input)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let outputs = [
            ("\(name).md", ReportMarkdown.render(report)),
            ("\(name).json", String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"),
        ]
        for (file, text) in outputs {
            let url = Self.goldenDirectory.appendingPathComponent(file)
            if ProcessInfo.processInfo.environment["SHMWARDEN_UPDATE_GOLDEN"] == "1" {
                try text.write(to: url, atomically: true, encoding: .utf8)
                continue
            }
            let expected = try String(contentsOf: url, encoding: .utf8)
            #expect(text == expected, "\(file) differs from its golden copy")
        }
    }

    @Test func factsThatMatter() {
        let devShm = ReportBuilder.build(ReportFixtures.devShm)
        #expect(devShm.flags.map(\.flag) == ["EXE_WRITABLE", "EXE_LOWER_LAYER"])
        #expect(devShm.flags[0].meaning.contains("not a privilege level"))
        #expect(devShm.caveats.contains { $0.contains("carries neither flag") })
        #expect(devShm.recommendations.map(\.kind) == ["noexec-remount", "quarantine", "evidence", "falco-exception"])
        #expect(devShm.recommendations[0].commands == ["mount -o remount,noexec /dev/shm"])
        #expect(devShm.attack.map(\.id) == ["T1059.004", "TA0002"])
        #expect(devShm.unknowns.isEmpty)

        let drop = ReportBuilder.build(ReportFixtures.dropInContainer)
        #expect(drop.identity.location == "container 0123456789ab")
        #expect(drop.identity.exeNote.contains("`./payload`"))
        #expect(
            drop.recommendations.first { $0.kind == "restore" }?.commands == [
                "shmwarden quarantine restore qt4b2x1-9f3a"
            ])
        #expect(drop.recommendations.first { $0.kind == "noexec-remount" }?.text.contains("Docker container") == true)
        #expect(drop.caveats.contains { $0.contains("26 s after") })

        let memfd = ReportBuilder.build(ReportFixtures.memfd)
        #expect(memfd.noEvidence?.contains("memfd") == true)
        #expect(memfd.recommendations.map(\.kind) == ["memfd-noexec", "falco-exception"])
        #expect(memfd.recommendations[1].yaml?.contains("proc.name") == true)

        var withRun = ReportFixtures.devShm
        withRun.sandboxRuns = [(id: "s1", sha256: ReportFixtures.sha, verdict: ["It exited with code 0 after 3.0 ms."])]
        #expect(
            ReportBuilder.build(withRun).sandbox
                == "Run s1 of sha256 \(ReportFixtures.sha) (the whole report: `shmwarden sandbox --show s1`): It "
                + "exited with code 0 after 3.0 ms.")

        let unknown = ReportBuilder.build(ReportFixtures.unknownRule)
        #expect(unknown.attack.isEmpty)
        #expect(unknown.caveats.first?.contains("dropped syscall events") == true)
        #expect(unknown.unknowns.contains("hostname is not in the alert: which machine this was."))
        #expect(unknown.details.first { $0.name == "n" }?.value == "18446744073709551615")
    }
}

/// Every YAML snippet a report can emit must be a valid Falco rules file: only keys Falco's rules
/// schema has, each with the type Falco expects.
@Suite struct FalcoRuleYAMLTests {
    static let priorities = Set(FalcoPriority.allCases.map { $0.name.lowercased() } + ["info"])
    static let comparisons: Set<String> = [
        "=", "!=", "<", "<=", ">", ">=", "in", "intersects", "pmatch", "contains", "icontains", "bcontains",
        "startswith", "bstartswith", "endswith", "glob", "iglob", "exists", "regex",
    ]

    /// Checks one rules-file item against the schema; returns the problems.
    static func problems(_ item: Node) -> [String] {
        guard case .mapping(let mapping) = item else { return ["an item is not a mapping"] }
        var problems: [String] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                problems.append("non-text key")
                continue
            }
            switch key {
            case "rule", "condition", "output", "source", "desc":
                if value.scalar == nil { problems.append("\(key) must be text") }
            case "priority":
                if !(value.string.map { priorities.contains($0.lowercased()) } ?? false) {
                    problems.append("bad priority")
                }
            case "tags":
                if value.sequence?.allSatisfy({ $0.scalar != nil }) != true {
                    problems.append("tags must be a list of text")
                }
            case "enabled":
                if value.bool == nil { problems.append("enabled must be a boolean") }
            case "override":
                guard case .mapping(let overrides) = value else {
                    problems.append("override must be a mapping")
                    continue
                }
                for (overrideKey, how) in overrides {
                    if !["condition", "output", "priority", "exceptions", "tags", "enabled", "desc"].contains(
                        overrideKey.string ?? "")
                        || !["append", "replace"].contains(how.string ?? "")
                    {
                        problems.append("bad override \(overrideKey.string ?? "?"): \(how.string ?? "?")")
                    }
                }
            case "exceptions":
                guard let exceptions = value.sequence else {
                    problems.append("exceptions must be a list")
                    continue
                }
                for exception in exceptions {
                    guard case .mapping(let parts) = exception else {
                        problems.append("an exception must be a mapping")
                        continue
                    }
                    for (partKey, _) in parts where !FalcoRuleYAML.exceptionKeys.contains(partKey.string ?? "") {
                        problems.append("unknown exception key \(partKey.string ?? "?")")
                    }
                    let fields = exception["fields"]?.sequence.map { $0.compactMap(\.string) } ?? []
                    let comps = exception["comps"]?.sequence.map { $0.compactMap(\.string) } ?? []
                    if exception["name"]?.string?.isEmpty != false { problems.append("exception needs a name") }
                    if fields.isEmpty || comps.count != fields.count {
                        problems.append("fields and comps must pair up")
                    }
                    if !comps.allSatisfy(comparisons.contains) { problems.append("unknown comparison in \(comps)") }
                    for tuple in exception["values"]?.sequence ?? [] where tuple.sequence?.count != fields.count {
                        problems.append("each values entry must have one value per field")
                    }
                }
            default:
                problems.append("unknown rule key \(key)")
            }
        }
        if mapping["rule"] == nil { problems.append("an item without 'rule'") }
        return problems
    }

    @Test func everySnippetInEveryReportIsValidFalcoRulesYAML() throws {
        var checked = 0
        for (name, input) in ReportFixtures.all {
            for recommendation in ReportBuilder.build(input).recommendations {
                guard let yaml = recommendation.yaml else { continue }
                let root = try #require(try Yams.compose(yaml: yaml), "\(name): empty YAML")
                let items = try #require(root.sequence, "\(name): a rules file is a list")
                for item in items { #expect(Self.problems(item).isEmpty, "\(name): \(Self.problems(item))\n\(yaml)") }
                checked += 1
            }
        }
        #expect(checked == 5, "every fixture with an executable path or a process name gets an exception")
    }

    @Test(arguments: [
        "/dev/shm/a: b", "/dev/shm/it's \"quoted\" # not a comment", "/dev/shm/new\nline", "/dev/shm/-",
        "/dev/shm/*&anchor",
    ])
    func hostileValuesStayOneExactScalar(_ path: String) throws {
        let yaml = FalcoRuleYAML.exception(
            rule: "Execution from /dev/shm", name: "n", fields: ["proc.exepath"], values: [path])
        let root = try #require(try Yams.compose(yaml: yaml))
        let item = try #require(root.sequence?.first)
        #expect(Self.problems(item).isEmpty)
        #expect(item["exceptions"]?.sequence?.first?["values"]?.sequence?.first?.sequence?.first?.string == path)
    }

    @Test func theSchemaCheckCatchesInventedKeys() throws {
        let invented = try #require(
            try Yams.compose(yaml: "- rule: X\n  action: block\n  override: {exceptions: merge}\n"))
        #expect(Self.problems(invented.sequence![0]).count == 2)
    }
}

/// Every command a report prints must name exactly the file's bytes when pasted into a shell.
@Suite struct ReportCommandQuotingTests {
    /// The arguments bash sees for `command` (split and unquoted by bash itself).
    static func bashArguments(_ command: String) throws -> [[UInt8]] {
        let output = try ChildProcess.bash("set -- \(command); printf '%s\\0' \"$@\"")
        return output.split(separator: 0, omittingEmptySubsequences: false).dropLast().map(Array.init)
    }

    @Test(arguments: [
        Array("/dev/shm/with space".utf8), Array("/dev/shm/it's".utf8), Array("/dev/shm/$(id)`id`;rm -rf x".utf8),
        Array("/dev/shm/new\nline".utf8), Array("/dev/shm/".utf8) + [0xff, 0xfe, 0x01], Array("/dev/shm/-rf".utf8),
    ])
    func hostilePathsAreQuotedInEveryCommand(_ path: [UInt8]) throws {
        var input = ReportFixtures.devShm
        input.evidence[0].file = ReportFixtures.file(path, mount: "/dev/shm", state: .present)
        input.evidence[0].file.evidencePath = "/var/lib/shmwarden state/evidence/it's"
        let mount = Array("/dev/shm/odd mount'".utf8)
        input.evidence[0].mount?.mountPoint = PathBytes(mount)
        let report = ReportBuilder.build(input)
        let commands = report.recommendations.flatMap(\.commands)
        #expect(commands.count == 3)
        for command in commands {
            #expect(!command.contains("\n"), "a command must be one line: \(command)")
            let arguments = try Self.bashArguments(command)
            let last = try #require(arguments.last)
            if command.hasPrefix("shmwarden quarantine") {
                #expect(arguments.map { String(decoding: $0, as: UTF8.self) }.prefix(2) == ["shmwarden", "quarantine"])
                #expect(last == path, "\(command)")
            } else if command.hasPrefix("mount") {
                #expect(last == mount, "\(command)")
            } else {
                #expect(last == Array("/var/lib/shmwarden state/evidence/it's".utf8), "\(command)")
            }
            #expect(arguments.count == (command.hasPrefix("mount") ? 4 : command.hasPrefix("sha256sum") ? 2 : 3))
        }
    }
}
