//! A PostgreSQL server in front of an embedded SQLite database, built on `pgproto::Server`.
//!
//! ```text
//! cargo run --release --example server -- [--listen ADDR] [--db PATH] [--auth trust|password|md5|scram]
//!                                         [--user U] [--password P] [--no-tls] [--trace FILE]
//!                                         [--startup-timeout SECONDS] [--max-connections N]
//!                                         [--max-protocol 2.0|3.0|3.2]
//! ```
//!
//! Defaults: `--listen 127.0.0.1:5433`, an in-memory database shared by every connection
//! (a SQLite file in `/dev/shm` in WAL mode, removed when the server stops),
//! `--auth scram`, user `demo`, password `demo`, and TLS with a self-signed certificate made at
//! start (so `sslmode=require channel_binding=require` works). Any database name is accepted.
//! With `--trace FILE`, every message of every connection is written to `FILE` in libpq's
//! `PQtrace` format, each line prefixed by the connection's number and a tab ([`trace`]).
//!
//! Protocols 3.2, 3.0 and 2.0 are all served (a 2.0 StartupPacket as PostgreSQL 7.4 to 13
//! served one: libpq 13 and older clients that ask for 2.0 get it). `--max-protocol 2.0` makes
//! the server behave as one older than PostgreSQL 7.4: a 3.x StartupMessage is answered with an
//! error in 2.0's format (`E`, text, NUL, no length word), so that libpq up to 13 falls back to
//! 2.0. `--max-protocol 3.0` stops at 3.0 (3.2 requests are negotiated down).
//!
//! Any PostgreSQL client can connect: psql, pgbench, libpq, JDBC, tokio-postgres, psycopg...
//! SQL is SQLite's, with PostgreSQL's `$1` placeholders; values are reported as int8, float8,
//! text, bytea or bool, in text or binary format as the client asks. The server itself runs
//! BEGIN/COMMIT/ROLLBACK (with PostgreSQL's failed-transaction rules), SET/RESET/SHOW,
//! LISTEN/UNLISTEN/NOTIFY between connections, `COPY ... FROM STDIN` and `COPY ... TO STDOUT`
//! in text format, and query cancellation (try `SELECT pg_sleep(10)` and Ctrl-C in psql).
//!
//! # Design
//!
//! Each connection is a tokio task ([`conn::serve`]) that owns the socket and the connection's
//! [`backend::Backend`]: the `pgproto::Server` state machine and, once authenticated, the
//! session with its SQLite handle ([`session`], [`extended`], [`exec`]). Start-up runs on the
//! task; each request runs on tokio's blocking pool, like a PostgreSQL backend process that
//! only exists while it has work, and streams its results ([`rows`]) back to the task in
//! bounded pieces. An idle or starting connection holds no thread.
//!
//! Limits, as PostgreSQL's: a connection must finish start-up within `--startup-timeout`
//! seconds (default 60, PostgreSQL's `authentication_timeout`) or is closed; beyond
//! `--max-connections` (default 100; connections still in start-up count), a client gets
//! FATAL 53300 "sorry, too many clients already" after its start-up packet, and beyond ten
//! times that many open connections, at once; a connection accepted beyond the cap that times
//! out in start-up without having sent its start-up packet gets that FATAL too. A client that does not read its results is not
//! read from until it does ([`conn`]); a listener that does not read its notifications is
//! disconnected once [`notify::MAILBOX_BYTES`] wait for it ([`notify`]).
//!
//! On start it prints one line on stdout, `listening on ADDR; connect with: psql "..."`.
//! Errors go to stderr with a non-zero exit status.

mod backend;
mod command;
mod conn;
mod copy;
mod exec;
mod extended;
mod functions;
mod notify;
mod rows;
mod session;
mod settings;
mod sql;
mod tls;
mod trace;
mod values;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pgproto::auth::{md5, ScramVerifier};
use pgproto::{ProtocolVersion, ServerAuth, ServerConfig};
use rusqlite::{Connection, OpenFlags};

use notify::{Mailbox, Notification};
use tokio::io::AsyncWriteExt;

/// The server_version reported to clients.
pub(crate) const SERVER_VERSION: &str = "15.0 (pgproto demo on SQLite)";

const USAGE: &str = "usage: server [--listen ADDR] [--db PATH] [--auth trust|password|md5|scram] \
                     [--user U] [--password P] [--no-tls] [--trace FILE] \
                     [--startup-timeout SECONDS] \
                     [--max-connections N] [--max-protocol 2.0|3.0|3.2]";

/// Open connections beyond which a new one is refused at once, before its start-up packet
/// (a multiple of `--max-connections`).
const OPEN_FACTOR: usize = 10;

/// The authentication method of `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// No password.
    Trust,
    /// Cleartext password.
    Password,
    /// MD5.
    Md5,
    /// SCRAM-SHA-256(-PLUS).
    Scram,
}

/// The command line.
#[derive(Debug)]
struct Args {
    listen: String,
    db: Option<String>,
    auth: Method,
    user: String,
    password: String,
    tls: bool,
    trace: Option<String>,
    startup_timeout: Duration,
    max_connections: usize,
    max_protocol: ProtocolVersion,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:5433".into(),
        db: None,
        auth: Method::Scram,
        user: "demo".into(),
        password: "demo".into(),
        tls: true,
        trace: None,
        startup_timeout: Duration::from_secs(60),
        max_connections: 100,
        max_protocol: ProtocolVersion::V3_2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--listen" => args.listen = value()?,
            "--db" => args.db = Some(value()?),
            "--auth" => {
                args.auth = match value()?.as_str() {
                    "trust" => Method::Trust,
                    "password" => Method::Password,
                    "md5" => Method::Md5,
                    "scram" | "scram-sha-256" => Method::Scram,
                    other => return Err(format!("unknown --auth method {other:?}\n{USAGE}")),
                }
            }
            "--user" => args.user = value()?,
            "--password" => args.password = value()?,
            "--no-tls" => args.tls = false,
            "--trace" => args.trace = Some(value()?),
            "--startup-timeout" => {
                let v = value()?;
                args.startup_timeout = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= 86_400.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!(
                            "--startup-timeout needs seconds (above 0, at most 86400), not {v:?}"
                        )
                    })?;
            }
            "--max-connections" => {
                let v = value()?;
                args.max_connections = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| {
                        format!("--max-connections needs a number from 1 to 100000, not {v:?}")
                    })?;
            }
            "--max-protocol" => {
                args.max_protocol = match value()?.as_str() {
                    "2.0" => ProtocolVersion::V2_0,
                    "3.0" => ProtocolVersion::V3_0,
                    "3.2" => ProtocolVersion::V3_2,
                    other => return Err(format!("unknown --max-protocol {other:?}\n{USAGE}")),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.user.is_empty() {
        return Err("--user must not be empty".into());
    }
    Ok(args)
}

/// What a CancelRequest needs to reach a running statement.
pub(crate) struct CancelTarget {
    /// The secret key sent in BackendKeyData.
    pub(crate) key: Vec<u8>,
    /// Checked by `pg_sleep`.
    pub(crate) flag: Arc<AtomicBool>,
    /// Interrupts SQLite.
    pub(crate) interrupt: rusqlite::InterruptHandle,
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// `--auth`.
    pub(crate) method: Method,
    /// `--user`.
    pub(crate) user: String,
    /// `--password`.
    pub(crate) password: String,
    /// The SCRAM verifier of the password (for `scram` and `password`).
    pub(crate) verifier: ScramVerifier,
    /// TLS, unless `--no-tls`.
    pub(crate) tls: Option<tls::Tls>,
    /// How to open the database (a path or a URI).
    pub(crate) db_uri: String,
    /// The scratch database's directory (removed at exit), when no `--db` was given.
    pub(crate) scratch: Option<PathBuf>,
    /// Every connection's state machine configuration (one mock-auth secret for all).
    pub(crate) config: ServerConfig,
    /// `--trace`: the file every connection's trace goes to.
    pub(crate) trace: Option<Arc<trace::TraceFile>>,
    /// Running backends by process ID.
    pub(crate) cancels: Mutex<HashMap<i32, CancelTarget>>,
    /// LISTEN registrations: channel -> process ID -> that backend's mailbox.
    pub(crate) channels: Mutex<HashMap<String, HashMap<i32, Arc<Mailbox>>>>,
    /// `--startup-timeout`.
    pub(crate) startup_timeout: Duration,
    /// `--max-connections`.
    pub(crate) max_connections: usize,
    /// Open connections, from accept to close, in start-up or not.
    pub(crate) open: AtomicUsize,
}

impl Shared {
    /// The authentication for a user name from a StartupMessage. Unknown users get the same
    /// exchange as known ones, doomed to fail.
    pub(crate) fn auth_for(&self, user: &str) -> ServerAuth {
        let known = user == self.user;
        match self.method {
            Method::Trust => ServerAuth::Trust,
            Method::Password => ServerAuth::Password {
                stored: known.then(|| self.verifier.to_string()),
            },
            Method::Md5 => ServerAuth::Md5 {
                stored: known.then(|| md5::stored_hash(&self.user, &self.password)),
            },
            Method::Scram => ServerAuth::Scram {
                verifier: known.then(|| self.verifier.clone()),
            },
        }
    }

    /// Opens a connection to the database.
    pub(crate) fn open_db(&self) -> rusqlite::Result<Connection> {
        let db = Connection::open_with_flags(
            &self.db_uri,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A scratch database is thrown away at exit: no need to survive a power cut.
        let sync = if self.scratch.is_some() {
            "OFF"
        } else {
            "NORMAL"
        };
        db.pragma_update(None, "synchronous", sync)?;
        // Read the schema now: later statements then need no lock to be prepared.
        db.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Ok(db)
    }

    /// Open connections now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Interrupts the statement running in backend `pid` if `key` is its secret.
    pub(crate) fn cancel(&self, pid: i32, key: &[u8]) {
        let cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = cancels.get(&pid) {
            // Constant time in the key's contents.
            let same = t.key.len() == key.len()
                && t.key.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same {
                t.flag.store(true, std::sync::atomic::Ordering::SeqCst);
                t.interrupt.interrupt();
            }
        }
    }

    /// Delivers a notification to every backend listening on `channel` except `from` (which
    /// queues its own), returning whether `from` listens.
    pub(crate) fn publish(&self, from: i32, channel: &str, payload: &str) -> bool {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(listeners) = channels.get(channel) else {
            return false;
        };
        for (pid, mailbox) in listeners {
            if *pid != from {
                // Never waits: a full mailbox overflows and its connection ends.
                mailbox.post(Notification {
                    pid: from,
                    channel: channel.into(),
                    payload: payload.into(),
                });
            }
        }
        listeners.contains_key(&from)
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("server: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("server: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let tls = if args.tls {
        Some(tls::Tls::self_signed().map_err(|e| format!("cannot make a certificate: {e}"))?)
    } else {
        None
    };
    let (db_uri, scratch) = match &args.db {
        Some(path) => (path.clone(), None),
        None => scratch_database()?,
    };
    let trace = match &args.trace {
        Some(path) => {
            Some(Arc::new(trace::TraceFile::create(path).map_err(|e| {
                format!("cannot write the trace file {path}: {e}")
            })?))
        }
        None => None,
    };
    let mut config = ServerConfig::default();
    config.set_parameter("server_version", SERVER_VERSION);
    config.min_protocol_version = ProtocolVersion::V2_0;
    config.max_protocol_version = args.max_protocol;
    let shared = Arc::new(Shared {
        method: args.auth,
        user: args.user.clone(),
        password: args.password.clone(),
        verifier: ScramVerifier::generate(&args.password)?,
        tls,
        db_uri,
        scratch,
        config,
        trace,
        cancels: Mutex::new(HashMap::new()),
        channels: Mutex::new(HashMap::new()),
        startup_timeout: args.startup_timeout,
        max_connections: args.max_connections,
        open: AtomicUsize::new(0),
    });
    // Keeps a memdb database alive while no client is connected. WAL: readers and the writer
    // do not wait for each other (with memdb, readers wait for the writer's transaction).
    let anchor = shared
        .open_db()
        .map_err(|e| format!("cannot open the database {}: {e}", shared.db_uri))?;
    if !shared.db_uri.contains("vfs=memdb") {
        anchor.pragma_update(None, "journal_mode", "WAL")?;
    }
    let password = match args.auth {
        Method::Trust => String::new(),
        _ => format!(" password={}", args.password),
    };
    let sslmode = if args.tls {
        "sslmode=require"
    } else {
        "sslmode=disable"
    };
    println!(
        "listening on {addr}; connect with: psql \"host={} port={} user={}{password} dbname=demo {sslmode}\"",
        addr.ip(),
        addr.port(),
        args.user
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let slot = conn::Slot::new(shared.clone());
                    if shared.open() > shared.max_connections.saturating_mul(OPEN_FACTOR) {
                        tokio::spawn(refuse(socket, slot));
                    } else {
                        tokio::spawn(conn::serve(socket, shared.clone(), slot));
                    }
                }
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to end.
                    eprintln!("server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated() => break,
        }
    }
    drop(anchor);
    if let Some(dir) = &shared.scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// Refuses a connection at once with FATAL 53300, without reading its start-up packet (as
/// PostgreSQL's postmaster does when it cannot start a backend).
async fn refuse(mut socket: tokio::net::TcpStream, slot: conn::Slot) {
    let out = too_many_clients();
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&out)).await;
    drop(slot);
}

/// FATAL 53300 "sorry, too many clients already", encoded.
pub(crate) fn too_many_clients() -> bytes::Bytes {
    use pgproto::Encode;
    let f = values::fields("FATAL", "53300", "sorry, too many clients already");
    let mut out = bytes::BytesMut::new();
    pgproto::BackendMessage::ErrorResponse(f).encode(&mut out);
    out.freeze()
}

/// Resolves on SIGTERM (never elsewhere).
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await
}

/// The default database: a fresh SQLite file in memory (`/dev/shm`, tmpfs) in WAL mode,
/// removed at exit; scratch directories of servers that died are removed first. Where there
/// is no `/dev/shm`, SQLite's `memdb` (all connections of the process share it, but a writing
/// transaction makes the others' reads wait).
fn scratch_database() -> Result<(String, Option<PathBuf>), std::io::Error> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return Ok((
            format!("file:/pgproto-demo-{}?vfs=memdb", std::process::id()),
            None,
        ));
    }
    if let Ok(entries) = std::fs::read_dir(shm) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("pgproto-demo-") else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = shm.join(format!("pgproto-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("demo.sqlite3");
    Ok((path.to_string_lossy().into_owned(), Some(dir)))
}
