// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Glibc
import Testing
import WardenLinux

/// `sys_readProcessString` reads what a sandboxed call's arguments point at; here it reads this
/// process's own memory (`process_vm_readv` on ourselves needs no privilege).
@Suite struct ProcessMemoryTests {
    let pid = getpid()

    /// Two pages: the first readable, the second not, so a string can end exactly where the
    /// mapping does.
    func withGuardedPage<T>(_ body: (UnsafeMutableRawPointer, Int) throws -> T) throws -> T {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(base != MAP_FAILED)
        defer { munmap(base, 2 * page) }
        #expect(mprotect(base + page, page, PROT_NONE) == 0)
        return try body(base, page)
    }

    func place(_ text: [UInt8], at address: UnsafeMutableRawPointer) {
        text.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: text.count) }
        address.storeBytes(of: 0, toByteOffset: text.count, as: UInt8.self)
    }

    @Test func shortAndLongStringsAreReadWhole() throws {
        try withGuardedPage { base, page in
            let short = Array("/etc/ld.so.cache".utf8)
            place(short, at: base)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: base))) == short)
            // Longer than the first 256-byte read: the rest comes in later reads.
            let long = Array(repeating: UInt8(ascii: "a"), count: 3000)
            place(long, at: base)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: base))) == long)
            // The empty string is a string.
            place([], at: base)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: base))) == [])
        }
    }

    @Test func aStringEndingAtTheMappingsEndIsRead() throws {
        try withGuardedPage { base, page in
            // 99 bytes and the NUL as the last bytes of the readable page: a read of 256 from
            // there would cross into the unreadable page.
            let text = Array(repeating: UInt8(ascii: "b"), count: 99)
            let start = base + page - 100
            place(text, at: start)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: start))) == text)
            // No NUL before the mapping ends: what could be read.
            let unterminated = Array(repeating: UInt8(ascii: "c"), count: 100)
            unterminated.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: 100) }
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: start))) == unterminated)
        }
    }

    @Test func limitsAndUnreadableAddresses() throws {
        try withGuardedPage { base, page in
            place(Array(repeating: UInt8(ascii: "d"), count: 1000), at: base)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: base)), limit: 300)?.count == 300)
            #expect(sys_readProcessString(pid, address: UInt64(UInt(bitPattern: base + page))) == nil, "PROT_NONE")
            #expect(sys_readProcessString(pid, address: 0) == nil)
        }
    }

    /// An argv as execve takes it: pointers to strings, then NULL. Read whole, cut at `count`
    /// (not complete), and cut where the pointer table's mapping ends (not complete either).
    @Test func argumentVectorsAreReadUpToTheirNullOrTheLimit() throws {
        try withGuardedPage { base, page in
            let words = (0..<70).map { Array("arg\($0)".utf8) }
            // Strings from offset 2048 on, pointers at the page's start.
            var offset = 2048
            var pointers: [UInt64] = []
            for word in words {
                place(word, at: base + offset)
                pointers.append(UInt64(UInt(bitPattern: base + offset)))
                offset += word.count + 1
            }
            func table(_ values: [UInt64], at start: UnsafeMutableRawPointer) {
                for (index, value) in values.enumerated() {
                    start.storeBytes(of: value, toByteOffset: index * 8, as: UInt64.self)
                }
            }
            let address = UInt64(UInt(bitPattern: base))
            table(Array(pointers.prefix(3)) + [0], at: base)
            let three = try #require(sys_readProcessStringArray(pid, address: address))
            #expect(three.strings == Array(words.prefix(3)) && three.complete)
            table(pointers + [0], at: base)
            let many = try #require(sys_readProcessStringArray(pid, address: address))
            #expect(many.strings == Array(words.prefix(64)) && !many.complete)
            #expect(sys_readProcessStringArray(pid, address: address, count: 70)?.complete == true)
            // Two pointers as the last 16 bytes of the readable page, no NULL before it ends.
            table(Array(pointers.prefix(2)), at: base + page - 16)
            let cut = try #require(sys_readProcessStringArray(pid, address: address + UInt64(page) - 16))
            #expect(cut.strings == Array(words.prefix(2)) && !cut.complete)
            #expect(sys_readProcessStringArray(pid, address: address + UInt64(page)) == nil, "PROT_NONE")
        }
    }
}
