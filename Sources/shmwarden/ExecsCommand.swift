// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenStore

struct ExecsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "execs",
        abstract: "List the execs the exec guard answered on guarded tmpfs mounts.",
        discussion: """
            One row per exec: time, pid, parent pid, uid, the file (path and SHA-256 from the \
            descriptor the kernel handed over), the answer, what enforce mode would answer, the \
            rule that decided, and how long the decision took. An exec of an unchanged file the \
            guard allowed before by its hash is not held by the kernel at all (an ignore mark, \
            cleared by the file's next write); it is still recorded, marked "not held".
            """)

    @OptionGroup var state: StateOptions

    @Option(help: "Only the newest N records.")
    var limit: Int?

    @Flag(help: "Print a JSON array of exec records.")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let directory = state.state
        guard directory.hasDatabase else {
            throw UsageError(message: "no database at \(directory.databasePath) (run `shmwarden run` first)")
        }
        let records = try EvidenceDatabase(path: directory.databasePath, connections: .single).execs(limit: limit)
        if json {
            print(try JSONOutput.encode(records))
            return
        }
        if records.isEmpty { print("(no execs recorded: is the guard on? see `shmwarden guard list`)") }
        for record in records {
            let sha = record.sha256.map { String($0.prefix(12)) } ?? "-"
            let would = record.wouldBe == record.verdict ? "" : " (enforce: \(record.wouldBe.rawValue))"
            print(
                "\(record.time.rfc3339)  pid \(record.pid) ppid \(record.ppid.map(String.init) ?? "?") "
                    + "uid \(record.uid.map(String.init) ?? "?")  \(record.verdict.rawValue)\(would)  \(sha)  "
                    + "\(record.path.displayString)  [\(record.rule)\(record.held ? "" : ", not held")]")
        }
    }
}
