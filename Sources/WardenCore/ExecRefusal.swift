// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Why the kernel would not start a sample, said from the error and the sample's own first bytes.
///
/// A bare "No such file or directory" from an exec of a file that is plainly there sends an
/// analyst looking in the wrong place: the missing file is the script's interpreter, or the
/// ELF's dynamic loader (a musl or foreign-distribution build). Every clause here is read from
/// the sample's header or checked on the host; nothing is guessed.
public enum ExecRefusal {
    /// What the exec's errno means for a file that exists.
    public enum Cause: Sendable {
        /// ENOENT: a file the exec needs in turn (interpreter, loader) is missing.
        case missingFile
        /// ENOEXEC: the kernel knows no format for it.
        case unknownFormat
        /// Anything else (EACCES, E2BIG, ENOMEM, …).
        case other
    }

    /// The `e_machine` name of the machine this binary was built for (`ContentClassifier`'s names).
    public static var hostMachine: String {
        #if arch(x86_64)
            "x86_64"
        #elseif arch(arm64)
            "aarch64"
        #elseif arch(i386)
            "i386"
        #else
            "unknown"
        #endif
    }

    /// The host directories the jail shares (read-only) under the same names; the sandbox
    /// builds its root from this list.
    public static let sharedDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]

    /// One clause, after "The sample did not run: ".
    ///
    /// - Parameters:
    ///   - errorText: the errno's own text (`strerror`), quoted as the kernel's answer.
    ///   - head: the sample's first bytes (64 KiB holds an ELF's program headers and loader path).
    ///   - size: the sample's size in bytes.
    ///   - presentOnHost: whether a path exists on the host (only asked for paths the jail does not share).
    public static func explanation(
        cause: Cause, errorText: String, head: [UInt8], size: Int64, presentOnHost: (String) -> Bool
    ) -> String {
        let answer = "the kernel would not execute it (execveat: \(errorText))"
        if size == 0 { return answer + ": it is empty" }
        let content = ContentClassifier.classify(head)
        switch (cause, content.kind) {
        case (.missingFile, .script):
            guard let interpreter = content.script?.interpreter, !interpreter.isEmpty else { break }
            // The kernel ends the name at a blank or the newline only: a script saved with
            // Windows line endings asks for "/bin/sh\r".
            let line = head.prefix(while: { $0 != UInt8(ascii: "\n") })
            if line.last == UInt8(ascii: "\r"), !line.dropLast().contains(where: { $0 == 0x20 || $0 == 0x09 }) {
                return answer + ": its #! line ends in a carriage return (Windows line endings), so the kernel "
                    + "looked for an interpreter named \"\(interpreter)\\r\""
            }
            return answer + ": its #! line names the interpreter \(interpreter)"
                + whereabouts(interpreter, presentOnHost)
        case (.missingFile, .elf):
            guard let loader = content.elf?.interpreter else { break }
            return answer + ": its dynamic loader (PT_INTERP) is \(loader)" + whereabouts(loader, presentOnHost)
        case (.unknownFormat, .elf):
            guard let elf = content.elf else { break }
            if elf.machine != hostMachine {
                return answer + ": it is a \(elf.bits)-bit ELF for \(elf.machine), and this machine is \(hostMachine)"
            }
            if elf.type == "relocatable" || elf.type == "core" {
                let what = elf.type == "core" ? "a core dump" : "an object file"
                return answer + ": it is a \(elf.type) ELF file (\(what)), not a program"
            }
            return answer + ": it is an ELF for \(elf.machine) whose headers the kernel did not accept"
        case (.unknownFormat, .other):
            return answer + ": it is neither an ELF for this machine nor a #! script"
        default:
            break
        }
        return answer
    }

    /// Where the missing file would have to be: outside what the jail shares, or nowhere on this host.
    private static func whereabouts(_ path: String, _ presentOnHost: (String) -> Bool) -> String {
        let shared = sharedDirectories.contains { path == $0 || path.hasPrefix($0 + "/") }
        if shared {
            return presentOnHost(path)
                ? ", which the jail has as the host does: a file it needs in turn is missing"
                : ", which this host does not have either"
        }
        return presentOnHost(path)
            ? ", which the host has outside what the jail shares (\(sharedDirectories.joined(separator: ", ")))"
            : ", which this host does not have either"
    }
}
