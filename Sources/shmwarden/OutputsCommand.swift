// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenFleet
import WardenLinux
import WardenSensors
import WardenStore

struct OutputsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outputs",
        abstract: "The outputs every detection and action is sent to (Falcosidekick): test them, see their backlog.",
        discussion: "Outputs are configured under outputs: in the configuration file; docs/FLEET.md has the details.",
        subcommands: [Test.self, Status.self])

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send one test event to each output and print its answer (exit 1 if one did not take it).")

        @OptionGroup var state: StateOptions

        @Flag(help: "Print the results as JSON.")
        var json = false

        func run() async throws {
            let outputs = try state.configFile().outputs
            guard !outputs.isEmpty else {
                throw UsageError(message: "no outputs are configured (outputs: in the configuration file)")
            }
            let hostname = sys_hostname()
            var results: [[String: String]] = []
            var allTaken = true
            for output in outputs {
                let client: FleetClient
                do {
                    client = try FleetClient(output)
                } catch {
                    throw UsageError(message: error.description)
                }
                let event = OutboxEvents.test(output: output.name, at: SensorService.wallClock())
                let started = sys_monotonicNanoseconds()
                let (outcome, status) = await client.post(event.json(hostname: hostname))
                let milliseconds = Double(sys_monotonicNanoseconds() - started) / 1e6
                await client.shutdown()
                let answer: String
                switch outcome {
                case .delivered: answer = "taken (HTTP \(status ?? 0))"
                case .rejected(let reason):
                    answer = "refused: \(reason)"
                    allTaken = false
                case .retry(let reason):
                    answer = "not taken: \(reason)"
                    allTaken = false
                }
                results.append([
                    "output": output.name, "url": output.url, "answer": answer,
                    "milliseconds": String(format: "%.1f", milliseconds), "eventId": event.id,
                ])
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for result in results {
                    print(
                        "\(result["output"] ?? "")\t\(result["url"] ?? "")\t\(result["answer"] ?? "")\t\(result["milliseconds"] ?? "") ms\tevent \(result["eventId"] ?? "")"
                    )
                }
            }
            if !allTaken { throw ExitCode(1) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the outbox's size and, for each output, the events it has not been sent yet.")

        @OptionGroup var state: StateOptions

        @Flag(help: "Print the status as JSON.")
        var json = false

        func run() throws {
            let outputs = try state.configFile().outputs
            let database = try EvidenceDatabase(path: state.state.databasePath, connections: .single)
            defer { try? database.close() }
            let bounds = try database.outboxBounds()
            let cursors = try database.outboxCursors()
            let held = bounds.head.flatMap { head in bounds.tail.map { $0 - head + 1 } } ?? 0
            var rows: [[String: Any]] = []
            for output in outputs {
                let cursor = cursors[output.name]
                let pending = cursor.map { max(0, (bounds.tail ?? $0) - $0) }
                rows.append([
                    "output": output.name, "url": output.url, "pending": pending.map { $0 as Any } ?? NSNull(),
                ])
            }
            if json {
                let object: [String: Any] = ["outboxEvents": held, "outputs": rows]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("outbox: \(held) event(s) held")
            for row in rows {
                let pending = (row["pending"] as? Int64).map { "\($0) pending" } ?? "not started yet"
                print("\(row["output"] ?? "")\t\(row["url"] ?? "")\t\(pending)")
            }
        }
    }
}
