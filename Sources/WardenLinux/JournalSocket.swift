// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage

/// journald's native protocol: one datagram per entry to `/run/systemd/journal/socket`, each
/// field `NAME=value\n`, or `NAME\n` + 64-bit little-endian length + value + `\n` when the value
/// has a newline. Fields stay separate in the journal (`journalctl -o verbose`, `FIELD=value`
/// matches), unlike text on stderr.
public final class JournalSocket: Sendable {
    public static let path = "/run/systemd/journal/socket"
    private let descriptor: FileDescriptor

    /// nil when there is no journal socket (not under systemd, or in a container without one).
    public init?() {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        descriptor = FileDescriptor(rawValue: fd)
        guard access(Self.path, W_OK) == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(descriptor.rawValue) }

    /// Encodes `fields` (names must be upper case letters, digits and `_`, not starting with `_`).
    public static func encode(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields {
            let bytes = Array(value.utf8)
            out += Array(name.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                out.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out += $0 }
                out += bytes
            } else {
                out.append(UInt8(ascii: "="))
                out += bytes
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// Sends one entry; false when the journal did not take it (the caller falls back).
    @discardableResult
    public func send(_ fields: [(String, String)]) -> Bool {
        let datagram = Self.encode(fields)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(Self.path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in pathBytes.enumerated() where index < buffer.count - 1 { buffer[index] = byte }
        }
        let sent = datagram.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(
                        descriptor.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0,
                        socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return sent == datagram.count
    }
}
