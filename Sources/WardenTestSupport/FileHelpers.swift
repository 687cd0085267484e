// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc

/// Writes `content` at `path` (bytes) with `mode`, as `write(2)` would: no Foundation path decoding.
public func writeFile(_ path: [UInt8], _ content: Data, mode: mode_t = 0o755) throws {
    let fd = path.withUnsafeBufferPointer { buffer in
        (buffer.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer {
            open($0.baseAddress!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        }
    }
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    _ = fchmod(fd, mode)
}

public func readFile(_ path: [UInt8]) -> Data? {
    let fd = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer {
        open($0.baseAddress!, O_RDONLY | O_CLOEXEC)
    }
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
    let result = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { lstat($0.baseAddress!, &status) }
    return result == 0 ? status : nil
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
