// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenLinux

/// The kernel's syscall-exit tracepoint through perf: a real process and its children, a filter
/// kept in the kernel, results as the kernel returned them.
@Suite struct SyscallExitTraceTests {
    @Test(
        .enabled(
            if: getuid() == 0 && SyscallExitTrace.tracepoint != nil, "perf on another process needs root and tracefs"))
    func theExitsOfAProcessAndItsChildrenAreTraced() throws {
        // A shell that waits for a line, then runs a child that fails to open a file and makes one.
        let directory = "/dev/shm/shmwarden-exits-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "read go; /bin/cat /nonexistent/x 2>/dev/null; : > \(directory)/made; exit 0"]
        let input = Pipe()
        shell.standardInput = input
        try shell.run()
        let openat: Int32 = 257
        let trace = try SyscallExitTrace(
            following: shell.processIdentifier,
            on: (0..<Int32(ProcessInfo.processInfo.activeProcessorCount)).map { $0 },
            calls: [openat])
        let start = sys_monotonicNanoseconds()
        input.fileHandleForWriting.write(Data("go\n".utf8))
        shell.waitUntilExit()
        let closing = trace.stop()
        // No waiting for the tracepoint to be let go: a child closes the events.
        #expect(sys_monotonicNanoseconds() - start < 10_000_000_000)
        closing.wait()
        #expect(shell.terminationStatus == 0)
        #expect(trace.lost == 0)
        // Only openat's exits were kept, each after the trace began.
        #expect(!trace.exits.isEmpty && trace.exits.allSatisfy { $0.number == Int64(openat) && $0.time > start })
        // The child's (cat's own tid) refusal, and the shell's creation: a descriptor.
        #expect(
            trace.exits.contains { $0.value == -Int64(ENOENT) && $0.tid != shell.processIdentifier }, "\(trace.exits)")
        #expect(trace.exits.contains { $0.value >= 0 && $0.tid == shell.processIdentifier }, "\(trace.exits)")
    }

    @Test(
        .enabled(
            if: getuid() == 0 && SyscallExitTrace.tracepoint != nil, "perf on another process needs root and tracefs"))
    func aProcessThatIsGoneCannotBeFollowed() {
        #expect(throws: SystemCallError.self) {
            _ = try SyscallExitTrace(following: Int32.max - 1, on: [0], calls: [257])
        }
    }
}
