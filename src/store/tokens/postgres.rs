//! The tokens' rows in a PostgreSQL store (`rhaiflow_tokens`, made by the store's
//! migrations), shared by every `serve` process on it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::Row;

use super::{TokenRow, TokenRows};
use crate::store::postgres::{connect, database, Pg};
use crate::store::{Result, StoreError};

const COLUMNS: &str = "id, role, name, created_at, secret_hash";

pub(super) struct PgRows {
    pg: Arc<Pg>,
}

impl PgRows {
    pub(super) fn open(url: &str) -> Result<PgRows> {
        Ok(PgRows { pg: connect(url, 1)? })
    }
}

fn token_row(row: &Row, place: &std::path::Path) -> Result<TokenRow> {
    let text = |i: usize| {
        row.try_get::<_, String>(i)
            .map_err(|e| StoreError::Corrupt { path: place.to_path_buf(), message: e.to_string() })
    };
    Ok(TokenRow { id: text(0)?, role: text(1)?, name: text(2)?, created_at: text(3)?, secret_hash: text(4)? })
}

impl TokenRows for PgRows {
    fn place(&self) -> PathBuf {
        self.pg.place().clone()
    }

    fn insert(&self, row: &TokenRow) -> Result<()> {
        let values =
            [row.id.clone(), row.role.clone(), row.name.clone(), row.created_at.clone(), row.secret_hash.clone()];
        self.pg.with(move |client, place| async move {
            let sql = format!("INSERT INTO rhaiflow_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)");
            let [a, b, c, d, e] = &values;
            client.execute(&sql, &[a, b, c, d, e]).await.map_err(|e| database(&place, &e))?;
            Ok(())
        })
    }

    fn read_all(&self) -> Result<Vec<TokenRow>> {
        self.pg.with(move |client, place| async move {
            let sql = format!("SELECT {COLUMNS} FROM rhaiflow_tokens ORDER BY created_at, id");
            let rows = client.query(&sql, &[]).await.map_err(|e| database(&place, &e))?;
            rows.iter().map(|r| token_row(r, &place)).collect()
        })
    }

    fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.pg.with(move |client, place| async move {
            let removed = client
                .execute("DELETE FROM rhaiflow_tokens WHERE id = $1", &[&id])
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(removed > 0)
        })
    }
}
