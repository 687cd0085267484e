// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

@Suite struct FleetSettingsTests {
    @Test func outputsAreReadWithEverySetting() throws {
        let text = """
            outputs:
              - name: sidekick
                url: https://sidekick.internal:2801/
                min-priority: Notice
                events: [guard, action]
                timeout: 15s
                ca: /etc/shmwarden/fleet/ca.crt
                certificate: /etc/shmwarden/fleet/client.crt
                key: /etc/shmwarden/fleet/client.key
                token-file: /etc/shmwarden/fleet/token
                headers: {X-Scope-OrgID: tenant-a}
              - {name: local, url: "http://127.0.0.1:2801/"}
            outbox: {limit: 5000}
            """
        let config = try ConfigFile.parse(text, file: "c.yaml").get()
        #expect(config.outputs.map(\.name) == ["sidekick", "local"])
        let sidekick = try #require(config.outputs.first)
        #expect(sidekick.minimumPriority == .notice && sidekick.types == [.guard, .action])
        #expect(sidekick.timeoutSeconds == 15 && sidekick.caFile == "/etc/shmwarden/fleet/ca.crt")
        #expect(sidekick.certificateFile != nil && sidekick.keyFile != nil && sidekick.tokenFile != nil)
        #expect(sidekick.headers == [.init(name: "X-Scope-OrgID", value: "tenant-a")])
        let local = try #require(config.outputs.last)
        #expect(local.minimumPriority == .debug && local.types == Set(FleetEventType.selectable))
        #expect(config.outbox.limit == 5000)
        #expect(try ConfigFile.parse("", file: "c.yaml").get().outputs.isEmpty)
    }

    @Test(arguments: [
        ("outputs: {name: a}", "must be a list"),
        ("outputs: [{url: 'http://x/'}]", "needs a name"),
        ("outputs: [{name: a}]", "needs a url"),
        ("outputs: [{name: a, url: 'ftp://x/'}]", "url must be http"),
        ("outputs: [{name: a, url: 'http://u:p@x/'}]", "credentials"),
        ("outputs: [{name: 'a b', url: 'http://x/'}]", "name is 1 to 64"),
        ("outputs: [{name: a, url: 'http://x/'}, {name: a, url: 'http://y/'}]", "two outputs are named 'a'"),
        ("outputs: [{name: a, url: 'http://x/', min-priority: loud}]", "min-priority"),
        ("outputs: [{name: a, url: 'http://x/', events: [everything]}]", "events lists"),
        ("outputs: [{name: a, url: 'https://x/', certificate: /c.pem}]", "go together"),
        ("outputs: [{name: a, url: 'http://x/', ca: /ca.pem}]", "need an https"),
        ("outputs: [{name: a, url: 'http://x/', timeout: 1h}]", "timeout"),
        ("outputs: [{name: a, url: 'http://x/', headers: {'X Y': z}}]", "a header is"),
        ("outputs: [{name: a, url: 'http://x/', colour: red}]", "unknown key 'colour'"),
        ("outbox: {limit: 3}", "outbox.limit"),
    ])
    func badOutputsAreRefusedWithTheirLine(text: String, reason: String) {
        guard case .failure(let errors) = ConfigFile.parse(text, file: "c.yaml") else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(errors.description.contains(reason), "\(errors)")
        #expect(errors.description.contains("c.yaml:1"), "\(errors)")
    }

    @Test func anOutputTakesWhatItsFilterSaysAndAlwaysNoticesAndTests() {
        var output = FleetOutput(name: "a", url: "http://x/")
        output.minimumPriority = .warning
        output.types = [.guard]
        #expect(output.accepts(type: .guard, priority: .critical))
        #expect(output.accepts(type: .guard, priority: .warning))
        #expect(!output.accepts(type: .guard, priority: .notice))
        #expect(!output.accepts(type: .executable, priority: .critical))
        #expect(output.accepts(type: .outbox, priority: .debug) && output.accepts(type: .test, priority: .debug))
    }
}

@Suite struct FleetEventTests {
    @Test func theJSONIsFalcosAndFalcosidekickTakesIt() throws {
        let event = FleetEvent(
            id: "0b9f7c52-2f43-4c8e-9b1e-6a9a2a1f0c11", type: .guard, rule: "Exec refused on tmpfs",
            priority: .critical, time: Timestamp(seconds: 1_800_000_000, nanoseconds: 123_456_789),
            sentence: "Exec refused (proc.exepath=/dev/shm/\"x\"\n\u{1}y)",
            fields: [
                .init("proc.pid", .integer(42)), .init("proc.exepath", .string("/dev/shm/\"x\"\n\u{1}y")),
                .init("shmwarden.guard.cached", .bool(false)), .init("ratio", .double(.nan)),
                .init("container.id", .null),
            ],
            tags: ["shmwarden"])
        let text = event.json(hostname: "node-\"7\"")
        let body = Data(text.utf8)
        #expect(FalcosidekickAcceptance.refusal(body) == nil)
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(object["source"] as? String == "shmwarden" && object["hostname"] as? String == "node-\"7\"")
        #expect(object["priority"] as? String == "Critical" && object["rule"] as? String == "Exec refused on tmpfs")
        #expect(object["time"] as? String == "2027-01-15T08:00:00.123456789Z")
        #expect(
            object["output"] as? String
                == #"08:00:00.123456789: Critical Exec refused (proc.exepath=/dev/shm/"x"\x0a\x01y)"#,
            "one line, the path's control characters shown")
        let fields = try #require(object["output_fields"] as? [String: Any])
        #expect(
            fields["shmwarden.event_id"] as? String == event.id && fields["shmwarden.event_type"] as? String == "guard")
        #expect(fields["proc.exepath"] as? String == "/dev/shm/\"x\"\n\u{1}y" && fields["proc.pid"] as? Int == 42)
        #expect(fields["ratio"] is NSNull && fields["container.id"] is NSNull)
        #expect(object["uuid"] as? String == event.id && text.split(separator: "\n").count == 1)
    }

    @Test(arguments: [
        ("[]", "not a JSON object"),
        (#"{"priority":"loud","rule":"r","time":"2027-01-15T08:00:00Z","output_fields":{"a":1}}"#, "priority"),
        (#"{"priority":"WARNING","time":"2027-01-15T08:00:00Z","output_fields":{"a":1}}"#, "rule"),
        (#"{"priority":"info","rule":"r","output_fields":{"a":1}}"#, "time"),
        (#"{"priority":"info","rule":"r","time":"2027-01-15T08:00:00Z","output_fields":{}}"#, "output_fields"),
    ])
    func falcosidekickRefusesWhatItWould(body: String, reason: String) {
        #expect(FalcosidekickAcceptance.refusal(Data(body.utf8))?.contains(reason) == true)
    }

    @Test func backoffDoublesUpToItsCapWithJitterInside() {
        var backoff = RetryBackoff(baseSeconds: 0.25, capSeconds: 10)
        var ceilings: [Double] = []
        for _ in 0..<8 {
            ceilings.append(backoff.ceiling)
            let wait = backoff.next(unit: 0.5)
            #expect(wait == ceilings.last! * 0.5)
        }
        #expect(ceilings == [0.25, 0.5, 1, 2, 4, 8, 10, 10])
        #expect(backoff.next(unit: 1) == 10 && backoff.next(unit: 0) == 0)
        backoff.reset()
        #expect(backoff.ceiling == 0.25)
        for _ in 0..<100 {
            var fresh = RetryBackoff()
            #expect((0...0.25).contains(fresh.next()))
        }
    }

    @Test func answersThatMeanRefusedAreNotRetriedAndTheRestAre() {
        #expect(DeliveryOutcome(status: 200, body: "") == .delivered)
        #expect(DeliveryOutcome(status: 204, body: "") == .delivered)
        for status in [400, 413, 415, 422] {
            guard case .rejected = DeliveryOutcome(status: status, body: "bad") else {
                Issue.record("\(status) should be refused for good")
                continue
            }
        }
        for status in [401, 403, 404, 408, 429, 500, 502, 503] {
            guard case .retry = DeliveryOutcome(status: status, body: "") else {
                Issue.record("\(status) should be retried")
                continue
            }
        }
    }
}
