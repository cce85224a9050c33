//! A throw-away PostgreSQL server for the tests of the PostgreSQL store: one per test process,
//! initialised in a scratch folder, reached through a Unix socket there (trusted) and on
//! 127.0.0.1 (a role with a password: the tests of passwords), gone when the process ends. Run as the `postgres` user when the tests run as root (the server refuses
//! root). Where the binaries are missing the tests that need it skip, unless
//! `RHAIFLOW_REQUIRE_POSTGRES` is set, as CI sets it: there they fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server.
pub struct Postgres {
    /// The folder of its socket (`host` in a connection string).
    pub socket_dir: PathBuf,
    /// Its TCP port on 127.0.0.1 (free when it started), also the number of its socket.
    pub port: u16,
    /// The superuser that owns the cluster.
    pub user: String,
    /// The shell that runs the server and stops it once this process is gone: never waited
    /// for, it outlives us on purpose.
    _watchdog: std::process::Child,
}

impl Postgres {
    /// A connection string for database `db` (`postgres` exists from the start).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}@/{db}?host={}&port={}", self.user, self.socket_dir.display(), self.port)
    }

    /// A new, empty database named after `name` (and unique in this server), owned by
    /// `owner` (the superuser when `None`); its name, for `url` and `psql`.
    pub fn fresh_database(&self, name: &str, owner: Option<&str>) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let cleaned: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let db = format!("{}_{}", &cleaned[..cleaned.len().min(40)], NEXT.fetch_add(1, Ordering::Relaxed));
        let owner = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        self.psql("postgres", &format!("CREATE DATABASE {db}{owner}"));
        db
    }

    /// A connection string for database `db` over TCP, as `PASSWORD_ROLE` with its password.
    pub fn tcp_url(&self, db: &str) -> String {
        format!("postgres://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// `psql` against database `db`, `sql` run and its unaligned output returned.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", &self.socket_dir.to_string_lossy(), "-p", &self.port.to_string(), "-U", &self.user])
            .args(["-d", db, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The process's server, started on first use; `None` (skip) when PostgreSQL is not installed
/// and CI did not require it.
pub fn postgres() -> Option<&'static Postgres> {
    static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();
    SERVER
        .get_or_init(|| match binaries() {
            Some(bin) => Some(start(&bin)),
            None if std::env::var_os("RHAIFLOW_REQUIRE_POSTGRES").is_some() => {
                panic!("RHAIFLOW_REQUIRE_POSTGRES is set but no PostgreSQL is installed (/usr/lib/postgresql/*/bin)")
            }
            None => None,
        })
        .as_ref()
}

/// The newest installed PostgreSQL's `bin` folder.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program args...`, as the `postgres` user when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start(bin: &Path) -> Postgres {
    // Not under the tests' TMPDIR: the server outlives each test, and is removed by its
    // watchdog when this process ends.
    let dir = std::env::temp_dir().join(format!("pg-tests-{}", std::process::id()));
    let (data, socket_dir) = (dir.join("data"), dir.join("socket"));
    std::fs::create_dir_all(&socket_dir).expect("the server's folder");
    let user = if is_root() { "postgres".to_string() } else { whoami() };
    if is_root() {
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        assert!(status.is_ok_and(|s| s.success()), "chown of {} to postgres", dir.display());
    }
    // Trusted on the socket; a password (SCRAM) over TCP.
    let initdb = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["--auth-local=trust", "--auth-host=scram-sha-256", "-U", &user, "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .output()
        .expect("initdb runs");
    assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
    let port = free_port();
    // The watchdog: the server runs until this test process is gone (its /proc entry: as
    // another user, `kill -0` could not tell), then it is stopped and its folder removed
    // (statics are never dropped, so nothing else would).
    let script = format!(
        "{postgres} -D {data} -k {socket} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off >{dir}/log 2>&1 & \
         server=$!; while [ -d /proc/{parent} ]; do sleep 0.5; done; \
         kill -INT $server; wait $server; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        socket = socket_dir.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let watchdog = as_server_user(Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Postgres { socket_dir, port, user, _watchdog: watchdog };
    wait_until_ready(&server, &dir);
    server.psql("postgres", &format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"));
    server
}

/// The role that logs in over TCP, and its password (which no output may show).
pub const PASSWORD_ROLE: &str = "rhaiflow_pw";
pub const PASSWORD: &str = "s3cret-pw-9xq";

/// A TCP port of 127.0.0.1 that nothing listens on now (other test processes start servers
/// of their own on this machine).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_until_ready(server: &Postgres, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new("pg_isready")
            .args(["-q", "-h", &server.socket_dir.to_string_lossy(), "-p", &server.port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the PostgreSQL server did not start in 30 s:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// The harness itself: the PostgreSQL store's tests stand on it.
#[test]
fn a_throw_away_server_answers_on_its_socket() {
    let Some(server) = postgres() else { return };
    assert_eq!(server.psql("postgres", "SELECT 40 + 2"), "42");
    assert!(server.url("postgres").starts_with("postgres://"), "{}", server.url("postgres"));
}
