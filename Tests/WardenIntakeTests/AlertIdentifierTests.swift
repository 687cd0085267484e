// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenIntake

@Suite struct AlertIdentifierTests {
    func alert(time: String, rule: String = "Execution from /dev/shm", output: String = "o", uuid: String? = nil) throws
        -> FalcoAlert
    {
        let uuidField = uuid.map { #","uuid":"\#($0)""# } ?? ""
        return try FalcoAlert.decode(
            Data(#"{"rule":"\#(rule)","priority":"Warning","time":"\#(time)","output":"\#(output)"\#(uuidField)}"#.utf8)
        )
    }

    @Test func generatedIdsAreStableDistinctAndInTimeOrder() throws {
        let first = try alert(time: "2026-11-29T12:00:00.000000001Z")
        let id = AlertIntake.identifier(for: first)
        #expect(
            id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }, "\(id)")
        #expect(AlertIntake.identifier(for: try alert(time: "2026-11-29T12:00:00.000000001Z")) == id, "a redelivery")
        // The same instant, another rule (two rules on one event): another id.
        let sameInstant = AlertIntake.identifier(for: try alert(time: "2026-11-29T12:00:00.000000001Z", rule: "Other"))
        #expect(sameInstant != id)
        #expect(sameInstant.prefix(16) == id.prefix(16), "the time part is the same")
        #expect(AlertIntake.identifier(for: try alert(time: "2026-11-29T12:00:00.000000001Z", output: "p")) != id)
        // Ids sort like the alerts' times, across a second boundary and a year boundary.
        let times = [
            "2025-12-31T23:59:59.999999999Z", "2026-11-29T12:00:00.000000001Z", "2026-11-29T12:00:00.000000002Z",
            "2026-11-29T12:00:01Z", "2027-01-01T00:00:00Z",
        ]
        let ids = try times.map { AlertIntake.identifier(for: try alert(time: $0)) }
        #expect(ids == ids.sorted())
    }

    @Test func falcosidekicksUUIDIsTheId() throws {
        let uuid = "5b3f3a8e-8d1c-4c59-9f0c-2f1e2d3c4b5a"
        #expect(AlertIntake.identifier(for: try alert(time: "2026-11-29T12:00:00Z", uuid: uuid)) == uuid)
    }
}
