// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The question of a DNS query a sample sent to a name server itself (musl's resolver, or one of
/// its own), read from the datagram its sendto(2) carried: the host names a program that never
/// asks glibc (`SandboxNameService`) looked up.
struct DNSQuestion: Equatable {
    /// The name, in presentation form: labels joined by dots, a dot or backslash inside a label
    /// escaped, and any byte outside printable ASCII as `\DDD` (RFC 1035, 5.1).
    var name: String
    /// `A`, `AAAA`, `TXT`, … or `TYPE<n>` (RFC 3597) for another.
    var type: String
    /// The query's header and question, as sent: what an answer repeats.
    var headerAndQuestion: [UInt8]

    /// The most of a datagram read: a query's question is in its first bytes, and a classic
    /// DNS message over UDP is at most 512.
    static let readLimit = 512
    static let port = 53

    /// The first question of `message`, when it is a standard query (QR 0, opcode 0) with a
    /// well-formed one; nil otherwise.
    init?(message: [UInt8]) {
        guard message.count >= 12 else { return nil }
        let flags = Int(message[2]) << 8 | Int(message[3])
        let questions = Int(message[4]) << 8 | Int(message[5])
        // A response (QR set) or another opcode (an update, a notify) asks no name.
        guard flags & 0x8000 == 0, flags & 0x7800 == 0, questions > 0 else { return nil }
        var offset = 12
        var labels: [String] = []
        var length = 0
        while true {
            guard offset < message.count else { return nil }
            let size = Int(message[offset])
            offset += 1
            if size == 0 { break }
            // A compression pointer has no place in a query's first name; a label is at most 63
            // bytes, a name at most 255.
            guard size <= 63, offset + size <= message.count else { return nil }
            length += size + 1
            guard length <= 255 else { return nil }
            labels.append(Self.presentation(message[offset..<(offset + size)]))
            offset += size
        }
        guard offset + 4 <= message.count else { return nil }
        name = labels.isEmpty ? "." : labels.joined(separator: ".")
        type = Self.typeName(Int(message[offset]) << 8 | Int(message[offset + 1]))
        headerAndQuestion = Array(message[..<(offset + 4)])
    }

    /// A name server's answer that the name does not exist (NXDOMAIN): the query's id and
    /// question, its recursion-desired bit, recursion available, and no records. A resolver
    /// takes it as final, where an unanswered query would hold it for its whole timeout.
    var notFoundAnswer: [UInt8] {
        var answer = headerAndQuestion
        answer[2] = 0x80 | (headerAndQuestion[2] & 0x01)  // QR, opcode 0, RD as asked
        answer[3] = 0x80 | 0x03  // RA, RCODE NXDOMAIN
        answer.replaceSubrange(4..<12, with: [0, 1, 0, 0, 0, 0, 0, 0])  // one question, no records
        return answer
    }

    /// Whether it asks for an IPv4 address of the Internet class (A, IN).
    var isAddressQuestion: Bool { headerAndQuestion.suffix(4).elementsEqual([0, 1, 0, 1]) }

    /// A name server's answer with `address` (4 bytes, for an A question) as the one record,
    /// or with no record (the name exists, with nothing of the type asked): the query's id and
    /// question, its recursion-desired bit, recursion available, NOERROR. A record's name
    /// points at the question's (offset 12); it may be kept a minute.
    func answer(address: [UInt8]?) -> [UInt8] {
        var answer = notFoundAnswer
        answer[3] = 0x80  // RA, RCODE NOERROR
        guard let address, address.count == 4 else { return answer }
        answer[7] = 1  // ANCOUNT
        return answer + [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4] + address
    }

    static func presentation(_ label: ArraySlice<UInt8>) -> String {
        var text = ""
        for byte in label {
            switch byte {
            case UInt8(ascii: "."), UInt8(ascii: "\\"): text += "\\" + String(UnicodeScalar(byte))
            case 0x21...0x7e: text.append(Character(UnicodeScalar(byte)))
            default:
                let digits = String(byte)
                text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
            }
        }
        return text
    }

    static func typeName(_ type: Int) -> String {
        let names = [
            1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 64: "SVCB",
            65: "HTTPS", 255: "ANY",
        ]
        return names[type] ?? "TYPE\(type)"
    }
}
