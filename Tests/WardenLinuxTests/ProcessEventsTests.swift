// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenLinux

/// The process events connector's datagrams: decoded without trusting a length, and, as root,
/// an exec of this test seen through a real subscription.
struct ProcessEventsTests {
    @Test func anExecEventRoundTrips() {
        let event = ProcessExecEvent(pid: 4243, tgid: 4242, monotonicNanoseconds: 123_456_789)
        let datagram = ProcessEventDecoder.datagram(for: event)
        #expect(datagram.withUnsafeBytes { ProcessEventDecoder.execs(in: $0) } == [event])
    }

    /// Two messages in one datagram, and every truncation of it: no read past the end, and
    /// only whole events come out.
    @Test func truncatedAndConcatenatedDatagramsAreSafe() {
        let first = ProcessEventDecoder.datagram(for: ProcessExecEvent(pid: 1, tgid: 1, monotonicNanoseconds: 1))
        let second = ProcessEventDecoder.datagram(for: ProcessExecEvent(pid: 2, tgid: 2, monotonicNanoseconds: 2))
        var both = first
        while both.count % 4 != 0 { both.append(0) }
        both += second
        #expect(both.withUnsafeBytes { ProcessEventDecoder.execs(in: $0) }.map(\.pid) == [1, 2])
        for length in 0..<both.count {
            let events = Array(both[0..<length]).withUnsafeBytes { ProcessEventDecoder.execs(in: $0) }
            #expect(events.count <= 1)
        }
    }

    /// A header claiming more than the datagram holds, or less than a header, ends the decode.
    @Test func lyingLengthsStopTheDecode() {
        var datagram = ProcessEventDecoder.datagram(for: ProcessExecEvent(pid: 9, tgid: 9, monotonicNanoseconds: 9))
        for claimed: UInt32 in [0, 3, 15, UInt32(datagram.count + 1), .max] {
            datagram.withUnsafeMutableBytes { $0.storeBytes(of: claimed, toByteOffset: 0, as: UInt32.self) }
            #expect(datagram.withUnsafeBytes { ProcessEventDecoder.execs(in: $0) }.isEmpty, "\(claimed)")
        }
    }

    /// As root: a subscription sees the exec of a child this test starts.
    @Test(.enabled(if: getuid() == 0, "the connector needs CAP_NET_ADMIN"))
    func aRealSubscriptionSeesAnExec() throws {
        let socket = try ProcessEventSocket()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let deadline = Date().addingTimeInterval(5)
        var seen: [ProcessExecEvent] = []
        while Date() < deadline && !seen.contains(where: { $0.tgid == child.processIdentifier }) {
            seen += try socket.drain().execs
            usleep(10_000)
        }
        #expect(seen.contains { $0.tgid == child.processIdentifier })
    }
}
