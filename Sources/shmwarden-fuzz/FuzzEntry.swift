// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenFuzzing

// Built by scripts/fuzz with `-sanitize=fuzzer -D FUZZING`, main hands control to libFuzzer's
// driver, which calls the target named by SHMWARDEN_FUZZ_TARGET. Built plainly, it replays the
// files it is given through that target.

#if FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// libFuzzer's archive brings its own `main`, which wants this; ours runs instead and passes the
    /// same work to `LLVMFuzzerRunDriver`.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        FuzzTargets.run(FuzzEntry.target, data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }
#endif

@main
enum FuzzEntry {
    static let target = ProcessInfo.processInfo.environment["SHMWARDEN_FUZZ_TARGET"] ?? "alert"

    static func main() {
        guard FuzzTargets.names.contains(target) else {
            FileHandle.standardError.write(Data("SHMWARDEN_FUZZ_TARGET must be one of \(FuzzTargets.names)\n".utf8))
            exit(2)
        }
        #if FUZZING
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(
                LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
        #else
            for path in CommandLine.arguments.dropFirst() {
                guard let bytes = FileManager.default.contents(atPath: path) else { continue }
                FuzzTargets.run(target, Array(bytes))
            }
        #endif
    }
}
