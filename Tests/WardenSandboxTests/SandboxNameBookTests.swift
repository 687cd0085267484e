// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import WardenSandbox

/// The addresses the jail's name service gives host names.
@Suite struct SandboxNameBookTests {
    @Test func eachNameGetsAnAddressOfItsOwnInTurn() {
        var book = SandboxNameBook()
        #expect(book.address(for: "c2.example") == [198, 18, 0, 1])
        #expect(book.address(for: "pool.miner.example") == [198, 18, 0, 2])
        // The same name again, in another case or fully qualified: the same address.
        #expect(book.address(for: "C2.Example.") == [198, 18, 0, 1])
        #expect(book.count == 2)
        #expect(book.name(of: [198, 18, 0, 2]) == "pool.miner.example")
        #expect(book.name(of: SandboxStandIn.mappedPrefix + [198, 18, 0, 1]) == "c2.example")
        #expect(book.name(of: [198, 18, 0, 3]) == nil)
    }

    @Test func localhostIsTheLoopbackAndWhatIsNoNameGetsNothing() {
        var book = SandboxNameBook()
        #expect(book.address(for: "localhost") == [127, 0, 0, 1])
        #expect(book.address(for: "api.localhost") == [127, 0, 0, 1])
        #expect(SandboxNameBook.isLocalhost("LocalHost.") && !SandboxNameBook.isLocalhost("localhost.example"))
        #expect(book.address(for: "") == nil)
        #expect(book.address(for: "a b") == nil)
        #expect(book.address(for: String(repeating: "a", count: 254)) == nil)
        #expect(book.count == 0)
    }

    @Test func pastTheLimitNamesAreNotFound() {
        var book = SandboxNameBook()
        for index in 0..<SandboxNameBook.limit { _ = book.address(for: "n\(index).example") }
        // The 256th is 198.18.1.0; the last, 198.18.16.0.
        #expect(book.address(for: "n255.example") == [198, 18, 1, 0])
        #expect(book.address(for: "n\(SandboxNameBook.limit - 1).example") == [198, 18, 16, 0])
        #expect(book.address(for: "one.more.example") == nil)
    }

    @Test func reportAddressesAreRead() {
        #expect(SandboxNameBook.addressBytes("198.18.0.1") == [198, 18, 0, 1])
        #expect(SandboxNameBook.addressBytes("::ffff:198.18.0.1") == [198, 18, 0, 1])
        #expect(SandboxNameBook.addressBytes("2001:db8::1") == nil)
        #expect(SandboxNameBook.addressBytes("198.18.0") == nil)
        #expect(SandboxNameBook.addressBytes("198.18.0.256") == nil)
        // The book's range is 198.18.0.0/15.
        #expect(SandboxNameBook.isGiven("198.18.0.1") && SandboxNameBook.isGiven("::ffff:198.19.255.1"))
        #expect(!SandboxNameBook.isGiven("127.0.0.1") && !SandboxNameBook.isGiven("198.20.0.1"))
        #expect(SandboxNameBook.text([198, 18, 1, 0]) == "198.18.1.0")
    }
}
