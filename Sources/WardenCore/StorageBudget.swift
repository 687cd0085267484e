// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// How much of the disk the state directory may take: a budget of its own, and a share of its
/// file system that always stays free. Pure: the caller measures.
public struct StorageBudget: Hashable, Sendable {
    /// Bytes the state directory (evidence, quarantine, database) may hold; nil for no budget.
    public var stateBytes: Int64?
    /// The share of the file system left free, whatever the budget says (0.1: a tenth).
    public var keepFreeShare: Double
    /// Bytes the quarantine may hold.
    public var quarantineBytes: Int64?

    public init(stateBytes: Int64? = nil, keepFreeShare: Double = 0.1, quarantineBytes: Int64? = 4 << 30) {
        self.stateBytes = stateBytes
        self.keepFreeShare = min(0.9, max(0, keepFreeShare))
        self.quarantineBytes = quarantineBytes
    }

    /// What the file system holding the state directory says of itself.
    public struct FileSystem: Hashable, Sendable {
        public var sizeBytes: Int64
        public var availableBytes: Int64

        public init(sizeBytes: Int64, availableBytes: Int64) {
            self.sizeBytes = sizeBytes
            self.availableBytes = availableBytes
        }
    }

    /// Why `adding` more bytes to a state directory holding `used` would break the budget, or
    /// nil when it fits.
    public func refusal(adding: Int64, used: Int64, fileSystem: FileSystem?) -> String? {
        if let stateBytes, used.addingReportingOverflow(adding).partialValue > stateBytes || adding > stateBytes {
            return "budget: the state directory holds \(used) of its \(stateBytes) bytes"
        }
        if let fileSystem {
            let keep = Int64(Double(fileSystem.sizeBytes) * keepFreeShare)
            if fileSystem.availableBytes - adding < keep {
                return "budget: \(fileSystem.availableBytes) bytes free on the state directory's file system, "
                    + "and \(Int((keepFreeShare * 100).rounded())) % (\(keep) bytes) stay free"
            }
        }
        return nil
    }

    /// Why a sample of `adding` bytes does not fit in a quarantine holding `used`, or nil.
    public func quarantineRefusal(adding: Int64, used: Int64) -> String? {
        guard let quarantineBytes,
            used.addingReportingOverflow(adding).partialValue > quarantineBytes || adding > quarantineBytes
        else { return nil }
        return "the quarantine is full: it holds \(used) of its \(quarantineBytes) bytes, and this sample is \(adding)"
    }
}
