// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

/// What the report says when the kernel will not start a sample: each clause from its bytes.
struct ExecRefusalTests {
    let noENT = "No such file or directory"
    let noExec = "Exec format error"

    func explain(
        _ cause: ExecRefusal.Cause, _ error: String, _ bytes: [UInt8], onHost: Set<String> = []
    ) -> String {
        ExecRefusal.explanation(
            cause: cause, errorText: error, head: bytes, size: Int64(bytes.count),
            presentOnHost: { onHost.contains($0) })
    }

    @Test func aScriptsMissingInterpreterIsNamedWithWhereItIs() {
        let script = Array("#!/opt/tools/python3 -u\nprint(1)\n".utf8)
        let prefix =
            "the kernel would not execute it (execveat: \(noENT)): its #! line names the interpreter /opt/tools/python3"
        #expect(explain(.missingFile, noENT, script) == prefix + ", which this host does not have either")
        #expect(
            explain(.missingFile, noENT, script, onHost: ["/opt/tools/python3"])
                == prefix + ", which the host has outside what the jail shares (/usr, /bin, /sbin, /lib, /lib64, "
                + "/lib32, /libx32)")
        // Under a shared directory the jail has what the host has: the missing file is another
        // (an interpreter that is itself a script whose interpreter is missing, say).
        let wrapper = "/usr/local/bin/wrapper"
        #expect(
            explain(.missingFile, noENT, Array("#!\(wrapper)\n".utf8), onHost: [wrapper])
                .hasSuffix("\(wrapper), which the jail has as the host does: a file it needs in turn is missing"))
        // Windows line endings: the kernel looks for "/bin/sh\r", which nobody has.
        #expect(
            explain(.missingFile, noENT, Array("#!/bin/sh\r\necho hi\r\n".utf8), onHost: ["/bin/sh"])
                .hasSuffix(
                    ": its #! line ends in a carriage return (Windows line endings), so the kernel looked for an "
                        + "interpreter named \"/bin/sh\\r\""))
    }

    @Test func anELFsMissingLoaderIsNamed() {
        let elf = ELFBuilder(type: 3, machine: 62, interpreter: "/lib/ld-musl-x86_64.so.1").build()
        #expect(
            explain(.missingFile, noENT, elf)
                == "the kernel would not execute it (execveat: \(noENT)): its dynamic loader (PT_INTERP) is "
                + "/lib/ld-musl-x86_64.so.1, which this host does not have either")
        // No loader to name (a static ELF): the kernel's answer alone.
        let staticELF = ELFBuilder(type: 2, machine: 62).build()
        #expect(explain(.missingFile, noENT, staticELF) == "the kernel would not execute it (execveat: \(noENT))")
    }

    @Test func formatsTheKernelDoesNotRunAreSaidForWhatTheyAre() throws {
        let arm = ELFBuilder(type: 3, machine: 183).build()
        let armText = explain(.unknownFormat, noExec, arm)
        if ExecRefusal.hostMachine != "aarch64" {
            #expect(
                armText.hasSuffix(": it is a 64-bit ELF for aarch64, and this machine is \(ExecRefusal.hostMachine)"))
        }
        let object = ELFBuilder(type: 1, machine: try #require(machineNumber(ExecRefusal.hostMachine))).build()
        #expect(
            explain(.unknownFormat, noExec, object).hasSuffix(
                ": it is a relocatable ELF file (an object file), not a program"))
        #expect(
            explain(.unknownFormat, noExec, Array("plain text\n".utf8))
                .hasSuffix(": it is neither an ELF for this machine nor a #! script"))
        #expect(
            explain(.unknownFormat, noExec, []) == "the kernel would not execute it (execveat: \(noExec)): it is empty")
        // An errno with no more to say is quoted as it is.
        #expect(
            explain(.other, "Permission denied", Array("#!/bin/sh\n".utf8))
                == "the kernel would not execute it (execveat: Permission denied)")
    }

    private func machineNumber(_ name: String) -> UInt16? {
        ["x86_64": 62, "aarch64": 183, "i386": 3][name]
    }
}
