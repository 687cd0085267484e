// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import SystemPackage
import WardenCore
import WardenLinux

/// `ByteSource` over a descriptor, by `pread`: what the content classifier reads through.
struct DescriptorByteSource: ByteSource {
    let fd: FileDescriptor

    func bytes(at offset: UInt64, count: Int) -> [UInt8]? {
        guard count > 0, offset <= UInt64(Int64.max) else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = out.withUnsafeMutableBytes { raw -> Int? in
                try? sys_pread(
                    fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...]), at: Int64(offset) + Int64(filled)
                )
            }
            guard let got else { return nil }
            if got == 0 { break }
            filled += got
        }
        out.removeLast(count - filled)
        return out
    }
}
