// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore
import WardenLinux
import WardenStore

/// Work the inotify reader hands to the capture thread, in the order things happened.
enum CaptureJob: Sendable {
    /// A regular file to classify, hash and record; `pinned` is the descriptor opened when the
    /// event arrived (nil: open by path now).
    case file(PathBytes, root: PathBytes, pinned: PinnedFile?)
    /// A non-regular entry (FIFO, socket, device, symlink) seen by `lstat`.
    case special(PathBytes, root: PathBytes, status: FileStatus)
    /// The name is gone.
    case deleted(PathBytes)
    /// A directory and everything below it are gone.
    case subtreeDeleted(PathBytes)
    /// Capture every path in `files`; when `reconcile` is set, `files` is all of `root`, and any
    /// present record below it that was not found is now deleted.
    case rescan(root: PathBytes, files: [PathBytes], reconcile: Bool)
    /// A sensor event to store.
    case event(SensorEvent)
}
