//! A prepared statement that binds text and blob values without copying them.
//!
//! rusqlite binds every text and blob as `SQLITE_TRANSIENT`, so SQLite copies each value into
//! memory of its own: an allocation and a copy per value, and a free when the parameter is
//! bound again. A bulk write binds about seventy texts per resource (its index rows), and
//! that copying was over a third of the instructions of writing them. rusqlite has no API
//! that binds borrowed values (its issue #164 asks for one), so this module binds them
//! itself, as `SQLITE_STATIC`, through the `ffi` rusqlite exports.
//!
//! **Soundness:** [`BorrowedInsert::execute`] borrows its values for the whole call, binds
//! them, steps the statement to its end, and then resets it and clears every binding before
//! it returns, whatever happened: SQLite never keeps a pointer to a value past the call. A
//! value that [`ToSql`] hands over owned (not borrowed) is copied as before. The statement
//! borrows its connection, so it is finalized before the connection can be closed.

use std::ffi::{CStr, c_char, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use rusqlite::Connection;
use rusqlite::ffi;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

/// A statement without results (an `INSERT`), prepared once and run many times with values
/// bound in place.
pub(super) struct BorrowedInsert<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    parameters: usize,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> BorrowedInsert<'c> {
    /// Prepares `sql` (one statement) on `conn`.
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        // SAFETY: the handle is used only through `self`, which borrows `conn` ('c), so the
        // connection stays open, and it is `!Send`, so the handle stays on this thread.
        let db = unsafe { conn.handle() };
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the prepared statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        // A null statement: `sql` held no statement.
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        // SAFETY: `stmt` is a live statement.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) };
        Ok(BorrowedInsert {
            stmt,
            db,
            parameters: usize::try_from(count).unwrap_or(0),
            _conn: PhantomData,
        })
    }

    /// Runs the statement once with `values` (one per parameter, in order).
    pub(super) fn execute<T: ToSql>(&mut self, values: &[T]) -> rusqlite::Result<()> {
        if values.len() != self.parameters {
            return Err(rusqlite::Error::InvalidParameterCount(
                values.len(),
                self.parameters,
            ));
        }
        let result = self.bind_and_step(values);
        // SAFETY: `stmt` is a live statement. After these two calls it holds no pointer to
        // `values` (see the module's documentation); their errors repeat the step's.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
        result
    }

    fn bind_and_step<T: ToSql>(&mut self, values: &[T]) -> rusqlite::Result<()> {
        for (i, value) in values.iter().enumerate() {
            let index = c_int::try_from(i + 1).map_err(|_| rusqlite::Error::InvalidQuery)?;
            let output = value.to_sql()?;
            let rc = match &output {
                // Borrowed from `value`, which outlives this call: no copy.
                ToSqlOutput::Borrowed(v) => self.bind(index, *v, ffi::SQLITE_STATIC()),
                // Dropped at the end of this iteration: SQLite copies it.
                ToSqlOutput::Owned(v) => self.bind(index, v.into(), ffi::SQLITE_TRANSIENT()),
                _ => {
                    return Err(rusqlite::Error::ToSqlConversionFailure(
                        "a value of a kind an index row never binds".into(),
                    ));
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(error(self.db, rc));
            }
        }
        // SAFETY: `stmt` is live and every parameter is bound to memory valid until return.
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_DONE => Ok(()),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(self.db, rc)),
        }
    }

    /// Binds parameter `index` to `value`; `text` and blob bytes are kept or copied as
    /// `destructor` says.
    fn bind(
        &mut self,
        index: c_int,
        value: ValueRef<'_>,
        destructor: ffi::sqlite3_destructor_type,
    ) -> c_int {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` is live; pointers and lengths describe the borrowed bytes, and an
        // empty value points at a static empty string rather than a dangling pointer.
        unsafe {
            match value {
                ValueRef::Null => ffi::sqlite3_bind_null(stmt, index),
                ValueRef::Integer(n) => ffi::sqlite3_bind_int64(stmt, index, n),
                ValueRef::Real(f) => ffi::sqlite3_bind_double(stmt, index, f),
                ValueRef::Text(bytes) => ffi::sqlite3_bind_text64(
                    stmt,
                    index,
                    non_dangling(bytes),
                    bytes.len() as ffi::sqlite3_uint64,
                    destructor,
                    ffi::SQLITE_UTF8 as u8,
                ),
                ValueRef::Blob(bytes) => ffi::sqlite3_bind_blob64(
                    stmt,
                    index,
                    non_dangling(bytes).cast(),
                    bytes.len() as ffi::sqlite3_uint64,
                    destructor,
                ),
            }
        }
    }
}

impl Drop for BorrowedInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` is live and finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The bytes' address, or a static empty string's for no bytes.
fn non_dangling(bytes: &[u8]) -> *const c_char {
    if bytes.is_empty() {
        c"".as_ptr()
    } else {
        bytes.as_ptr().cast()
    }
}

/// The error SQLite reports for the failed call that returned `rc` on `db`.
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection; the message is copied before any other call.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db);
        let message = ffi::sqlite3_errmsg(db);
        let message = if message.is_null() {
            None
        } else {
            Some(CStr::from_ptr(message).to_string_lossy().into_owned())
        };
        (if code == ffi::SQLITE_OK { rc } else { code }, message)
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A row of the test table: `a`, `b`, `c`, and `d` as text.
    type Row = (String, Vec<u8>, Option<i64>, Option<String>);

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT PRIMARY KEY, b BLOB, c INTEGER, d REAL)")
            .unwrap();
        conn
    }

    #[test]
    fn rows_hold_the_values_after_the_borrowed_ones_are_gone() {
        let conn = table();
        let mut insert =
            BorrowedInsert::prepare(&conn, "INSERT INTO t VALUES (?, ?, ?, ?), (?, ?, ?, ?)")
                .unwrap();
        for round in 0..3 {
            let (a1, a2) = (format!("first {round}"), format!("second {round}"));
            let blob = vec![round as u8; 3];
            let values: [&dyn ToSql; 8] = [
                &a1,
                &blob,
                &round,
                &1.5,
                &a2,
                &Vec::<u8>::new(),
                &None::<i64>,
                &String::new(),
            ];
            insert.execute(&values).unwrap();
        }
        drop(insert);
        let rows: Vec<Row> = conn
            .prepare("SELECT a, b, c, CAST(d AS TEXT) FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(
            rows[0],
            ("first 0".into(), vec![0; 3], Some(0), Some("1.5".into()))
        );
        assert_eq!(
            rows[2],
            ("first 2".into(), vec![2; 3], Some(2), Some("1.5".into()))
        );
        assert_eq!(
            rows[3],
            ("second 0".into(), Vec::new(), None, Some(String::new()))
        );
    }

    #[test]
    fn errors_are_sqlite_errors_and_leave_the_statement_usable() {
        let conn = table();
        let mut insert = BorrowedInsert::prepare(&conn, "INSERT INTO t (a) VALUES (?)").unwrap();
        insert.execute(&["x"]).unwrap();
        let e = insert.execute(&["x"]).unwrap_err();
        assert!(crate::sqlite::is_unique_violation(&e), "{e}");
        assert!(e.to_string().contains("UNIQUE"), "{e}");
        insert.execute(&["y"]).unwrap();
        assert!(matches!(
            insert.execute(&["a", "b"]),
            Err(rusqlite::Error::InvalidParameterCount(2, 1))
        ));
        let count: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
        assert!(BorrowedInsert::prepare(&conn, "INSERT INTO nowhere VALUES (?)").is_err());
    }
}
