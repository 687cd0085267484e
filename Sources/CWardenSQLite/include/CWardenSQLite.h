// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The store's C: the variadic sqlite3_db_config, which Swift cannot call. 0 on success, -1 on
// failure.

#ifndef CWARDEN_SQLITE_H
#define CWARDEN_SQLITE_H

struct sqlite3;

/// Whether closing the last connection to a database checkpoints its WAL
/// (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, through the variadic sqlite3_db_config). 0 or -1.
int warden_sqlite_checkpoint_on_close(struct sqlite3 *connection, int enabled);

#endif
