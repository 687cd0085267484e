// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import WardenCore

/// A path from the command line as the exact bytes that were typed.
///
/// Swift decodes `argv` with repair, so a byte that is not UTF-8 arrives as U+FFFD, and the
/// String ArgumentParser hands over names another file, or none: `/dev/shm/$'\xff'` could be
/// neither sandboxed nor quarantined. A dropper may pick such a name for just that reason.
enum PathArgument {
    /// The bytes of the `argv` entry (or the value of its `--name=value` form) that decodes to
    /// `argument`; `argument`'s own UTF-8 when it needed no repair.
    static func bytes(_ argument: String) -> [UInt8] {
        guard argument.unicodeScalars.contains("\u{FFFD}") else { return Array(argument.utf8) }
        for index in 0..<Int(CommandLine.argc) {
            guard let entry = CommandLine.unsafeArgv[index] else { continue }
            let raw = entry.withMemoryRebound(to: UInt8.self, capacity: strlen(entry) + 1) {
                Array(UnsafeBufferPointer(start: $0, count: strlen(entry)))
            }
            if String(decoding: raw, as: UTF8.self) == argument { return raw }
            if raw.starts(with: Array("--".utf8)), let equals = raw.firstIndex(of: UInt8(ascii: "=")),
                String(decoding: raw[(equals + 1)...], as: UTF8.self) == argument
            {
                return Array(raw[(equals + 1)...])
            }
        }
        return Array(argument.utf8)
    }

    /// Absolute against the working directory, without trailing slashes.
    static func absolute(_ argument: String) -> PathBytes {
        var path = bytes(argument)
        while path.count > 1 && path.last == UInt8(ascii: "/") { path.removeLast() }
        guard path.first != UInt8(ascii: "/") else { return PathBytes(path) }
        return PathBytes(workingDirectory() + [UInt8(ascii: "/")] + path)
    }

    /// With every symlink resolved (`realpath`); nil when it does not exist.
    static func resolved(_ argument: String) -> PathBytes? {
        let path = absolute(argument).bytes.map { CChar(bitPattern: $0) } + [0]
        let resolved = realpath(path, nil)
        guard let resolved else { return nil }
        defer { free(resolved) }
        return PathBytes(Array(UnsafeRawBufferPointer(start: resolved, count: strlen(resolved))))
    }

    private static func workingDirectory() -> [UInt8] {
        guard let directory = getcwd(nil, 0) else { return [] }
        defer { free(directory) }
        return Array(UnsafeRawBufferPointer(start: directory, count: strlen(directory)))
    }
}
