// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

/// Builds ELF images byte by byte, so each test states exactly which header fields it sets.
struct ELFBuilder {
    var is64 = true
    var bigEndian = false
    var type: UInt16 = 3
    var machine: UInt16 = 62
    var interpreter: String?
    var withSymtab = false

    func put(_ value: UInt64, width: Int, at offset: Int, in bytes: inout [UInt8]) {
        if bytes.count < offset + width { bytes += [UInt8](repeating: 0, count: offset + width - bytes.count) }
        for index in 0..<width {
            let shift = UInt64(8 * (bigEndian ? width - 1 - index : index))
            bytes[offset + index] = UInt8(truncatingIfNeeded: value >> shift)
        }
    }

    func build() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: is64 ? 64 : 52)
        bytes[0] = 0x7f
        bytes[1] = 0x45
        bytes[2] = 0x4c
        bytes[3] = 0x46
        bytes[4] = is64 ? 2 : 1
        bytes[5] = bigEndian ? 2 : 1
        bytes[6] = 1
        put(UInt64(type), width: 2, at: 16, in: &bytes)
        put(UInt64(machine), width: 2, at: 18, in: &bytes)
        let phentsize = is64 ? 56 : 32
        let phoff = is64 ? 64 : 52
        let interpBytes = interpreter.map { Array($0.utf8) + [0] }
        let phnum = interpBytes == nil ? 1 : 2
        let interpOffset = phoff + phnum * phentsize
        let shoff = interpOffset + (interpBytes?.count ?? 0)
        let shentsize = is64 ? 64 : 40
        put(UInt64(phoff), width: is64 ? 8 : 4, at: is64 ? 32 : 28, in: &bytes)
        put(UInt64(phentsize), width: 2, at: is64 ? 54 : 42, in: &bytes)
        put(UInt64(phnum), width: 2, at: is64 ? 56 : 44, in: &bytes)
        // Program header 0: PT_LOAD (1). Program header 1: PT_INTERP (3).
        put(1, width: 4, at: phoff, in: &bytes)
        if let interpBytes {
            let base = phoff + phentsize
            put(3, width: 4, at: base, in: &bytes)
            put(UInt64(interpOffset), width: is64 ? 8 : 4, at: base + (is64 ? 8 : 4), in: &bytes)
            put(UInt64(interpBytes.count), width: is64 ? 8 : 4, at: base + (is64 ? 32 : 16), in: &bytes)
            put(0, width: 1, at: interpOffset + interpBytes.count - 1, in: &bytes)
            bytes.replaceSubrange(interpOffset..<(interpOffset + interpBytes.count), with: interpBytes)
        } else {
            put(0, width: 1, at: phoff + phentsize - 1, in: &bytes)
        }
        // Two section headers: NULL, then PROGBITS (1) or SYMTAB (2).
        put(UInt64(shoff), width: is64 ? 8 : 4, at: is64 ? 40 : 32, in: &bytes)
        put(UInt64(shentsize), width: 2, at: is64 ? 58 : 46, in: &bytes)
        put(2, width: 2, at: is64 ? 60 : 48, in: &bytes)
        put(withSymtab ? 2 : 1, width: 4, at: shoff + shentsize + 4, in: &bytes)
        put(0, width: 1, at: shoff + 2 * shentsize - 1, in: &bytes)
        return bytes
    }
}

@Suite struct ContentClassifierTests {
    @Test func dynamicPIEWithInterpreterAndSymbols() {
        let image = ELFBuilder(interpreter: "/lib64/ld-linux-x86-64.so.2", withSymtab: true).build()
        let result = ContentClassifier.classify(image)
        #expect(result.kind == .elf)
        #expect(
            result.elf
                == ELFFacts(
                    bits: 64, endianness: "little", machine: "x86_64", type: "shared",
                    interpreter: "/lib64/ld-linux-x86-64.so.2", isStatic: false, isStripped: false))
    }

    @Test func staticStrippedExecutable() {
        let image = ELFBuilder(type: 2, machine: 183).build()
        let facts = ContentClassifier.classify(image).elf
        #expect(facts?.machine == "aarch64")
        #expect(facts?.type == "executable")
        #expect(facts?.isStatic == true)
        #expect(facts?.interpreter == nil)
        #expect(facts?.isStripped == true)
    }

    @Test func thirtyTwoBitBigEndian() {
        let image = ELFBuilder(is64: false, bigEndian: true, type: 2, machine: 8, interpreter: "/lib/ld.so.1").build()
        let facts = ContentClassifier.classify(image).elf
        #expect(facts?.bits == 32)
        #expect(facts?.endianness == "big")
        #expect(facts?.machine == "mips")
        #expect(facts?.interpreter == "/lib/ld.so.1")
    }

    @Test func truncatedELFIsStillELF() {
        let image = Array(ELFBuilder(interpreter: "/lib/ld.so").build().prefix(20))
        let result = ContentClassifier.classify(image)
        #expect(result.kind == .elf)
        #expect(result.elf?.machine == "x86_64")
        #expect(result.elf?.interpreter == nil)
    }

    @Test func hostileProgramHeaderCountDoesNotReadForever() {
        var image = ELFBuilder().build()
        image[56] = 0xff
        image[57] = 0xff  // e_phnum = 65535, beyond the bound
        image[32] = 0xff  // e_phoff far past the end
        let result = ContentClassifier.classify(image)
        #expect(result.kind == .elf)
        #expect(result.elf?.isStatic == true)
    }

    @Test(
        arguments: [
            ("#!/bin/sh\necho hi\n", "/bin/sh", nil),
            ("#! /usr/bin/env python3 \nprint()\n", "/usr/bin/env", "python3"),
            ("#!/bin/bash -e\r\n", "/bin/bash", "-e"),
            ("#!\t/usr/bin/perl -w -T\n", "/usr/bin/perl", "-w -T"),
            ("#!", "", nil),
        ] as [(String, String, String?)])
    func shebang(text: String, interpreter: String, argument: String?) {
        let result = ContentClassifier.classify(Array(text.utf8))
        #expect(result.kind == .script)
        #expect(result.script == ScriptFacts(interpreter: interpreter, argument: argument))
    }

    @Test func otherContent() {
        #expect(ContentClassifier.classify(Array("hello".utf8)).kind == .other)
        #expect(ContentClassifier.classify([UInt8]()).kind == .other)
        #expect(ContentClassifier.classify([0x7f, 0x45, 0x4c]).kind == .other)
        #expect(ContentClassifier.classify(Array("# !/bin/sh".utf8)).kind == .other)
    }

    @Test func reasonsCombineModeAndContent() {
        #expect(ExecutableReasons.of(mode: 0o100644, kind: .other).isEmpty)
        #expect(ExecutableReasons.of(mode: 0o100744, kind: .other) == .execBit)
        #expect(ExecutableReasons.of(mode: 0o100010, kind: .other) == .execBit)
        #expect(ExecutableReasons.of(mode: 0o100755, kind: .elf) == [.execBit, .elf])
        #expect(ExecutableReasons.of(mode: 0o100600, kind: .script) == .shebang)
        #expect(ExecutableReasons(names: ExecutableReasons([.elf, .shebang]).names) == [.elf, .shebang])
    }

    @Test func fileTypeFromMode() {
        #expect(FileType(mode: 0o100755) == .regular)
        #expect(FileType(mode: 0o010644) == .fifo)
        #expect(FileType(mode: 0o120777) == .symlink)
        #expect(FileType(mode: 0o140755) == .socket)
        #expect(FileType(mode: 0o020600) == .characterDevice)
        #expect(FileType(mode: 0o060600) == .blockDevice)
        #expect(FileType(mode: 0o040700) == .directory)
    }
}
