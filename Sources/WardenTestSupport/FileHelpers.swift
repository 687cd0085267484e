// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc

/// Writes `content` at `path` (bytes) with `mode`, as `write(2)` would: no Foundation path decoding.
public func writeFile(_ path: [UInt8], _ content: Data, mode: mode_t = 0o755) throws {
    let fd = open(cString(path), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    _ = fchmod(fd, mode)
}

public func readFile(_ path: [UInt8]) -> Data? {
    let fd = open(cString(path), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count <= 0 { break }
        out.append(contentsOf: buffer[0..<count])
    }
    return out
}

public func lstatOf(_ path: [UInt8]) -> stat? {
    var status = stat()
    return lstat(cString(path), &status) == 0 ? status : nil
}

/// `path` as the NUL-terminated C string a libc call takes.
private func cString(_ path: [UInt8]) -> [CChar] {
    path.map { CChar(bitPattern: $0) } + [0]
}

/// Starts `executable` with `arguments`; returns the running process. Stop it with SIGKILL: the
/// test process ignores SIGTERM (service-lifecycle's signal handling), and children inherit that.
public func launch(_ executable: String, _ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try retryingTextFileBusy { try process.run() }
    return process
}
