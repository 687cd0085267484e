// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// A regular file held open so its bytes outlive its name.
public struct PinnedFile: Sendable {
    public var descriptor: FileDescriptor
    public var status: FileStatus
    /// When it was opened (monotonic nanoseconds): the start of its capture latency.
    public var openedAt: Int64 = sys_monotonicNanoseconds()
}

/// What trying to pin a path gave.
enum PinOutcome: Sendable {
    /// A regular file, now open.
    case regular(PinnedFile)
    /// Not a regular file: recorded from its `lstat`, never opened (opening a device can have
    /// side effects, and opening a FIFO for reading could block).
    case special(FileStatus)
    /// Gone before we got to it.
    case vanished
    case failed(SystemCallError)
}

/// Opens files the way evidence must be opened.
enum FilePinner {
    /// `lstat`, then for a regular file `open(O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC)` with every
    /// symlink on the way refused, then `fstat` of what we really hold.
    static func pin(_ path: PathBytes) -> PinOutcome {
        let status: FileStatus
        do {
            status = try sys_lstat(path.bytes)
        } catch {
            return error.errno == .noSuchFileOrDirectory || error.errno == .notDirectory ? .vanished : .failed(error)
        }
        guard status.isRegularFile else { return .special(status) }
        do {
            let fd = try sys_open(path.bytes, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            do {
                let held = try sys_fstat(fd)
                guard held.isRegularFile else {
                    sys_close(fd)
                    return .special(held)
                }
                return .regular(PinnedFile(descriptor: fd, status: held))
            } catch {
                sys_close(fd)
                return .failed(error)
            }
        } catch {
            switch error.errno {
            case .noSuchFileOrDirectory, .notDirectory:
                return .vanished
            case .tooManySymbolicLinkLevels, .noSuchAddressOrDevice:
                // Swapped for a symlink (or a socket) between the lstat and the open.
                if let again = try? sys_lstat(path.bytes) { return .special(again) }
                return .vanished
            default:
                return .failed(error)
            }
        }
    }
}

/// Pins held between create and close-write, bounded; the oldest is released first.
///
/// - Important: Confined to the sensor's reader thread.
final class PinTable {
    private var entries: [PathBytes: (file: PinnedFile, serial: Int)] = [:]
    private var order: [(PathBytes, Int)] = []
    private var orderHead = 0
    private var serial = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { entries.count }

    func contains(_ path: PathBytes) -> Bool { entries[path] != nil }

    /// Holds `file` for `path` (releasing any earlier pin for the same path); returns the pins
    /// released to make room, which the caller closes and counts.
    func insert(_ file: PinnedFile, for path: PathBytes) -> [PinnedFile] {
        var released: [PinnedFile] = []
        if let previous = entries.removeValue(forKey: path) { released.append(previous.file) }
        while entries.count >= capacity, orderHead < order.count {
            let (oldest, oldestSerial) = order[orderHead]
            orderHead += 1
            if let entry = entries[oldest], entry.serial == oldestSerial {
                entries.removeValue(forKey: oldest)
                released.append(entry.file)
            }
        }
        serial += 1
        entries[path] = (file, serial)
        order.append((path, serial))
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
        return released
    }

    /// Takes the pin for `path` out of the table (the caller now owns the descriptor).
    func take(_ path: PathBytes) -> PinnedFile? { entries.removeValue(forKey: path)?.file }

    /// Takes every pin (at shutdown).
    func takeAll() -> [(PathBytes, PinnedFile)] {
        let all = entries.map { ($0.key, $0.value.file) }
        entries.removeAll()
        order.removeAll()
        orderHead = 0
        return all
    }
}
