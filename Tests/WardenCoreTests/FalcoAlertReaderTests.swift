// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

/// The hand-written alert reader against the JSON grammar and against Foundation's parser.
@Suite struct FalcoAlertReaderTests {
    private func alert(_ extra: String, fields: String = "{}") -> String {
        #"{"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":\#(fields)\#(extra)}"#
    }

    @Test func unescapesStringsAsJSONSays() throws {
        let body = alert(#","output":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00 \u0000end""#)
        let decoded = try FalcoAlert.decode(Data(body.utf8))
        #expect(decoded.output == "a\"b\\c/d\n\té😀 \u{0}end")
        // Unescaped: ASCII, then raw UTF-8 (validated), as keys and values.
        let raw = try FalcoAlert.decode(
            Data(alert(#","output":"plain","hostname":"nœud-☕""#, fields: #"{"clé":"vé"}"#).utf8))
        #expect(raw.output == "plain" && raw.hostname == "nœud-☕" && raw.outputFields["clé"] == .string("vé"))
    }

    @Test func readsNumbersExactly() throws {
        let fields =
            #"{"a":-0,"b":1e3,"c":18446744073709551616,"d":-9223372036854775808,"e":-9223372036854775809,"f":0.25,"g":9223372036854775808}"#
        let values = try FalcoAlert.decode(Data(alert("", fields: fields).utf8)).outputFields
        #expect(values["a"] == .integer(0))
        #expect(values["b"] == .double(1000))
        #expect(values["c"] == .double(18446744073709551616))
        #expect(values["d"] == .integer(Int64.min))
        #expect(values["e"] == .double(-9223372036854775809))
        #expect(values["f"] == .double(0.25))
        #expect(values["g"] == .unsigned(9223372036854775808))
    }

    @Test func skipsUnknownValuesOfAnyShapeAndToleratesNulls() throws {
        let body = alert(
            #","x":{"y":[1,{"z":[true,false,null,"s",-1.5e-3]}],"w":{}},"v":[],"tags":null,"source":null"#,
            fields: "null")
        let decoded = try FalcoAlert.decode(Data(body.utf8))
        #expect(decoded.outputFields.isEmpty && decoded.tags.isEmpty && decoded.source == nil)
    }

    @Test(arguments: [
        "{\"rule\":\"r\",}", "{\"rule\" \"r\"}", "{\"rule\":\"r\"} x", "{\"rule\":\"\u{1}\"}", "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":-}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\x\"}", "{\"a\":tru}", "{\"a\":[1,]}",
        "{",
        "{\"a\":\"unterminated}",
    ])
    func rejectsWhatIsNotJSON(body: String) {
        #expect(throws: AlertDecodingError("malformed JSON")) { try FalcoAlert.decode(Data(body.utf8)) }
    }

    @Test func rejectsInvalidUTF8AndRunawayNesting() {
        var bytes = Array(alert(#","output":"x""#).utf8)
        let at = bytes.firstIndex(of: UInt8(ascii: "x"))!
        bytes[at] = 0xFF
        #expect(throws: AlertDecodingError("malformed JSON")) { try FalcoAlert.decode(Data(bytes)) }
        let deep = alert(#","x":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
        #expect(throws: AlertDecodingError("malformed JSON")) { try FalcoAlert.decode(Data(deep.utf8)) }
    }

    /// As Go's encoding/json (Falcosidekick, Falco Talon): the exact key wins, else any case.
    @Test func keysMatchInAnyCaseWhenTheExactKeyIsAbsent() throws {
        let talon =
            #"{"output":"Test","priority":"Critical","Rule":"Test NetworkPolicy","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"fd.rip":"8.8.8.8"}}"#
        let decoded = try FalcoAlert.decode(Data(talon.utf8))
        #expect(decoded.rule == "Test NetworkPolicy" && decoded.priority == .critical)
        #expect(decoded.outputFields["fd.rip"] == .string("8.8.8.8"))
        for body in [
            #"{"Rule":"folded","rule":"exact","priority":"Warning","time":"2026-11-29T12:00:00Z"}"#,
            #"{"rule":"exact","RULE":"folded","priority":"Warning","time":"2026-11-29T12:00:00Z"}"#,
        ] {
            #expect(try FalcoAlert.decode(Data(body.utf8)).rule == "exact", "\(body)")
        }
        #expect(throws: AlertDecodingError("wrong type for \"Hostname\": expected a string")) {
            try FalcoAlert.decode(Data(alert(#","Hostname":7"#).utf8))
        }
        // Keys are not otherwise rewritten: output_fields keep their exact names.
        let fields = try FalcoAlert.decode(Data(alert("", fields: #"{"Proc.Name":"x"}"#).utf8)).outputFields
        #expect(fields["Proc.Name"] == .string("x") && fields["proc.name"] == nil)
    }

    @Test func namesTheKeyOfAWrongType() {
        for (body, reason) in [
            (alert(#","tags":"x""#), "wrong type for \"tags\""),
            (alert(#","tags":[1]"#), "wrong type for \"tags.[0]\""),
            (alert("", fields: "[]"), "wrong type for \"output_fields\""),
            (alert(#","hostname":7"#), "wrong type for \"hostname\""),
            ("  [1, 2]  ", "expected a JSON object"), ("\"text\"", "expected a JSON object"),
        ] {
            do {
                _ = try FalcoAlert.decode(Data(body.utf8))
                Issue.record("accepted \(body)")
            } catch {
                #expect(error.reason.contains(reason), "\(error.reason)")
            }
        }
    }

    /// Random alerts written by Foundation's JSONSerialization read back the same.
    @Test func agreesWithFoundationOnRandomAlerts() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab/\\\"\n\t é😀\u{1}\u{7f}<>&'") + ["\u{0}"]
        func randomText() -> String {
            String(
                (0..<Int.random(in: 0...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
        }
        for _ in 0..<300 {
            var fields: [String: Any] = [:]
            for index in 0..<Int.random(in: 0...8, using: &generator) {
                switch Int.random(in: 0..<5, using: &generator) {
                case 0: fields["s\(index)" + randomText()] = randomText()
                case 1: fields["i\(index)"] = Int64.random(in: Int64.min...Int64.max, using: &generator)
                case 2: fields["b\(index)"] = Bool.random(using: &generator)
                case 3: fields["n\(index)"] = NSNull()
                default: fields["u\(index)"] = UInt64.random(in: UInt64(Int64.max) + 1...UInt64.max, using: &generator)
                }
            }
            let object: [String: Any] = [
                "rule": "r" + randomText(), "priority": "Notice", "time": "2026-11-29T12:00:00Z",
                "output": randomText(),
                "tags": (0..<Int.random(in: 0...3, using: &generator)).map { _ in randomText() },
                "output_fields": fields,
            ]
            let data = try JSONSerialization.data(withJSONObject: object)
            let decoded = try FalcoAlert.decode(data)
            #expect(decoded.rule == object["rule"] as? String)
            #expect(decoded.output == object["output"] as? String)
            #expect(decoded.tags == object["tags"] as? [String])
            #expect(decoded.outputFields.count == fields.count)
            for (key, value) in fields {
                switch value {
                case let text as String: #expect(decoded.outputFields[key] == .string(text))
                case let number as Int64: #expect(decoded.outputFields[key] == .integer(number))
                case let number as UInt64: #expect(decoded.outputFields[key] == .unsigned(number))
                case let flag as Bool: #expect(decoded.outputFields[key] == .bool(flag))
                default: #expect(decoded.outputFields[key] == .null)
                }
            }
        }
    }
}
