// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

/// Alerts written for these tests in the shape Falco 0.39+ emits for the rules in
/// shared/falco/rules/falco_rules.yaml (keys of each rule's output line), not copied samples.
enum AlertFixtures {
    static let executionFromDevShm = """
        {"hostname":"node-a","output":"12:00:01.000000001: Warning File execution detected from /dev/shm | evt_res=SUCCESS file=/dev/shm/x proc_cwd=/root/ exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER","priority":"Warning","rule":"Execution from /dev/shm","source":"syscall","tags":["T1059.004","container","host","maturity_stable","mitre_execution"],"time":"2026-11-29T12:00:01.000000001Z","output_fields":{"container.id":"host","evt.arg.flags":"EXE_WRITABLE|EXE_LOWER_LAYER","evt.res":"SUCCESS","evt.type":"execve","fd.name":"/dev/shm/x","group.gid":0,"proc.cmdline":"x --fast","proc.cwd":"/root/","proc.exepath":"/dev/shm/x","proc.name":"x","proc.pcmdline":"bash","proc.pname":"bash","proc.tty":34816,"user.loginuid":-1,"user.name":"root","user.uid":0}}
        """
    static let dropAndExecute = """
        {"hostname":"node-b","output":"Executing binary not part of base image","priority":"Critical","rule":"Drop and execute new binary in container","source":"syscall","tags":["TA0003","container","maturity_stable","mitre_persistence","process"],"time":"2026-11-29T12:00:02.5+01:00","output_fields":{"container.id":"0123456789ab","container.start_ts":1764412800000000000,"evt.arg.flags":"EXE_WRITABLE|EXE_UPPER_LAYER","proc.exe":"./payload","proc.cwd":"/dev/shm","proc.exe_ino":18446744073709551615,"proc.exe_ino.ctime":1764414000000000000,"proc.exepath":"/dev/shm/payload","proc.cmdline":"payload","user.name":"nobody"}}
        """
    static let memfd = """
        {"hostname":"node-c","output":"Fileless execution via memfd_create","priority":"Critical","rule":"Fileless execution via memfd_create","source":"syscall","tags":["T1620"],"time":"2026-11-29T12:00:03Z","output_fields":{"evt.arg.flags":"EXE_WRITABLE|EXE_FROM_MEMFD","proc.exepath":"memfd:payload (deleted)","proc.cmdline":"payload","proc.is_exe_from_memfd":true}}
        """
    static let eventDrop = """
        {"hostname":"node-a","output":"Falco internal: syscall event drop. 9 system calls dropped in last second.","output_fields":{"n_drops":"9","n_evts":"1000"},"priority":"Debug","rule":"Falco internal: syscall event drop","time":"2026-11-29T12:00:04.000000000Z"}
        """
    static let sidekick = """
        {"uuid":"6f1c9a34-3f5e-4c4b-9a1e-2f7d2bfa3a11","output":"test","priority":"debug","rule":"Test rule","time":"2026-11-29T12:00:05Z","source":"syscalls","output_fields":{"proc.name":"falcosidekick","proc.tty":1234,"nothing":null,"ratio":0.5},"tags":["test"],"hostname":"test-host","unknown_key":{"nested":[1,2,3]}}
        """
}

@Suite struct FalcoAlertTests {
    @Test func decodesTheDevShmRule() throws {
        let alert = try FalcoAlert.decode(Data(AlertFixtures.executionFromDevShm.utf8))
        #expect(alert.rule == "Execution from /dev/shm")
        #expect(alert.priority == .warning)
        #expect(alert.time.nanosecondsSinceEpoch % 1_000_000_000 == 1)
        #expect(alert.field("proc.exepath") == "/dev/shm/x")
        #expect(alert.outputFields["user.loginuid"] == .integer(-1))
        #expect(alert.outputFields["proc.tty"] == .integer(34816))
        #expect(alert.tags.contains("T1059.004"))
        #expect(!alert.isInternal)
        #expect(alert.raw == AlertFixtures.executionFromDevShm)
    }

    @Test func keepsUnsignedSixtyFourBitValuesExactly() throws {
        let alert = try FalcoAlert.decode(Data(AlertFixtures.dropAndExecute.utf8))
        #expect(alert.outputFields["proc.exe_ino"] == .unsigned(UInt64.max))
        #expect(alert.outputFields["proc.exe_ino"]?.unsignedValue == UInt64.max)
        #expect(alert.priority == .critical)
        // 12:00:02.5 at +01:00 is 11:00:02.5Z.
        #expect(alert.time.rfc3339 == "2026-11-29T11:00:02.500000000Z")
    }

    @Test func knowsInternalEventsAndDrops() throws {
        let alert = try FalcoAlert.decode(Data(AlertFixtures.eventDrop.utf8))
        #expect(alert.isInternal)
        #expect(alert.isEventDrop)
        #expect(alert.source == nil)
    }

    @Test func toleratesUnknownKeysNullsAndMixedValues() throws {
        let alert = try FalcoAlert.decode(Data(AlertFixtures.sidekick.utf8))
        #expect(alert.uuid == "6f1c9a34-3f5e-4c4b-9a1e-2f7d2bfa3a11")
        #expect(alert.priority == .debug)
        #expect(alert.outputFields["nothing"] == .null)
        #expect(alert.outputFields["ratio"] == .double(0.5))
        #expect(alert.outputFields["nothing"]?.text == nil)
    }

    /// Many fields, one repeated: all are kept, and the repeated one has its last value (as Go's
    /// encoding/json, which Falcosidekick uses, reads it).
    @Test func manyOutputFieldsAndARepeatedOne() throws {
        let fields = (0..<50).map { #""f\#($0)":\#($0)"# }.joined(separator: ",")
        let json =
            #"{"rule":"r","priority":"Notice","time":"2026-11-29T12:00:00Z","output_fields":{\#(fields),"f7":"seven"}}"#
        let alert = try FalcoAlert.decode(Data(json.utf8))
        #expect(alert.outputFields.count == 50)
        #expect(alert.outputFields["f49"] == .integer(49))
        #expect(alert.outputFields["f7"] == .string("seven"))
        let empty = try FalcoAlert.decode(
            Data(#"{"rule":"r","priority":"Notice","time":"2026-11-29T12:00:00Z","output_fields":{}}"#.utf8))
        #expect(empty.outputFields.isEmpty)
    }

    @Test(arguments: [
        ("not json", "malformed JSON"),
        // json_output: false (Falco's http_output then sends text/plain; file_output writes text lines).
        ("12:00:00.123456789: Critical Executing binary not part of base image (proc_exe=x)", "set json_output: true"),
        ("12:00:00.123456789: Loud x", "malformed JSON"),
        ("12:00:00: Warning x", "malformed JSON"),
        ("", "empty body"),
        (" \n\t", "empty body"),
        ("[1,2]", "expected a JSON object"),
        (#"{"priority":"Warning","time":"2026-11-29T12:00:00Z"}"#, "missing \"rule\""),
        (#"{"rule":"r","time":"2026-11-29T12:00:00Z"}"#, "missing \"priority\""),
        (#"{"rule":"r","priority":"Warning"}"#, "missing \"time\""),
        (#"{"rule":"r","priority":"Loud","time":"2026-11-29T12:00:00Z"}"#, "unknown priority"),
        (#"{"rule":"r","priority":"Warning","time":"yesterday"}"#, "not RFC 3339"),
        (
            #"{"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"a":[1]}}"#,
            "output_fields"
        ),
        (#"{"rule":5,"priority":"Warning","time":"2026-11-29T12:00:00Z"}"#, "\"rule\""),
    ])
    func rejectsWithAReason(body: String, reasonContains: String) {
        do {
            _ = try FalcoAlert.decode(Data(body.utf8))
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.reason.contains(reasonContains), "\(error.reason)")
        }
    }

    @Test func prioritiesOrderBySeverity() {
        #expect(FalcoPriority.critical > .warning)
        #expect(FalcoPriority.emergency > .critical)
        #expect(FalcoPriority(name: "INFO") == .informational)
        #expect(
            FalcoPriority.allCases.map(\.name).joined(separator: ",")
                == "Emergency,Alert,Critical,Error,Warning,Notice,Informational,Debug")
    }

    @Test(arguments: [
        ("2026-11-29T12:00:00Z", "2026-11-29T12:00:00.000000000Z"),
        ("2026-11-29T12:00:00.1Z", "2026-11-29T12:00:00.100000000Z"),
        ("2026-11-29T12:00:00.123456789123Z", "2026-11-29T12:00:00.123456789Z"),
        ("2026-11-29T00:30:00-02:30", "2026-11-29T03:00:00.000000000Z"),
        ("2024-02-29T23:59:59.999999999Z", "2024-02-29T23:59:59.999999999Z"),
    ])
    func parsesRFC3339(text: String, normalized: String) {
        #expect(Timestamp(rfc3339: text)?.rfc3339 == normalized)
    }

    @Test func rejectsMalformedTimes() {
        for text in ["2026-11-29", "2026-13-01T00:00:00Z", "2026-11-29T12:00:00", "2026-11-29T12:00:00.Z", "x"] {
            #expect(Timestamp(rfc3339: text) == nil, "\(text)")
        }
    }
}
