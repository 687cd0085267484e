// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The store's C: a SQLite VFS (CoalescingWAL.c) and the variadic sqlite3_db_config, which
// Swift cannot call. Every function returns 0 on success and -1 on failure.

#ifndef CWARDEN_SQLITE_H
#define CWARDEN_SQLITE_H

/// Registers, as SQLite's default VFS, a wrapper of the default one that writes each commit's
/// WAL frames with one write instead of two per frame (CoalescingWAL.c). Call it before the
/// first database is opened; calling it again does nothing. Returns 0, or -1 if SQLite has no
/// VFS to wrap or refused the registration.
int warden_sqlite_register_coalescing_wal(void);

struct sqlite3;

/// Whether closing the last connection to a database checkpoints its WAL
/// (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, through the variadic sqlite3_db_config). 0 or -1.
int warden_sqlite_checkpoint_on_close(struct sqlite3 *connection, int enabled);

#endif
