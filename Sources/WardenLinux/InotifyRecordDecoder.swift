// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// One `struct inotify_event` as read from the descriptor, with its name as exact bytes.
public struct InotifyRecord: Hashable, Sendable {
    /// The watch descriptor; -1 for queue-wide events such as `IN_Q_OVERFLOW`.
    public var watch: Int32
    public var mask: InotifyMask
    /// Pairs an `IN_MOVED_FROM` with its `IN_MOVED_TO`.
    public var cookie: UInt32
    /// The entry's name inside the watched directory, without NUL padding; empty for events on
    /// the watched object itself.
    public var name: [UInt8]

    public init(watch: Int32, mask: InotifyMask, cookie: UInt32, name: [UInt8]) {
        self.watch = watch
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }
}

/// Decodes the bytes of an inotify `read(2)` into records.
///
/// Swift imports `struct inotify_event` without its flexible `name[]` member, so the layout is
/// read by hand: a 16-byte header (`wd`, `mask`, `cookie`, `len`, native byte order) followed by
/// `len` bytes of NUL-padded name. Pure: tests feed it hand-built buffers.
public enum InotifyRecordDecoder {
    public static let headerSize = 16

    /// Decodes every complete record in `bytes`. A truncated trailing record (which the kernel
    /// never produces) ends decoding rather than reading past the buffer.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> [InotifyRecord] {
        var records: [InotifyRecord] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard length <= bytes.count - nameStart else { break }
            let name = Array(bytes[nameStart..<(nameStart + length)].prefix(while: { $0 != 0 }))
            records.append(InotifyRecord(watch: watch, mask: InotifyMask(rawValue: mask), cookie: cookie, name: name))
            offset = nameStart + length
        }
        return records
    }

    /// Encodes records the way the kernel lays them out (names NUL-padded to 4 bytes); for tests
    /// and fixtures.
    public static func encode(_ records: [InotifyRecord]) -> [UInt8] {
        var out: [UInt8] = []
        for record in records {
            let padded = record.name.isEmpty ? 0 : (record.name.count + 1 + 3) / 4 * 4
            withUnsafeBytes(of: record.watch) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: record.mask.rawValue) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: record.cookie) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(padded)) { out.append(contentsOf: $0) }
            out.append(contentsOf: record.name)
            out.append(contentsOf: [UInt8](repeating: 0, count: padded - record.name.count))
        }
        return out
    }
}
