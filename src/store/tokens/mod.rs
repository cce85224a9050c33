//! Role tokens for `rhaiflow serve`, kept in the execution store so that every `serve` process
//! on one store accepts the same ones. A token is shown once, when it is made; the store keeps
//! only the SHA-256 of its secret, and a token offered is checked against it in constant time.
//!
//! A token reads `rhaiflow_<id>_<secret>`: the id finds its row (and names it in lists and in
//! the events its holder causes), the secret (32 random bytes) proves it.

mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Result, StoreError, StoreLocation};

/// What a token's holder may do; each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Role {
    /// Reads executions, their events, logs and graphs, workflows and deployments.
    Viewer,
    /// Also submits, cancels and resumes executions.
    Operator,
    /// Also deletes executions and manages tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin].into_iter().find(|r| r.as_str() == text)
    }
}

/// A token as lists show it (never its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub role: Role,
    /// What its maker called it (who holds it, what for).
    pub name: String,
    pub created_at: String,
}

/// A token's row as both databases store it: the role as text, and the hex SHA-256 of its
/// secret.
struct TokenRow {
    id: String,
    role: String,
    name: String,
    created_at: String,
    secret_hash: String,
}

/// What a database does for the tokens, each call one statement.
trait TokenRows: Send + Sync {
    fn place(&self) -> PathBuf;
    fn insert(&self, row: &TokenRow) -> Result<()>;
    /// Every token, oldest first.
    fn read_all(&self) -> Result<Vec<TokenRow>>;
    /// `false` when there was none.
    fn delete(&self, id: &str) -> Result<bool>;
}

#[derive(Clone)]
pub struct TokenStore {
    rows: Arc<dyn TokenRows>,
}

impl TokenStore {
    /// The tokens of the execution store at `location` (created if needed).
    pub fn open(location: &StoreLocation) -> Result<TokenStore> {
        let rows: Arc<dyn TokenRows> = match location {
            StoreLocation::Sqlite(path) => Arc::new(sqlite::SqliteRows::open(location, path)?),
            StoreLocation::Postgres(url) => Arc::new(postgres::PgRows::open(url)?),
        };
        Ok(TokenStore { rows })
    }

    /// Makes a token: its record, and its text, which nothing keeps.
    pub fn create(&self, role: Role, name: &str) -> Result<(TokenRecord, String)> {
        let id = hex(&random::<6>()?);
        let secret = hex(&random::<32>()?);
        let record = TokenRecord {
            id: id.clone(),
            role,
            name: name.to_string(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        self.rows.insert(&TokenRow {
            id: id.clone(),
            role: role.as_str().to_string(),
            name: name.to_string(),
            created_at: record.created_at.clone(),
            secret_hash: hex(&Sha256::digest(secret.as_bytes())),
        })?;
        Ok((record, format!("rhaiflow_{id}_{secret}")))
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        let rows = self.rows.read_all()?;
        rows.into_iter().map(|row| self.checked(row)).collect()
    }

    /// The tokens as they are now, to check offered ones against (a server reads them again
    /// every second rather than at every request).
    pub fn snapshot(&self) -> Result<TokenSet> {
        let rows = self.rows.read_all()?;
        let tokens = rows
            .into_iter()
            .map(|row| {
                let hash = row.secret_hash.clone();
                Ok((self.checked(row)?, hash))
            })
            .collect::<Result<_>>()?;
        Ok(TokenSet { tokens })
    }

    /// Forgets a token; `false` when there was none of that id.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        self.rows.delete(id)
    }

    /// A row as rhaiflow wrote it, or damage.
    fn checked(&self, row: TokenRow) -> Result<TokenRecord> {
        let damaged = |why: String| StoreError::Corrupt { path: self.rows.place(), message: why };
        let Some(role) = Role::parse(&row.role) else {
            return Err(damaged(format!("token {} has the role `{}`", row.id, row.role)));
        };
        if row.secret_hash.len() != 64 {
            return Err(damaged(format!("token {} has no proper hash", row.id)));
        }
        Ok(TokenRecord { id: row.id, role, name: row.name, created_at: row.created_at })
    }
}

/// The tokens a store kept at one moment, each with the hash of its secret.
#[derive(Default)]
pub struct TokenSet {
    tokens: Vec<(TokenRecord, String)>,
}

impl TokenSet {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token `text` is, if it is one of these.
    pub fn verify(&self, text: &str) -> Option<&TokenRecord> {
        let (id, secret) = text.strip_prefix("rhaiflow_")?.split_once('_')?;
        let (record, hash) = self.tokens.iter().find(|(record, _)| record.id == id)?;
        let offered = hex(&Sha256::digest(secret.as_bytes()));
        same_in_constant_time(offered.as_bytes(), hash.as_bytes()).then_some(record)
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Database(format!("the system gave no random bytes for a token: {e}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `a == b`, taking as long whatever bytes differ: how long a wrong secret takes to refuse
/// tells nothing of the right one.
fn same_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Sqlite(dir.path().join("s.db"));
        let store = TokenStore::open(&location).unwrap();
        (dir, store)
    }

    #[test]
    fn a_token_made_verifies_and_its_secret_is_not_kept() {
        let (dir, tokens) = store();
        let (record, text) = tokens.create(Role::Operator, "ci").unwrap();
        assert_eq!(tokens.snapshot().unwrap().verify(&text), Some(&record));
        let secret = text.rsplit('_').next().unwrap();
        let file = std::fs::read(dir.path().join("s.db")).unwrap();
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is in the store file");
        assert_eq!(tokens.list().unwrap(), vec![record]);
    }

    #[test]
    fn a_wrong_secret_or_a_revoked_token_does_not_verify() {
        let (_dir, tokens) = store();
        let (record, text) = tokens.create(Role::Admin, "").unwrap();
        let mut wrong = text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let set = tokens.snapshot().unwrap();
        assert_eq!(set.verify(&wrong), None);
        assert_eq!(set.verify("rhaiflow_nothing"), None);
        assert_eq!(set.verify(""), None);
        assert!(tokens.revoke(&record.id).unwrap());
        let set = tokens.snapshot().unwrap();
        assert_eq!(set.verify(&text), None);
        assert!(set.is_empty());
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same_in_constant_time(b"abcd", b"abcd"));
        assert!(!same_in_constant_time(b"abcd", b"abce"));
        assert!(!same_in_constant_time(b"abcd", b"abc"));
    }
}
