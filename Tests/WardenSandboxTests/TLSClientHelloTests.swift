// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing

@testable import WardenSandbox

@Suite struct TLSClientHelloTests {
    /// What curl 7.88 sent, in the jail, for `--resolve pool.example.net:443:203.0.113.5
    /// https://pool.example.net/`: 517 bytes, caught by the sink.
    static let curlHello = Array(
        Data(
            base64Encoded:
                "FgMBAgABAAH8AwP8MVzTZclCA1I6bZCdUspClhyHSO6ab2KtskGM/S/NVSC44Lu+STba6gpEsK0drcxrDC23Vmb1UNtnaemmETNzeQA+EwITAxMBwCzAMACfzKnMqMyqwCvALwCewCTAKABrwCPAJwBnwArAFAA5wAnAEwAzAJ0AnAA9ADwANQAvAP8BAAF1AAAAFQATAAAQcG9vbC5leGFtcGxlLm5ldAALAAQDAAECAAoAFgAUAB0AFwAeABkAGAEAAQEBAgEDAQQAEAAOAAwCaDIIaHR0cC8xLjEAFgAAABcAAAAxAAAADQAqACgEAwUDBgMIBwgICAkICggLCAQIBQgGBAEFAQYBAwMDAQMCBAIFAgYCACsACQgDBAMDAwIDAQAtAAIBAQAzACYAJAAdACAYpmNU8+y1j4FLgRllcn+bc2n9lORzbzPY7cGb2XWbUwAVAK0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
        )!)

    /// A ClientHello with `extensions`, each (type, body), in a record of its own.
    func hello(_ extensions: [(Int, [UInt8])]) -> [UInt8] {
        func be(_ value: Int, _ size: Int) -> [UInt8] { (0..<size).reversed().map { UInt8(value >> ($0 * 8) & 0xff) } }
        let list = extensions.flatMap { be($0.0, 2) + be($0.1.count, 2) + $0.1 }
        let body: [UInt8] =
            [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + be(2, 2) + [0x13, 0x01] + [1, 0] + be(list.count, 2)
            + list
        let handshake = [1] + be(body.count, 3) + body
        return [22, 3, 1] + be(handshake.count, 2) + handshake
    }

    func serverName(_ name: String) -> (Int, [UInt8]) {
        let bytes = Array(name.utf8)
        let entry = [UInt8(0), UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
        return (0, [UInt8(entry.count >> 8), UInt8(entry.count & 0xff)] + entry)
    }

    @Test func curlsServerNameIsRead() {
        #expect(Self.curlHello.count == 517)
        #expect(TLSClientHello.serverName(in: Self.curlHello) == "pool.example.net")
    }

    @Test func theServerNameIsFoundAmongOtherExtensions() {
        let bytes = hello([(10, [0, 2, 0, 29]), serverName("c2.example"), (43, [2, 3, 4])])
        #expect(TLSClientHello.serverName(in: bytes) == "c2.example")
    }

    @Test func noNameIsMadeUp() {
        // No server_name (a connection to an address), a name that is no host name, bytes cut
        // short, and something other than TLS.
        #expect(TLSClientHello.serverName(in: hello([(10, [0, 2, 0, 29])])) == nil)
        #expect(TLSClientHello.serverName(in: hello([serverName("a b\u{1b}[2J")])) == nil)
        #expect(TLSClientHello.serverName(in: Array(hello([serverName("c2.example")]).prefix(60))) == nil)
        #expect(TLSClientHello.serverName(in: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == nil)
        #expect(TLSClientHello.serverName(in: []) == nil)
    }
}
