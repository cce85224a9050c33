//! The connections to a PostgreSQL store, usable from any thread.
//!
//! The client is asynchronous; the `Store` contract is not (SQLite's calls block). So a
//! store keeps a small runtime of its own, and a call spawns its work there and waits for the
//! answer on a plain channel: that works from a script thread, the writer thread or a tokio
//! worker of the run alike, where blocking on a runtime would panic.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Config, NoTls};

use crate::store::{StoreError, StoreLocation};

/// How long a command waits for a connection before it reports the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pg {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The settings of the pool's connections, for one outside it (the listener's).
    config: Config,
    /// The URL without its password, to name the store in errors.
    place: PathBuf,
}

impl Pg {
    /// A pool of at most `connections` connections to the server `url` names (unset parts as
    /// libpq takes them: `PGHOST`, `PGUSER`, `PGPASSWORD`, ..., else the local socket and the
    /// user's name). Nothing connects yet: the first call does.
    pub fn open(url: &str, connections: usize) -> Result<Pg, StoreError> {
        let location = StoreLocation::Postgres(url.to_string());
        let place = location.shown();
        let opening = |message: String| StoreError::Open { path: place.clone(), message };
        let config = config(url).map_err(opening)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rhaiflow-pg")
            .enable_all()
            .build()
            .map_err(|e| opening(e.to_string()))?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| opening(e.to_string()))?;
        Ok(Pg { runtime: Some(runtime), pool, config, place })
    }

    /// The store as errors name it (its URL without the password).
    pub fn place(&self) -> &PathBuf {
        &self.place
    }

    /// Runs `job` on the store's runtime and waits for its answer.
    pub fn run<T: Send + 'static>(&self, job: impl Future<Output = T> + Send + 'static) -> T {
        let (answer, answered) = sync_channel(1);
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
        runtime.spawn(async move {
            let _ = answer.send(job.await);
        });
        answered.recv().expect("a store call ran to its end (a panic in it ends the process)")
    }

    /// Runs `job` on the store's runtime from a thread of no runtime (the writer's), which
    /// may lend it borrowed data.
    pub fn block_on<F: Future>(&self, job: F) -> F::Output {
        self.runtime.as_ref().expect("the runtime lives as long as the store").block_on(job)
    }

    /// Spawns `job` on the store's runtime, not waiting for it (the heartbeat).
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(job);
        }
    }

    /// The connection settings (for a connection of its own, outside the pool).
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// Runs `job` with a connection of the pool on the store's runtime, and waits for its
    /// answer (as `run`: from any thread).
    pub fn with<T: Send + 'static, F>(
        &self,
        job: impl FnOnce(Object, PathBuf) -> F + Send + 'static,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (pool, place) = (self.pool(), self.place.clone());
        self.run(async move {
            let client = Pg::connection(&pool, &place).await?;
            job(client, place).await
        })
    }

    /// A pool handle, for work moved onto the runtime.
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// A connection of the pool (waiting at most `CONNECT_TIMEOUT`).
    pub async fn connection(pool: &Pool, place: &std::path::Path) -> Result<Object, StoreError> {
        pool.get().await.map_err(|e| {
            let message = match e {
                deadpool_postgres::PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            };
            StoreError::Open { path: place.to_path_buf(), message }
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropped on a tokio worker, a runtime that waited for its threads would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The client's settings from the URL, with what it leaves out taken as libpq would.
fn config(url: &str) -> Result<Config, String> {
    let mut config = Config::from_str(url).map_err(|e| describe(&e))?;
    if config.get_hosts().is_empty() {
        match std::env::var("PGHOST") {
            Ok(host) => {
                config.host(host);
            }
            Err(_) if std::path::Path::new("/var/run/postgresql").is_dir() => {
                config.host_path("/var/run/postgresql");
            }
            Err(_) => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".into());
        config.user(user);
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        if let Ok(db) = std::env::var("PGDATABASE") {
            config.dbname(db);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("rhaiflow");
    Ok(config)
}

/// A client error as a person reads it: the server's own message when it sent one.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            message
        }
    }
}
