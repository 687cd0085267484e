// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import GRDB
import GRDBSQLite

/// A cursor that reads each result row straight from the SQLite statement, by position.
///
/// For the lookups every alert's correlation makes inside the store writer's transaction: a
/// GRDB `Row` cursor builds a dictionary of lowercased column names for each query (22 names for
/// a file row), and that was a larger share of the writer's time than SQLite's own work.
final class ColumnCursor<Element>: DatabaseCursor {
    let _statement: Statement
    var _isDone = false
    private let read: (ColumnReader) -> Element

    /// Resets `statement`, binds `arguments`, and reads each row with `read`.
    init(_ statement: Statement, arguments: StatementArguments, read: @escaping (ColumnReader) -> Element) throws {
        _statement = statement
        self.read = read
        try statement.setArguments(arguments)
    }

    deinit {
        // As GRDB's own cursors do: leave the cached statement reset for its next user.
        sqlite3_reset(_statement.sqliteStatement)
    }

    func _element(sqliteStatement: SQLiteStatement) throws -> Element { read(ColumnReader(statement: sqliteStatement)) }
}

/// The columns of the row a statement stands on.
struct ColumnReader {
    let statement: SQLiteStatement

    func isNull(_ index: Int32) -> Bool { sqlite3_column_type(statement, index) == SQLITE_NULL }

    func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(statement, index) }

    func optionalInt64(_ index: Int32) -> Int64? { isNull(index) ? nil : int64(index) }

    func bytes(_ index: Int32) -> [UInt8] {
        // The pointer first, then its length (SQLite's documented order).
        guard let pointer = sqlite3_column_blob(statement, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(statement, index))))
    }

    func optionalBytes(_ index: Int32) -> [UInt8]? { isNull(index) ? nil : bytes(index) }

    func text(_ index: Int32) -> String {
        guard let pointer = sqlite3_column_text(statement, index) else { return "" }
        return String(
            decoding: UnsafeBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(statement, index))),
            as: UTF8.self)
    }

    func optionalText(_ index: Int32) -> String? { isNull(index) ? nil : text(index) }
}
