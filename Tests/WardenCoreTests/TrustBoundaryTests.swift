// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

private func alert(time: String, fields: String = #"{"proc.pid":4242,"proc.exepath":"/dev/shm/x"}"#) -> Data {
    Data(#"{"rule":"Execution from /dev/shm","priority":"Warning","time":"\#(time)","output_fields":\#(fields)}"#.utf8)
}

private func file(_ path: String = "/dev/shm/x", basis: CorrelationBasis = .kernel, trusted: Bool? = nil) -> PolicyFile
{
    PolicyFile(
        fileID: 1, path: PathBytes(path), mountPoint: PathBytes("/dev/shm"), kind: .elf, size: 10,
        sha256: String(repeating: "c", count: 64), state: .present, device: 5, inode: 6, basis: basis,
        ownershipTrusted: trusted)
}

private func policy(_ text: String) throws -> Policy {
    try PolicyParser.merge([try PolicyParser.parse(text, file: "p.yaml").get()]).get()
}

/// Times from outside: out of the window they are refused with a reason; stored, whatever they
/// are, every computation on them saturates instead of trapping.
@Suite struct AlertTimeTests {
    @Test(arguments: ["1677-09-21T00:12:43Z", "2262-04-11T23:47:14Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"])
    func timesOutsideTheWindowAreRefused(_ time: String) {
        #expect(throws: AlertDecodingError.self) { try FalcoAlert.decode(alert(time: time)) }
        do {
            _ = try FalcoAlert.decode(alert(time: time))
        } catch {
            #expect(error.reason.contains("outside the accepted window"), "\(error.reason)")
        }
        // Read back from a store that holds one, it still decodes, and its time prints.
        let stored = try? FalcoAlert.decode(alert(time: time), acceptingAnyTime: true)
        #expect(stored != nil)
        #expect(stored?.time.rfc3339.isEmpty == false)
    }

    @Test func timesInsideTheWindowAreAccepted() throws {
        #expect(try FalcoAlert.decode(alert(time: "1970-01-01T00:00:00Z")).time.nanosecondsSinceEpoch == 0)
        #expect(try FalcoAlert.decode(alert(time: "2099-12-31T23:59:59.999999999Z")).time.isInAcceptedWindow)
    }

    @Test func arithmeticOnExtremeTimesSaturates() {
        let high = Timestamp(nanosecondsSinceEpoch: .max)
        let low = Timestamp(nanosecondsSinceEpoch: .min)
        #expect(high.adding(nanoseconds: 5_000_000_000) == high)
        #expect(low.adding(nanoseconds: -5_000_000_000) == low)
        #expect(Timestamp(seconds: .max, nanoseconds: 0) == high)
        #expect(Timestamp(seconds: .min, nanoseconds: 0) == low)
        #expect(Timestamp(seconds: 1, nanoseconds: .max).nanosecondsSinceEpoch == .max)
        // Printing them must not trap either.
        #expect(high.rfc3339.hasPrefix("2262-04-11T23:47:16"))
        #expect(low.rfc3339.hasPrefix("1677-09-21T00:12:43"))
    }

    /// The correlator looks ±5 s around the alert's time: at Int64's ends that must saturate.
    @Test func correlatingAStoredAlertAtInt64sEndDoesNotTrap() throws {
        struct Empty: EvidenceLookup {
            func files(atPath path: PathBytes) throws -> [FileRecord] { [] }
            func files(inode: UInt64) throws -> [FileRecord] { [] }
            func files(sha256: String) throws -> [FileRecord] { [] }
        }
        for time in ["2262-04-11T23:47:16Z", "1677-09-21T00:12:43Z"] {
            let stored = try FalcoAlert.decode(alert(time: time), acceptingAnyTime: true)
            let result = try AlertCorrelator.correlate(stored, tmpfsMounts: [PathBytes("/dev/shm")], lookup: Empty())
            #expect(result.correlations.isEmpty)
        }
    }
}

@Suite struct CorrelationBasisTests {
    @Test(arguments: [
        ("proc.exepath", CorrelationBasis.kernel), ("fd.name", .kernel), ("exec-record:proc.pid", .kernel),
        ("proc.exe_ino", .kernel), ("proc.exepath+container-shm-mount", .kernel),
        ("fd.name+pod-sandbox-shm-mount", .kernel), ("proc.exe", .text), ("proc.cmdline", .text),
        ("proc.args", .text), ("proc.exe+proc.cwd", .text), ("shmwarden.sha256=sha256", .text),
        ("proc.exepath+any-container-shm-mount", .text), ("proc.exepath+host-ipc", .text),
        ("proc.cmdline,proc.exepath", .kernel), ("proc.exe,proc.cmdline", .text),
    ])
    func eachWayOfMatchingHasItsBasis(_ matchedBy: String, _ basis: CorrelationBasis) {
        #expect(CorrelationBasis(matchedBy: matchedBy) == basis)
    }
}

@Suite struct PolicyTrustTests {
    static let enforce = """
        mode: enforce
        rules:
          - name: shm
            actions: [record, advise-noexec, quarantine, kill-process, sandbox]
        """

    @Test func anUnauthenticatedAlertIsRecordedAndAdvisedOnlyNothingMore() throws {
        let policy = try policy(Self.enforce)
        let subject = PolicySubject.alert(
            id: "a", try FalcoAlert.decode(alert(time: "2026-01-01T00:00:00Z")), files: [file()], authenticated: false)
        let plan = PolicyEvaluator.evaluate(policy, for: subject)
        #expect(plan.map(\.action.name) == ["record", "advise-noexec", "quarantine", "kill-process", "sandbox"])
        #expect(plan[0].disposition == .perform && plan[1].disposition == .perform)
        for action in plan.dropFirst(2) {
            guard case .skip(let reason) = action.disposition else {
                Issue.record("\(action.action.name) would act on an unauthenticated alert")
                continue
            }
            #expect(reason.contains("unauthenticated"))
        }
    }

    @Test func filesCorrelatedByWordsAloneAreNotActedOn() throws {
        let alertValue = try FalcoAlert.decode(alert(time: "2026-01-01T00:00:00Z"))
        let plan = PolicyEvaluator.evaluate(
            try policy(Self.enforce), for: .alert(id: "a", alertValue, files: [file(basis: .text)]))
        guard case .skip(let reason) = plan[2].disposition else {
            Issue.record("quarantine acted on a text correlation")
            return
        }
        #expect(reason.contains("quarantine needs kernel facts"), "\(reason)")
        guard case .skip = plan[4].disposition else {
            Issue.record("sandbox acted on a text correlation")
            return
        }
        // A rule may accept words, action by action.
        let lenient = try policy(
            """
            mode: enforce
            rules:
              - name: shm
                actions: [{action: quarantine, basis: text}, sandbox]
            """)
        let lenientPlan = PolicyEvaluator.evaluate(
            lenient, for: .alert(id: "a", alertValue, files: [file(basis: .text)]))
        #expect(lenientPlan[0].disposition == .perform)
        #expect(lenientPlan[1].disposition != .perform)
    }

    @Test func basisIsOnlyForActionsThatChangeTheHost() {
        let errors: [String]
        switch PolicyParser.parse(
            """
            mode: enforce
            rules:
              - name: r
                actions: [{action: record, basis: kernel}, {action: quarantine, basis: words}]
            """, file: "p.yaml")
        {
        case .success: errors = []
        case .failure(let failure): errors = failure.errors.map(\.description)
        }
        #expect(errors.contains { $0.contains("'basis' is for host-changing actions") })
        #expect(errors.contains { $0.contains("basis 'words' is not one of: kernel, text") })
    }

    @Test func protectedProgramsAndTrustedOwnersAreConfigurable() throws {
        let parsed = try policy(
            """
            mode: enforce
            protect: [postgres, "nginx*"]
            allowlist: {paths: ["/dev/shm/vendor/**"], owners: [1000]}
            """)
        #expect(parsed.protectedProcesses == Policy.defaultProtectedProcesses + ["postgres", "nginx*"])
        #expect(parsed.allowlist.trustedOwners == [1000])
    }
}

@Suite struct OwnershipChainTests {
    typealias Link = OwnershipChain.Link
    let rootFile = Link(uid: 0, mode: 0o100755)
    let stickyRoot = Link(uid: 0, mode: 0o041777)
    let rootDirectory = Link(uid: 0, mode: 0o040755)

    @Test func rootOwnedAndUnwritableByOthersIsTrusted() {
        #expect(
            OwnershipChain.distrust(file: rootFile, directories: [stickyRoot, rootDirectory], trustedOwners: []) == nil)
    }

    @Test(arguments: [
        (
            Link(uid: 1000, mode: 0o100755), [Link(uid: 0, mode: 0o041777), Link(uid: 0, mode: 0o040755)],
            "owned by uid 1000"
        ),
        (Link(uid: 0, mode: 0o100777), [Link(uid: 0, mode: 0o041777)], "writable by group or others"),
        // A directory a user created in /dev/shm: the name a glob trusts, theirs to fill.
        (
            Link(uid: 0, mode: 0o100755), [Link(uid: 0, mode: 0o041777), Link(uid: 65534, mode: 0o040755)],
            "owned by uid 65534"
        ),
        (Link(uid: 0, mode: 0o100755), [Link(uid: 0, mode: 0o040777)], "writable by group or others"),
        (
            Link(uid: 0, mode: 0o100755), [Link(uid: 0, mode: 0o041777), Link(uid: 0, mode: 0o040775)],
            "writable by group or others"
        ),
        (Link(uid: 0, mode: 0o100755), [], "could not be checked"),
    ])
    func anythingOthersCouldChangeIsNot(_ file: Link, _ directories: [Link], _ reason: String) {
        let why = OwnershipChain.distrust(file: file, directories: directories, trustedOwners: [])
        #expect(why?.contains(reason) == true, "\(why ?? "trusted")")
    }

    @Test func listedOwnersCount() {
        let vendor = Link(uid: 1000, mode: 0o040755)
        #expect(
            OwnershipChain.distrust(
                file: Link(uid: 1000, mode: 0o100755), directories: [stickyRoot, vendor], trustedOwners: [1000]) == nil)
    }

    @Test func theGuardJudgesAnUntrustedGlobMatchAsUnknown() throws {
        let policy = try policy(
            """
            mode: enforce
            guard: {mode: enforce}
            allowlist: {paths: ["/dev/shm/vendor-x/**"]}
            """)
        let untrusted = GuardDecision.decide(
            path: PathBytes("/dev/shm/vendor-x/tool"), sha256: String(repeating: "d", count: 64), policy: policy,
            pathDistrust: "a directory 1 below the mount's root is owned by uid 65534")
        #expect(untrusted.verdict == .deny && untrusted.rule == "unknown")
        #expect(untrusted.reason.contains("does not count: a directory 1 below the mount's root is owned by uid 65534"))
        let trusted = GuardDecision.decide(
            path: PathBytes("/dev/shm/vendor-x/tool"), sha256: String(repeating: "d", count: 64), policy: policy)
        #expect(trusted.verdict == .allow && trusted.rule == "allowlist-path")
    }
}

@Suite struct JSONPathTests {
    /// A newline and the four characters `\x0a` are different names, and JSON must say so.
    @Test func pathsAreExactTextInJSON() throws {
        let newline = PathBytes(Array("/dev/shm/new\nline".utf8))
        let literal = PathBytes("/dev/shm/new\\x0aline")
        #expect(newline.jsonText == "/dev/shm/new\nline")
        #expect(literal.jsonText == "/dev/shm/new\\x0aline")
        #expect(newline.displayString == literal.displayString)  // for people, one line each
        let invalid = PathBytes([0x2f, 0xff, 0x41])
        #expect(invalid.jsonText == "/\\xffA" && !invalid.isValidUTF8)
    }
}

@Suite struct StorageBudgetTests {
    let disk = StorageBudget.FileSystem(sizeBytes: 1000, availableBytes: 300)

    @Test func aCopyThatFitsIsAdmitted() {
        #expect(
            StorageBudget(stateBytes: 500, keepFreeShare: 0.1).refusal(adding: 100, used: 300, fileSystem: disk) == nil)
    }

    @Test func theBudgetAndTheFreeShareBothHold() {
        let budget = StorageBudget(stateBytes: 500, keepFreeShare: 0.1)
        #expect(budget.refusal(adding: 201, used: 300, fileSystem: disk)?.contains("300 of its 500 bytes") == true)
        // 300 free, 100 must stay free: 201 bytes would leave 99.
        #expect(
            StorageBudget(keepFreeShare: 0.1).refusal(adding: 201, used: 0, fileSystem: disk)?.contains("10 %") == true)
        #expect(budget.refusal(adding: .max, used: .max, fileSystem: nil) != nil, "no overflow past the budget")
    }

    @Test func theQuarantineHasALimitOfItsOwn() {
        let budget = StorageBudget(quarantineBytes: 1 << 20)
        #expect(budget.quarantineRefusal(adding: 1 << 19, used: 1 << 19) == nil)
        #expect(
            budget.quarantineRefusal(adding: 1 << 19, used: (1 << 19) + 1)?.contains("the quarantine is full") == true)
    }
}
