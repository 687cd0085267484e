// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import WardenSandbox

/// When the sink answers a connection, and with what.
@Suite struct SandboxSinkAnswerTests {
    func answer(_ text: String, total: Int? = nil) -> SandboxSinkAnswer? {
        let bytes = Array(text.utf8)
        return SandboxSinkAnswer.answer(toFirst: bytes, total: total ?? bytes.count)
    }

    @Test func aWholeHTTPRequestIsAnswered() {
        #expect(answer("GET /x.sh HTTP/1.1\r\nHost: 203.0.113.9\r\nUser-Agent: curl/7.88.1\r\n\r\n") == .http)
        #expect(answer("HEAD / HTTP/1.0\r\n\r\n") == .http)
        // A bare LF, as busybox's and hand-made clients may send.
        #expect(answer("GET /bot HTTP/1.1\nHost: c2\n\n") == .http)
        // Its body, by Content-Length, whatever the header's case.
        let post = "POST /gate.php HTTP/1.1\r\ncontent-length: 4\r\n\r\n"
        #expect(answer(post + "id=7") == .http)
        #expect(answer(post + "id") == nil)
        // A body past what the sink keeps: counted in `total`.
        #expect(answer(post + "id", total: post.utf8.count + 4) == .http)
        // Chunked: once the last chunk is in.
        let chunked = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        #expect(answer(chunked) == nil)
        #expect(answer(chunked + "0\r\n\r\n") == .http)
    }

    @Test func aRequestNotYetWholeOrOfNoKnownProtocolWaits() {
        #expect(answer("GET /x HTTP/1.1\r\nHost: c2") == nil)
        #expect(answer("GET /x HTTP/1.1\r\n") == nil)
        // Not HTTP: a miner's login, a bot's hello, a lower-case method, HTTP/2's preface.
        #expect(answer(#"{"id":1,"method":"login","params":{"login":"4A..."}}"# + "\n\n") == nil)
        #expect(answer("HELLO c2\n\n") == nil)
        #expect(answer("get / HTTP/1.1\r\n\r\n") == nil)
        #expect(answer("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == nil)
    }

    @Test func aWholeTLSClientHelloGetsAnAlert() {
        // A handshake record of 6 bytes' payload, whole and cut short.
        let record: [UInt8] = [22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3]
        #expect(SandboxSinkAnswer.answer(toFirst: record, total: record.count) == .tlsAlert)
        #expect(SandboxSinkAnswer.answer(toFirst: Array(record.prefix(8)), total: 8) == nil)
        #expect(SandboxSinkAnswer.tlsAlert.bytes == [21, 3, 3, 0, 2, 2, 40])
    }
}
