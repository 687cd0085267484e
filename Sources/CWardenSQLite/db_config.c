// CWardenSQLite: what the store cannot call from Swift.
#include "CWardenSQLite.h"

#include <sqlite3.h>

int warden_sqlite_checkpoint_on_close(struct sqlite3 *connection, int enabled) {
    // sqlite3_db_config is variadic: Swift cannot call it.
    return sqlite3_db_config(connection, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, enabled ? 0 : 1, (int *)0) == SQLITE_OK ? 0 : -1;
}
