// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenLinux

/// The trace of system call exits: a real BPF program on the kernel's tracepoint, following the
/// processes of one pid namespace, and nothing else on the host.
@Suite struct SyscallExitTraceTests {
    #if arch(x86_64)
        @Test(.enabled(if: getuid() == 0 && SyscallExitTrace.isSupported, "BPF needs root"))
        func theExitsOfAPidNamespacesProcessesAreTraced() throws {
            let directory = "/dev/shm/shmwarden-exits-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // A shell in a pid namespace of its own that waits for a line, then runs a child that
            // fails to open a file, and makes one.
            let unshare = Process()
            unshare.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            unshare.arguments = [
                "--pid", "--fork", "--kill-child", "/bin/sh", "-c",
                "read go; /bin/cat /nonexistent/x 2>/dev/null; : > \(directory)/made; exit 0",
            ]
            let input = Pipe()
            unshare.standardInput = input
            try unshare.run()
            defer { if unshare.isRunning { unshare.terminate() } }
            let children = "/proc/\(unshare.processIdentifier)/task/\(unshare.processIdentifier)/children"
            var shell: Int32?
            for _ in 0..<200 where shell == nil {
                shell = (try? String(contentsOfFile: children, encoding: .utf8))
                    .flatMap { $0.split(separator: " ").first.flatMap { Int32($0) } }
                if shell == nil { usleep(10_000) }
            }
            let inNamespace = try #require(shell, "unshare made no child")
            let openat: Int32 = 257
            let trace = try SyscallExitTrace(calls: [openat], compatibleCalls: [5])
            try trace.follow(pidNamespaceOf: inNamespace)
            let start = sys_monotonicNanoseconds()
            // An open of this process's own (another pid namespace's): not traced.
            let ours = open("/dev/null", O_RDONLY)
            close(ours)
            input.fileHandleForWriting.write(Data("go\n".utf8))
            unshare.waitUntilExit()
            trace.drain()
            trace.detach()
            #expect(unshare.terminationStatus == 0)
            #expect(FileManager.default.fileExists(atPath: directory + "/made"))
            // Only openat's exits were kept, each after the trace began, none of this process's.
            #expect(!trace.exits.isEmpty && trace.exits.allSatisfy { $0.number == Int64(openat) && $0.time > start })
            #expect(!trace.exits.contains { $0.tid == getpid() }, "\(trace.exits)")
            // The child's (cat's own thread) refusal, and the shell's creation: a descriptor.
            #expect(trace.exits.contains { $0.value == -Int64(ENOENT) && $0.tid != inNamespace }, "\(trace.exits)")
            #expect(trace.exits.contains { $0.value >= 0 && $0.tid == inNamespace }, "\(trace.exits)")

            // Loaded once, it follows the next namespace afresh: this process's own (the
            // initial one), whose open now is traced, and nothing of the one before.
            try trace.follow(pidNamespaceOf: getpid())
            #expect(trace.exits.isEmpty)
            let again = open("/dev/null", O_RDONLY)
            close(again)
            trace.drain()
            trace.detach()
            #expect(trace.exits.contains { $0.number == Int64(openat) && $0.value == Int64(again) }, "\(trace.exits)")
        }
    #endif

    @Test(.enabled(if: getuid() == 0, "needs root"))
    func aProcessThatIsGoneCannotBeFollowed() {
        #expect(throws: SystemCallError.self) {
            try SyscallExitTrace(calls: [257], compatibleCalls: []).follow(pidNamespaceOf: Int32.max - 1)
        }
    }
}
