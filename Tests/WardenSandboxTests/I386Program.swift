// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A static 32-bit x86 (i386) ELF program, assembled here: a list of system calls made through
/// `int 0x80`, each with up to three arguments that are numbers or addresses of strings and
/// pointer arrays it carries. What the sandbox must run and observe as it does x86_64 programs
/// (no compiler for i386 is needed: each call is `mov eax/ebx/ecx/edx, imm32` and `int 0x80`).
struct I386Program {
    enum Argument {
        case number(UInt32)
        /// A NUL-terminated string placed in the program.
        case string(String)
        /// A NULL-terminated array of 4-byte pointers to strings (an argv).
        case strings([String])
        /// Words placed in the program (socketcall's argument block).
        case words([UInt32])
        /// socketcall's block for connect or bind: `fd`, then the address of `address` (placed
        /// in the program) and its length.
        case addressBlock(fd: UInt32, address: [UInt8])
        /// A buffer of `size` zero bytes named `name`, placed once: the same address wherever
        /// the name is used (what a call writes, another reads).
        case buffer(String, size: Int)
        /// socketcall's block for getsockname, getpeername or getsockopt's last two: `fd`,
        /// then the address of buffer `name` and of a word holding its size.
        case queryBlock(fd: UInt32, buffer: String, size: Int)
        /// socketcall's block for setsockopt: `fd`, `level`, `option`, the address of the word
        /// `value`, and its length (4).
        case optionBlock(fd: UInt32, level: UInt32, option: UInt32, value: UInt32)
        /// socketcall's block for getsockopt: `fd`, `level`, `option`, then the address of
        /// buffer `name` and of a word holding its size.
        case optionQueryBlock(fd: UInt32, level: UInt32, option: UInt32, buffer: String, size: Int)
    }

    private var calls: [(UInt32, [Argument])] = []

    /// Appends the system call `number` (i386's numbering) with `arguments` (ebx, ecx, edx).
    mutating func call(_ number: UInt32, _ arguments: Argument...) { calls.append((number, arguments)) }

    /// The ELF file: one loadable segment at 0x08048000 holding the code, then the data.
    var bytes: [UInt8] {
        let base: UInt32 = 0x0804_8000
        let codeOffset: UInt32 = 52 + 32  // ELF header, one program header
        let callSize: UInt32 = 4 * 5 + 2  // four `mov r32, imm32`, then `int 0x80`
        var data: [UInt8] = []
        let dataAddress = base + codeOffset + callSize * UInt32(calls.count)
        func place(_ bytes: [UInt8]) -> UInt32 {
            while data.count % 4 != 0 { data.append(0) }
            defer { data += bytes }
            return dataAddress + UInt32(data.count)
        }
        var buffers: [String: UInt32] = [:]
        func buffer(_ name: String, size: Int) -> UInt32 {
            if let placed = buffers[name] { return placed }
            let placed = place([UInt8](repeating: 0, count: size))
            buffers[name] = placed
            return placed
        }
        func value(_ argument: Argument) -> UInt32 {
            switch argument {
            case .number(let number): return number
            case .string(let text): return place(Array(text.utf8) + [0])
            case .strings(let texts):
                let pointers = texts.map { place(Array($0.utf8) + [0]) } + [0]
                return place(pointers.flatMap(Self.word))
            case .words(let words): return place(words.flatMap(Self.word))
            case .addressBlock(let fd, let address):
                let placed = place(address)
                return place([fd, placed, UInt32(address.count)].flatMap(Self.word))
            case .buffer(let name, let size): return buffer(name, size: size)
            case .queryBlock(let fd, let name, let size):
                let (placed, room) = (buffer(name, size: size), place(Self.word(UInt32(size))))
                return place([fd, placed, room].flatMap(Self.word))
            case .optionBlock(let fd, let level, let option, let value):
                let placed = place(Self.word(value))
                return place([fd, level, option, placed, 4].flatMap(Self.word))
            case .optionQueryBlock(let fd, let level, let option, let name, let size):
                let (placed, room) = (buffer(name, size: size), place(Self.word(UInt32(size))))
                return place([fd, level, option, placed, room].flatMap(Self.word))
            }
        }
        var code: [UInt8] = []
        for (number, arguments) in calls {
            let registers = [number] + (0..<3).map { $0 < arguments.count ? value(arguments[$0]) : 0 }
            // mov eax, ebx, ecx, edx (opcodes 0xb8, 0xbb, 0xb9, 0xba), then int 0x80.
            for (opcode, value) in zip([0xb8, 0xbb, 0xb9, 0xba] as [UInt8], registers) {
                code += [opcode] + Self.word(value)
            }
            code += [0xcd, 0x80]
        }
        let body = code + data
        let fileSize = codeOffset + UInt32(body.count)
        var header: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        // ET_EXEC, EM_386, version 1, entry, program headers at 52, no sections, flags 0,
        // header size 52, one program header of 32 bytes.
        header += Self.half(2) + Self.half(3) + Self.word(1) + Self.word(base + codeOffset) + Self.word(52)
        header += Self.word(0) + Self.word(0) + Self.half(52) + Self.half(32) + Self.half(1)
        header += Self.half(0) + Self.half(0) + Self.half(0)
        // PT_LOAD of the whole file, read-write-execute.
        let program =
            Self.word(1) + Self.word(0) + Self.word(base) + Self.word(base) + Self.word(fileSize)
            + Self.word(fileSize) + Self.word(7) + Self.word(0x1000)
        return header + program + body
    }

    private static func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    private static func half(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
}
