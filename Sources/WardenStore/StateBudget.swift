// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Synchronization
import WardenCore
import WardenLinux

/// The state directory's disk, checked as it fills: every evidence copy and quarantine move
/// asks first, and what is refused is recorded with the reason (`StorageBudget`).
///
/// What the directory holds is measured by walking it (at start, and again once a minute at
/// most, when asked), and counted up in between as copies are made; the file system's free
/// space is asked of the kernel at every check.
public final class StateBudget: Sendable {
    public let directory: String
    public let budget: StorageBudget
    private let state = Mutex<(used: Int64, measuredAt: Int64?, overBudget: Bool, refused: Int)>((0, nil, false, 0))
    static let remeasureNanoseconds: Int64 = 60_000_000_000

    public init(directory: String, budget: StorageBudget) {
        self.directory = directory
        self.budget = budget
    }

    /// Bytes the state directory holds, as last measured plus what was added since.
    public var usedBytes: Int64 { measuredUsage() }

    /// Whether the last check refused something and nothing has fit since.
    public var isOverBudget: Bool { state.withLock { $0.overBudget } }

    /// How many copies were refused.
    public var refusals: Int { state.withLock { $0.refused } }

    /// Why `bytes` more cannot be kept, or nil (then they are counted as added).
    public func admit(_ bytes: Int64) -> String? {
        let used = measuredUsage()
        let fileSystem = sys_fileSystemSpace(Array(directory.utf8)).map {
            StorageBudget.FileSystem(sizeBytes: $0.size, availableBytes: $0.available)
        }
        let refusal = budget.refusal(adding: bytes, used: used, fileSystem: fileSystem)
        state.withLock { state in
            state.overBudget = refusal != nil
            if refusal == nil { state.used &+= bytes } else { state.refused += 1 }
        }
        return refusal
    }

    /// Why a sample of `bytes` does not fit in the quarantine at `quarantineDirectory`, or the
    /// state directory's own refusal; nil when it fits.
    public func admitQuarantine(_ bytes: Int64, quarantineDirectory: String) -> String? {
        let held = Self.bytes(under: Array(quarantineDirectory.utf8))
        if let refusal = budget.quarantineRefusal(adding: bytes, used: held) { return refusal }
        return admit(bytes)
    }

    /// Measures again now (after a prune, for one).
    public func remeasure() {
        let used = Self.bytes(under: Array(directory.utf8))
        state.withLock { $0 = (used, sys_monotonicNanoseconds(), $0.overBudget, $0.refused) }
    }

    private func measuredUsage() -> Int64 {
        let now = sys_monotonicNanoseconds()
        let stale = state.withLock { state in state.measuredAt.map { now - $0 > Self.remeasureNanoseconds } ?? true }
        if stale { remeasure() }
        return state.withLock { $0.used }
    }

    /// The bytes of every regular file under `path` (links not followed).
    static func bytes(under path: [UInt8]) -> Int64 {
        var total: Int64 = 0
        var pending = [path]
        var visited = 0
        while let directory = pending.popLast(), visited < 2_000_000 {
            visited += 1
            guard let fd = try? sys_open(directory, flags: O_RDONLY | O_DIRECTORY) else { continue }
            defer { sys_close(fd) }
            let entries = (try? sys_readDirectory(fd)) ?? []
            for (name, _) in entries {
                let child = directory + [UInt8(ascii: "/")] + name
                guard let status = try? sys_lstat(child) else { continue }
                if status.isDirectory {
                    pending.append(child)
                } else if status.isRegularFile {
                    total &+= status.size
                }
            }
        }
        return total
    }
}
