// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Random access to a file's bytes, as the classifier needs them.
///
/// The sensor backs it with `pread` on the pinned descriptor; tests back it with an array.
public protocol ByteSource {
    /// Up to `count` bytes starting at `offset`; fewer at the end of the file, nil on error.
    func bytes(at offset: UInt64, count: Int) -> [UInt8]?
}

extension Array: ByteSource where Element == UInt8 {
    public func bytes(at offset: UInt64, count: Int) -> [UInt8]? {
        guard offset < UInt64(self.count) else { return [] }
        let start = Int(offset)
        return Array(self[start..<Swift.min(self.count, start + count)])
    }
}

/// The facts an ELF header and its program and section headers give.
public struct ELFFacts: Hashable, Sendable, Codable {
    /// 32 or 64.
    public var bits: Int
    /// `little` or `big`.
    public var endianness: String
    /// The `e_machine` name (`x86_64`, `aarch64`, …) or `machine-N` for ones we do not name.
    public var machine: String
    /// `executable`, `shared` (ET_DYN: a PIE or a library), `relocatable`, `core` or `type-N`.
    public var type: String
    /// The PT_INTERP path (the dynamic loader), when there is one.
    public var interpreter: String?
    /// `true` when there is no PT_INTERP: the kernel maps it without a loader.
    public var isStatic: Bool
    /// `true` when there is no symbol table section (SHT_SYMTAB).
    public var isStripped: Bool

    public init(
        bits: Int, endianness: String, machine: String, type: String, interpreter: String?, isStatic: Bool,
        isStripped: Bool
    ) {
        self.bits = bits
        self.endianness = endianness
        self.machine = machine
        self.type = type
        self.interpreter = interpreter
        self.isStatic = isStatic
        self.isStripped = isStripped
    }
}

/// The facts a `#!` line gives.
public struct ScriptFacts: Hashable, Sendable, Codable {
    /// The interpreter path, as written after `#!`.
    public var interpreter: String
    /// The optional single argument the kernel passes after the interpreter.
    public var argument: String?

    public init(interpreter: String, argument: String?) {
        self.interpreter = interpreter
        self.argument = argument
    }
}

/// What the content of a regular file is, decided from its bytes alone (never from its name).
public struct ContentClassification: Hashable, Sendable {
    public var kind: FileKind
    public var elf: ELFFacts?
    public var script: ScriptFacts?

    public init(kind: FileKind, elf: ELFFacts? = nil, script: ScriptFacts? = nil) {
        self.kind = kind
        self.elf = elf
        self.script = script
    }

    public static let other = ContentClassification(kind: .other)
}

/// Classifies file content as ELF, `#!` script or other.
///
/// Pure: it reads through a `ByteSource` and never trusts a length field further than the bytes
/// it got. A truncated or hostile ELF still classifies as ELF (the magic is what the kernel
/// checks first) with the facts that could be read.
public enum ContentClassifier {
    /// The kernel reads at most this many bytes of a `#!` line (BINPRM_BUF_SIZE).
    static let shebangLimit = 256
    /// Upper bounds that keep a hostile header from making us read without end.
    static let maxProgramHeaders = 4096
    static let maxSectionHeaders = 65_536
    static let maxInterpreterLength = 4096

    public static func classify(_ source: some ByteSource) -> ContentClassification {
        guard let head = source.bytes(at: 0, count: 64), head.count >= 2 else { return .other }
        if head.count >= 4, head[0] == 0x7f, head[1] == 0x45, head[2] == 0x4c, head[3] == 0x46 {
            return ContentClassification(kind: .elf, elf: elfFacts(head: head, source: source))
        }
        if head[0] == UInt8(ascii: "#"), head[1] == UInt8(ascii: "!") {
            let line = source.bytes(at: 0, count: shebangLimit) ?? head
            return ContentClassification(kind: .script, script: shebang(line))
        }
        return .other
    }

    /// Parses the `#!` line: the interpreter up to the first blank, then one optional argument.
    static func shebang(_ bytes: [UInt8]) -> ScriptFacts {
        var line = bytes.dropFirst(2)
        if let newline = line.firstIndex(of: UInt8(ascii: "\n")) { line = line[..<newline] }
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == 0 }
        let trimmed = line.drop(while: isBlank)
        let interpreterBytes = trimmed.prefix(while: { !isBlank($0) && $0 != UInt8(ascii: "\r") })
        var rest = trimmed.dropFirst(interpreterBytes.count).drop(while: isBlank)
        while let last = rest.last, isBlank(last) || last == UInt8(ascii: "\r") { rest = rest.dropLast() }
        return ScriptFacts(
            interpreter: String(decoding: interpreterBytes, as: UTF8.self),
            argument: rest.isEmpty ? nil : String(decoding: rest, as: UTF8.self)
        )
    }

    static func elfFacts(head: [UInt8], source: some ByteSource) -> ELFFacts {
        let is64 = head.count > 4 && head[4] == 2
        let bigEndian = head.count > 5 && head[5] == 2
        let reader = FieldReader(bigEndian: bigEndian)
        let typeValue = reader.u16(head, 16)
        let machineValue = reader.u16(head, 18)
        var facts = ELFFacts(
            bits: is64 ? 64 : 32,
            endianness: bigEndian ? "big" : "little",
            machine: machineValue.map(machineName) ?? "unknown",
            type: typeValue.map(typeName) ?? "unknown",
            interpreter: nil,
            isStatic: true,
            isStripped: true
        )
        let phoff = is64 ? reader.u64(head, 32) : reader.u32(head, 28).map(UInt64.init)
        let shoff = is64 ? reader.u64(head, 40) : reader.u32(head, 32).map(UInt64.init)
        let phentsize = reader.u16(head, is64 ? 54 : 42).map(Int.init) ?? 0
        let phnum = reader.u16(head, is64 ? 56 : 44).map(Int.init) ?? 0
        let shentsize = reader.u16(head, is64 ? 58 : 46).map(Int.init) ?? 0
        let shnum = reader.u16(head, is64 ? 60 : 48).map(Int.init) ?? 0

        if let phoff, phentsize >= (is64 ? 56 : 32), phnum > 0, phnum <= maxProgramHeaders,
            let table = source.bytes(at: phoff, count: phentsize * phnum)
        {
            for index in 0..<phnum {
                let base = index * phentsize
                guard base + phentsize <= table.count, reader.u32(table, base) == 3 else { continue }  // PT_INTERP
                let offset = is64 ? reader.u64(table, base + 8) : reader.u32(table, base + 4).map(UInt64.init)
                let size = is64 ? reader.u64(table, base + 32) : reader.u32(table, base + 16).map(UInt64.init)
                facts.isStatic = false
                if let offset, let size, size > 0, size <= UInt64(maxInterpreterLength),
                    let path = source.bytes(at: offset, count: Int(size))
                {
                    let text = path.prefix(while: { $0 != 0 })
                    facts.interpreter = String(decoding: text, as: UTF8.self)
                }
                break
            }
        }
        if let shoff, shoff > 0, shentsize >= (is64 ? 64 : 40), shnum > 0, shnum <= maxSectionHeaders,
            let table = source.bytes(at: shoff, count: shentsize * shnum)
        {
            for index in 0..<shnum {
                let base = index * shentsize
                guard base + 8 <= table.count else { break }
                if reader.u32(table, base + 4) == 2 {  // SHT_SYMTAB
                    facts.isStripped = false
                    break
                }
            }
        }
        return facts
    }

    static func machineName(_ value: UInt16) -> String {
        switch value {
        case 2: "sparc"
        case 3: "i386"
        case 8: "mips"
        case 20: "ppc"
        case 21: "ppc64"
        case 22: "s390"
        case 40: "arm"
        case 43: "sparcv9"
        case 62: "x86_64"
        case 183: "aarch64"
        case 243: "riscv"
        case 247: "bpf"
        case 258: "loongarch"
        default: "machine-\(value)"
        }
    }

    static func typeName(_ value: UInt16) -> String {
        switch value {
        case 1: "relocatable"
        case 2: "executable"
        case 3: "shared"
        case 4: "core"
        default: "type-\(value)"
        }
    }
}

/// Reads fixed-width integers of either byte order from a byte array, bounds-checked.
private struct FieldReader {
    var bigEndian: Bool

    func value(_ bytes: [UInt8], _ offset: Int, width: Int) -> UInt64? {
        guard offset >= 0, offset + width <= bytes.count else { return nil }
        var result: UInt64 = 0
        for index in 0..<width {
            let byte = UInt64(bytes[offset + (bigEndian ? index : width - 1 - index)])
            result = (result << 8) | byte
        }
        return result
    }

    func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16? { value(bytes, offset, width: 2).map { UInt16($0) } }
    func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32? { value(bytes, offset, width: 4).map { UInt32($0) } }
    func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64? { value(bytes, offset, width: 8) }
}
