// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import Testing
import WardenLinux

@testable import WardenSandbox

/// The sink on real unix socket pairs: what it keeps of each connection, and when it hangs up.
@Suite struct SandboxConnectionSinkTests {
    /// A pair as the observer makes one: the sample's end, and the sink's.
    func pair() throws -> (sample: FileDescriptor, supervisor: FileDescriptor) {
        try sys_unixStandInPair(type: SandboxNetworkAnswer.stream, nonBlocking: false)
    }

    /// Waits up to `seconds` for `fd` to be readable; what one read then returns (0: EOF).
    func readAfterWaiting(_ fd: FileDescriptor, seconds: Int32) -> Int {
        var fds = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
        guard poll(&fds, 1, seconds * 1000) == 1 else { return -2 }
        var byte: UInt8 = 0
        return Glibc.read(fd.rawValue, &byte, 1)
    }

    @Test func itKeepsTheFirstBytesOfEachConnectionAndHangsUpWhenQuiet() throws {
        let sink = try SandboxConnectionSink()
        let (first, firstPeer) = try pair()
        let (second, secondPeer) = try pair()
        let (silent, silentPeer) = try pair()
        defer { [first, second, silent].forEach(sys_close) }
        sink.adopt(firstPeer, id: 0)
        sink.adopt(secondPeer, id: 1)
        sink.adopt(silentPeer, id: 2)
        #expect(Glibc.write(first.rawValue, "GET / HTTP/1.1\r\n", 16) == 16)
        // More than the sink keeps: it keeps 4 KiB and counts the rest.
        let big = [UInt8](repeating: 0x41, count: 6000)
        let written = big.withUnsafeBytes { Glibc.write(second.rawValue, $0.baseAddress, $0.count) }
        #expect(written == 6000)
        let started = sys_monotonicNanoseconds()
        // Each hangs up: the silent one after its half second, the others after theirs or at once.
        #expect(readAfterWaiting(silent, seconds: 3) == 0)
        #expect(readAfterWaiting(first, seconds: 3) == 0)
        let waited = sys_monotonicNanoseconds() - started
        #expect(waited >= SandboxConnectionSink.quietMilliseconds * 1_000_000 / 2, "it hung up at once: \(waited) ns")
        let received = sink.stop()
        #expect(received[0] == .init(bytes: Array("GET / HTTP/1.1\r\n".utf8), total: 16))
        #expect(received[1]?.bytes == Array(big.prefix(SandboxConnectionSink.keptBytes)))
        #expect(received[1]?.total == 6000)
        #expect(received[2] == .init(bytes: [], total: 0))
    }

    /// A whole HTTP request is answered at once (200, empty body) and the connection closed; a
    /// request whose body is still coming waits for it.
    @Test func itAnswersAWholeHTTPRequestAndHangsUp() throws {
        let sink = try SandboxConnectionSink()
        let (client, clientPeer) = try pair()
        let (poster, posterPeer) = try pair()
        defer { [client, poster].forEach(sys_close) }
        sink.adopt(clientPeer, id: 0)
        sink.adopt(posterPeer, id: 1)
        let request = Array("GET /x.sh HTTP/1.1\r\nHost: c2.example\r\n\r\n".utf8)
        #expect(sys_sendAll(client, request))
        // An upload past what the sink keeps: whole once its last byte is in.
        let head =
            Array("POST /up HTTP/1.1\r\nContent-Length: 10003\r\n\r\n".utf8) + [UInt8](repeating: 0x61, count: 10_000)
        #expect(sys_sendAll(poster, head))
        let started = sys_monotonicNanoseconds()
        var answer = [UInt8](repeating: 0, count: 512)
        var fds = [pollfd(fd: client.rawValue, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 3000) == 1)
        let got = Glibc.read(client.rawValue, &answer, answer.count)
        #expect(sys_monotonicNanoseconds() - started < SandboxConnectionSink.quietMilliseconds * 1_000_000)
        #expect(
            String(decoding: answer.prefix(max(0, got)), as: UTF8.self)
                == String(decoding: SandboxSinkAnswer.http.bytes, as: UTF8.self))
        #expect(readAfterWaiting(client, seconds: 3) == 0)
        // The body's last bytes, then the answer.
        #expect(sys_sendAll(poster, Array("cde".utf8)))
        fds = [pollfd(fd: poster.rawValue, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 3000) == 1)
        #expect(Glibc.read(poster.rawValue, &answer, answer.count) == SandboxSinkAnswer.http.bytes.count)
        let received = sink.stop()
        #expect(received[0] == .init(bytes: request, total: request.count, answer: .http))
        #expect(received[1]?.answer == .http && received[1]?.total == head.count + 3)
        #expect(received[1]?.bytes.count == SandboxConnectionSink.keptBytes)
    }

    @Test func aSinkThatTookNothingStopsAtOnce() throws {
        let sink = try SandboxConnectionSink()
        #expect(sink.hasRoom)
        #expect(sink.stop().isEmpty)
    }
}
