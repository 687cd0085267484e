// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The server name a TLS ClientHello asks for (its server_name extension, RFC 6066), read from
/// the first bytes a sample sent over a connection made to the jail's sink: a C2 or mining pool
/// reached over TLS names itself there, in the clear, before any key is agreed.
enum TLSClientHello {
    /// The host name in `bytes` when they start with a TLS handshake record holding a
    /// ClientHello with a server_name extension; nil otherwise (or when cut short).
    static func serverName(in bytes: [UInt8]) -> String? {
        var reader = Reader(bytes: bytes)
        // Record: handshake (22), version, length; then the handshake: ClientHello (1), length.
        guard reader.byte() == 22, reader.skip(2), let recordLength = reader.number(2), recordLength >= 4,
            reader.byte() == 1, reader.skip(3)
        else { return nil }
        // Version, random, session id, cipher suites, compression methods.
        guard reader.skip(2 + 32), let session = reader.number(1), reader.skip(session),
            let suites = reader.number(2), reader.skip(suites), let methods = reader.number(1), reader.skip(methods),
            let extensionsLength = reader.number(2)
        else { return nil }
        let end = reader.offset + extensionsLength
        while reader.offset + 4 <= min(end, bytes.count) {
            guard let type = reader.number(2), let length = reader.number(2) else { return nil }
            guard type == 0 else {
                guard reader.skip(length) else { return nil }
                continue
            }
            // server_name_list: its length, then entries of type (0: host_name), length, name.
            guard reader.skip(2), reader.byte() == 0, let nameLength = reader.number(2), nameLength > 0,
                let name = reader.bytes(nameLength)
            else { return nil }
            // A host name is ASCII letters, digits, hyphens and dots; anything else is not one.
            let allowed = name.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d
                    || $0 == 0x2e || $0 == 0x5f
            }
            return allowed ? String(decoding: name, as: UTF8.self) : nil
        }
        return nil
    }

    /// Big-endian fields from the front of `bytes`, each read failing past the end.
    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func number(_ size: Int) -> Int? {
            guard offset + size <= bytes.count else { return nil }
            defer { offset += size }
            return bytes[offset..<(offset + size)].reduce(0) { $0 << 8 | Int($1) }
        }

        mutating func skip(_ count: Int) -> Bool {
            guard offset + count <= bytes.count else { return false }
            offset += count
            return true
        }

        mutating func bytes(_ count: Int) -> [UInt8]? {
            guard offset + count <= bytes.count else { return nil }
            defer { offset += count }
            return Array(bytes[offset..<(offset + count)])
        }
    }
}
