// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore

/// The sidecar of one quarantined sample (`quarantine/<id>.json`): everything needed to explain
/// and restore it.
public struct QuarantineEntry: Codable, Hashable, Sendable {
    public enum State: String, Codable, Sendable {
        /// The sample is in the quarantine and the original name is gone.
        case quarantined
        /// A verified copy is kept, but the original was replaced before it could be removed,
        /// so it was left alone.
        case copyOnly = "copy-only"
        /// Put back; the quarantined copy was removed.
        case restored
    }

    public var id: String
    public var state: State
    /// Display form of the original path; `originalPathBase64` has the exact bytes.
    public var originalPath: String
    public var originalPathBase64: String
    public var sha256: String
    public var size: Int64
    /// Permission bits (`st_mode & 07777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var device: UInt64
    public var inode: UInt64
    public var linkCount: UInt64
    public var modified: String
    public var changed: String
    public var accessed: String
    public var quarantinedAt: String
    /// Absolute path of the quarantined copy (mode 0000).
    public var samplePath: String
    public var alertIds: [String]
    public var fileId: Int64?
    public var restoredAt: String?
    public var restoredTo: String?
    public var restoredToBase64: String?
    /// What happened that the state alone does not say.
    public var note: String?

    public var originalPathBytes: PathBytes {
        PathBytes(Data(base64Encoded: originalPathBase64).map(Array.init) ?? Array(originalPath.utf8))
    }
}

/// A quarantine that did not happen, and why. The sample is where it was unless `detail` says otherwise.
public struct QuarantineError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case notFound, notRegularFile, isSymlink, changedWhileCopying, copyMismatch, replaced, io, alreadyRestored
        case unknownID, exists, corruptSample
        /// The file is, or grew while it was copied, larger than the quarantine takes; or it
        /// could not be copied in time. Left in place.
        case tooLarge
        /// The quarantine (or the state directory) is over its budget. Left in place; nothing
        /// already quarantined is removed to make room.
        case full
    }

    public var kind: Kind
    public var detail: String
    /// The errno behind it, when a system call failed.
    public var errno: Int32?

    public init(_ kind: Kind, _ detail: String, errno: Int32? = nil) {
        self.kind = kind
        self.detail = detail
        self.errno = errno
    }

    public var description: String { detail }
}

/// Where a quarantine move stands; tests stop at each step to check that a crash there loses nothing.
public enum QuarantineStep: String, CaseIterable, Sendable {
    case journaled, copied, verified, sidecarWritten, sampleInPlace, claimed, unlinked
}
