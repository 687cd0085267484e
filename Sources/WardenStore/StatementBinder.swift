// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import GRDB
import GRDBSQLite

/// Binds values to a cached statement by position and runs it, straight through SQLite.
///
/// For the inserts every alert makes in the store writer's transaction: GRDB's arguments (an
/// array of existentials, each converted to a `DatabaseValue`, bound through closures, with the
/// statement's execution observed for transaction observers) cost more than SQLite's own work
/// for a row. Only for statements no transaction observer watches (alerts and their
/// correlations: the lookup memo watches file and exec rows).
struct StatementBinder {
    private let statement: SQLiteStatement

    /// SQLite copies what it is given before the bind returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    init(_ statement: Statement) {
        self.statement = statement.sqliteStatement
        sqlite3_reset(self.statement)
        sqlite3_clear_bindings(self.statement)
    }

    func bind(_ index: Int32, _ value: String?) {
        guard var value else { return }  // cleared bindings are NULL
        value.withUTF8 { bytes in
            _ = sqlite3_bind_text(statement, index, bytes.baseAddress, Int32(bytes.count), Self.transient)
        }
    }

    func bind(_ index: Int32, _ value: Int64?) {
        guard let value else { return }
        sqlite3_bind_int64(statement, index, value)
    }

    func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(statement, index, value) }

    func bind(_ index: Int32, bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            // A zero-length blob, not NULL, for an empty path (a null pointer would bind NULL).
            _ =
                raw.baseAddress == nil
                ? sqlite3_bind_zeroblob(statement, index, 0)
                : sqlite3_bind_blob(statement, index, raw.baseAddress, Int32(raw.count), Self.transient)
        }
    }

    /// Runs the statement to its end and leaves it reset.
    func execute(in db: Database) throws {
        let code = sqlite3_step(statement)
        defer { sqlite3_reset(statement) }
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }
}
