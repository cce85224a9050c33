//! Where the store lives: a SQLite file on this machine, or a PostgreSQL server that many
//! machines share.

use std::fmt;
use std::path::PathBuf;

use crate::diagnostic::{Code, Diagnostic};

/// A store's place, as `--store` (or `RHAIFLOW_STORE`) names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL server, by its connection URL (`postgres://user:password@host/db`).
    Postgres(String),
}

impl StoreLocation {
    /// `--store PATH-OR-URL`, else `$RHAIFLOW_STORE`, else `./.rhaiflow/`. A path ending in
    /// `.db`/`.sqlite` or naming an existing file is the database file; any other is a folder
    /// holding `rhaiflow.db`. A `postgres://` (or `postgresql://`) URL is a PostgreSQL server;
    /// any other URL is refused: read as a path, `mysql://user:password@host/db` would make
    /// folders named after the password.
    pub fn locate(option: Option<&str>) -> Result<StoreLocation, Diagnostic> {
        let given = option
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("RHAIFLOW_STORE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(".rhaiflow"));
        let text = given.to_string_lossy();
        if let Some((scheme, _)) =
            text.split_once("://").filter(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            if matches!(scheme, "postgres" | "postgresql") {
                return Ok(StoreLocation::Postgres(text.into_owned()));
            }
            return Err(Diagnostic::plain(
                Code::Store,
                format!(
                    "the store `{}` is a {scheme} URL, which rhaiflow cannot keep its store in",
                    without_password(&text)
                ),
            )
            .with_help(
                "--store (or RHAIFLOW_STORE) takes a SQLite file (`runs.db`), a folder for one, or a PostgreSQL \
                 URL (`postgres://user@host/db`)",
            ));
        }
        let is_file =
            given.is_file() || matches!(given.extension().and_then(|e| e.to_str()), Some("db" | "sqlite" | "sqlite3"));
        Ok(StoreLocation::Sqlite(if is_file { given } else { given.join("rhaiflow.db") }))
    }

    /// How errors name it: the file, or the URL without its password.
    pub fn shown(&self) -> PathBuf {
        PathBuf::from(self.to_string())
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::Sqlite(path)
    }
}

/// Shown to a person: a URL never with its password.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

/// A connection URL as it may be shown: its password, given after the user or as a
/// `password=` parameter, replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // The user's part runs to the last `@`, not to the first `/` or `?`: the client reads a
    // password with `/`, `?`, `#` or `@` in it, not percent-encoded, as the password all the same.
    let rest = match rest.rsplit_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{user}:***@{host}")
        }
        _ => rest.to_string(),
    };
    // Any `password=` after a `?` or `&`, wherever it is: what follows the last `@` may be a
    // query without a path before it.
    let mut after_separator = false;
    let hidden = rest.split_inclusive(['?', '&']).map(|piece| {
        let shown = match piece.strip_prefix("password=") {
            Some(value) if after_separator => {
                format!("password=***{}", if value.ends_with(['?', '&']) { &value[value.len() - 1..] } else { "" })
            }
            _ => piece.to_string(),
        };
        after_separator = true;
        shown
    });
    format!("{scheme}://{}", hidden.collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(without_password("postgres://ops:s3cret@db:5432/flows"), "postgres://ops:***@db:5432/flows");
        assert_eq!(without_password("postgres://ops@db/flows"), "postgres://ops@db/flows");
        assert_eq!(
            without_password("postgres://db/flows?sslmode=x&password=y"),
            "postgres://db/flows?sslmode=x&password=***"
        );
        assert_eq!(without_password("postgres://ops:pw@?host=/tmp"), "postgres://ops:***@?host=/tmp");
        assert_eq!(without_password("runs.db"), "runs.db");
    }

    // A password with `/` or `?` in it (not percent-encoded, which the client takes as it is)
    // was shown in full: the user's part was taken to end at the first `/` or `?`.
    #[test]
    fn a_password_with_a_slash_or_a_question_mark_is_hidden_too() {
        assert_eq!(without_password("postgres://ops:a/b?c#d@db:5432/flows"), "postgres://ops:***@db:5432/flows");
        assert_eq!(without_password("postgres://ops:p@ss@db/flows"), "postgres://ops:***@db/flows");
        assert_eq!(
            without_password("postgres://ops:pw@db/flows?application_name=a@b&password=x"),
            "postgres://ops:***@b&password=***"
        );
        assert_eq!(
            without_password("postgres://db/flows?user=a@b&password=x&sslmode=y"),
            "postgres://db/flows?user=a@b&password=***&sslmode=y"
        );
    }

    #[test]
    fn a_postgres_url_is_a_server_and_any_other_url_is_refused() {
        let url = "postgresql://ops:pw@db/flows";
        assert_eq!(StoreLocation::locate(Some(url)).unwrap(), StoreLocation::Postgres(url.into()));
        assert_eq!(StoreLocation::locate(Some(url)).unwrap().to_string(), "postgresql://ops:***@db/flows");
        let refused = StoreLocation::locate(Some("mysql://ops:pw@db/flows")).unwrap_err();
        assert!(!refused.message.contains("pw"), "{}", refused.message);
        assert_eq!(StoreLocation::locate(Some("runs.db")).unwrap(), StoreLocation::Sqlite("runs.db".into()));
        assert_eq!(StoreLocation::locate(Some("dir")).unwrap(), StoreLocation::Sqlite("dir/rhaiflow.db".into()));
    }
}
