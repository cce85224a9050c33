//! The tokens' rows in the SQLite store file (`tokens`).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, Row};

use super::{TokenRow, TokenRows};
use crate::store::sqlite::{database_error, side_connection};
use crate::store::{Result, StoreError, StoreLocation};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The SHA-256 of the token's secret (hex): the secret itself is never kept.
    secret_hash TEXT NOT NULL
);";

const COLUMNS: &str = "id, role, name, created_at, secret_hash";

pub(super) struct SqliteRows {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteRows {
    pub(super) fn open(location: &StoreLocation, path: &Path) -> Result<SqliteRows> {
        let conn = side_connection(location, path, SCHEMA)?;
        Ok(SqliteRows { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        database_error(&self.path, e)
    }
}

fn token_row(row: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        role: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
        secret_hash: row.get(4)?,
    })
}

impl TokenRows for SqliteRows {
    fn place(&self) -> PathBuf {
        self.path.clone()
    }

    fn insert(&self, row: &TokenRow) -> Result<()> {
        self.conn
            .lock()
            .execute(
                &format!("INSERT INTO tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![row.id, row.role, row.name, row.created_at, row.secret_hash],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<TokenRow>> {
        let conn = self.conn.lock();
        let sql = format!("SELECT {COLUMNS} FROM tokens ORDER BY created_at, id");
        conn.prepare(&sql).and_then(|mut s| s.query_map([], token_row)?.collect()).map_err(|e| self.err(e))
    }

    fn delete(&self, id: &str) -> Result<bool> {
        let removed = self.conn.lock().execute("DELETE FROM tokens WHERE id = ?1", [id]).map_err(|e| self.err(e))?;
        Ok(removed > 0)
    }
}
