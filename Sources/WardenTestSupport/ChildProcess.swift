// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// A program run to its end by a test: how it ended and everything it wrote. Both pipes are
/// read at once, so a child that fills one while the other is read cannot stall it.
public struct ChildProcess: Sendable {
    public var status: Int32
    public var reason: Process.TerminationReason
    public var standardOutput: Data
    public var standardError: Data

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }
    public var errors: String { String(decoding: standardError, as: UTF8.self) }

    /// Runs `executable` with `arguments` (and `environment` added to this process's); a start
    /// that fails with ETXTBSY is tried again (`retryingTextFileBusy`).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try retryingTextFileBusy { try process.run() }
        let errors = Thread.detachedRead(err.fileHandleForReading)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ChildProcess(
            status: process.terminationStatus, reason: process.terminationReason, standardOutput: output,
            standardError: errors.wait())
    }

    /// What bash writes to its standard output for `script` (`bash -c`).
    public static func bash(_ script: String) throws -> Data {
        try run("/bin/bash", ["-c", script]).standardOutput
    }
}

extension Thread {
    /// Reads `handle` to its end on a thread of its own.
    fileprivate static func detachedRead(_ handle: FileHandle) -> PendingRead {
        let pending = PendingRead()
        Thread { pending.finish(handle.readDataToEndOfFile()) }.start()
        return pending
    }
}

private final class PendingRead: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    func finish(_ data: Data) {
        self.data = data
        done.signal()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
