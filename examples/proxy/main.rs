//! A PostgreSQL connection pooler (session or transaction pooling) built on `pgproto`'s two
//! roles and its pooler primitives.
//!
//! ```text
//! cargo run --release --example proxy -- --listen ADDR --upstream "CONNINFO" [--pool-mode session|transaction]
//!       [--pool-size N] [--auth scram|md5|password|trust] [--user U] [--password P] [--no-tls]
//! ```
//!
//! Clients log in to the proxy (by default as `demo`/`demo` with SCRAM-SHA-256, TLS offered
//! with a self-signed certificate, so SCRAM-SHA-256-PLUS too, and protocol 3.2 offered) and name
//! the upstream server's database. The proxy opens at most `--pool-size` (default 10)
//! connections to the upstream server with `CONNINFO`, a libpq keyword/value string (`host`,
//! `port`, `user`, `password`, `dbname`, `sslmode`, `sslrootcert`, `sslnegotiation`,
//! `channel_binding`, `require_auth`, `max_protocol_version`, `application_name`,
//! `connect_timeout`, ...; `sslmode=require` is TLS without certificate verification, as in
//! libpq). Other options: `--max-prepared N` (statements kept prepared per upstream connection,
//! default 100) and `--threads N` (1 by default: one thread, as PgBouncer; 0 for one per CPU).
//!
//! - **Transaction mode** (the default): an upstream connection is held from a transaction's
//!   first message until ReadyForQuery `I`, then serves another client. Named prepared
//!   statements keep working whichever connection serves the client: each distinct statement
//!   gets a name of the pool's (`pgproto_N`), is prepared on a connection the first time it is
//!   used there, and a client's Parse is answered by the proxy when the connection already has
//!   the statement (`pgproto::pooler::Rewrite`). Session state other than prepared statements
//!   (`SET`, temporary tables, advisory locks) does not follow a client between transactions,
//!   as with PgBouncer.
//! - **Session mode**: a client keeps one upstream connection until it disconnects; the
//!   connection is then reset with `DISCARD ALL` and serves the next client.
//!
//! A CancelRequest (plain, or in TLS with a 3.2-length key) reaches the upstream connection
//! serving that client at that moment, and no other; ParameterStatus from upstream (after a
//! `SET`, say) reaches the client; an upstream connection that fails gives its client a FATAL
//! error (08006). Each session reads from its client only while its buffers are below a bound
//! and the upstream connection takes what it is sent, so memory per connection stays bounded.
//!
//! On start it prints one line on stdout, `listening on ADDR; ...`. Errors go to stderr with a
//! non-zero exit status.
//!
//! # Design
//!
//! One tokio task per client connection ([`session`], after [`login`]) drives a
//! `pgproto::Server` with the start-up under the application's control (the upstream server's
//! parameters, a cancel key of the proxy's own) and a pipeline depth, so that a client's
//! pipeline is forwarded as it arrives. Upstream connections ([`upstream`]) are started with
//! `pgproto::Client`, then carry frames: a `Relay` cuts what the server sends, a `Correlator`
//! says what each frame answers, and `Server::forward` checks it against the client's requests
//! in flight. Requests that need no statement renaming skip the `Server` and the correlator both
//! ways, followed only by a count of the requests that end with a ReadyForQuery ([`quick`]).
//! In session mode a client that has its connection skips all that: its frames pass through,
//! cut by two `Relay`s and never decoded ([`direct`]). The pool ([`pool`]) is a fair semaphore
//! and a list of idle connections. Timers run on a thread of their own ([`timer`]). A plain
//! client idle for 5 to 10 ms with nothing in flight leaves the runtime ([`park`]): its session,
//! its `Server` suspended (`Server::suspend`), waits in one epoll set on a thread of its own and
//! becomes a task again when its socket is readable, so an idle client costs a few hundred
//! bytes and no task or runtime registration.

#[path = "../client/tls.rs"]
#[allow(dead_code)]
mod client_tls;
#[path = "../client/conninfo.rs"]
#[allow(dead_code)]
mod conninfo;
mod direct;
mod io;
mod login;
mod params;
mod park;
mod pool;
mod quick;
#[path = "../client/results.rs"]
#[allow(dead_code)]
mod results;
#[path = "../server/tls.rs"]
#[allow(dead_code)]
mod server_tls;
mod session;
mod timer;
mod upstream;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use pgproto::auth::{md5, ScramVerifier};
use pgproto::pooler::{CancelKeys, StatementRegistry};
use pgproto::{BackendKeyData, CancelRequest, ServerAuth, ServerConfig, StartupEnd};

use conninfo::ConnInfo;
use pool::Pool;
use upstream::Target;

const USAGE: &str =
    "usage: proxy --listen ADDR --upstream CONNINFO [--pool-mode session|transaction] \
                     [--pool-size N] [--auth scram|md5|password|trust] [--user U] [--password P] \
                     [--no-tls] [--max-prepared N] [--threads N]";

/// `--pool-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Session,
    Transaction,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Trust,
    Password,
    Md5,
    Scram,
}

#[derive(Debug)]
struct Args {
    listen: String,
    upstream: String,
    mode: Mode,
    pool_size: usize,
    auth: Method,
    user: String,
    password: String,
    tls: bool,
    max_prepared: usize,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: String::new(),
        upstream: String::new(),
        mode: Mode::Transaction,
        pool_size: 10,
        auth: Method::Scram,
        user: "demo".into(),
        password: "demo".into(),
        tls: true,
        max_prepared: 100,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--listen" => args.listen = value()?,
            "--upstream" => args.upstream = value()?,
            "--pool-mode" => {
                args.mode = match value()?.as_str() {
                    "session" => Mode::Session,
                    "transaction" => Mode::Transaction,
                    other => return Err(format!("unknown --pool-mode {other:?}\n{USAGE}")),
                }
            }
            "--pool-size" => {
                args.pool_size = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--pool-size needs a positive number\n{USAGE}"))?
            }
            "--threads" => {
                args.threads = value()?
                    .parse()
                    .map_err(|_| format!("--threads needs a number\n{USAGE}"))?
            }
            "--max-prepared" => {
                args.max_prepared = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--max-prepared needs a positive number\n{USAGE}"))?
            }
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
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.listen.is_empty() || args.upstream.is_empty() {
        return Err(format!("--listen and --upstream are required\n{USAGE}"));
    }
    if args.user.is_empty() {
        return Err("--user must not be empty".into());
    }
    Ok(args)
}

/// Where cancel requests go: the keys the proxy issued, each with the cancel key of the
/// upstream connection serving that client while one does, and the clients whose cancel is
/// being sent right now. A session gives its connection back only once no cancel of its own is
/// on the way, so a cancel never reaches a connection that serves another client by then.
#[derive(Default)]
pub(crate) struct CancelRoutes {
    /// Each issued key with the upstream key its cancels go to (the connection's own, shared:
    /// a pointer per slot, and no allocation when a connection starts serving a client).
    keys: CancelKeys<Option<Arc<BackendKeyData>>>,
    sending: HashSet<i32>,
}

/// What every session shares.
pub(crate) struct Shared {
    method: Method,
    user: String,
    password: String,
    verifier: ScramVerifier,
    /// TLS for clients, unless `--no-tls`.
    pub(crate) tls: Option<server_tls::Tls>,
    /// Every session's state machine configuration.
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) mode: Mode,
    pub(crate) pool: Pool,
    /// The database clients must name (the upstream connection's).
    pub(crate) database: String,
    pub(crate) registry: StatementRegistry,
    cancels: Mutex<CancelRoutes>,
    /// Where idle plain sessions wait off the runtime (see [`park`]).
    pub(crate) parking: Option<park::Parking>,
    /// How long idle sessions have waited (see [`park`]).
    pub(crate) idle_clock: Arc<park::IdleClock>,
}

impl Shared {
    /// The authentication of a user name; unknown users get an exchange doomed to fail.
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

    fn routes(&self) -> std::sync::MutexGuard<'_, CancelRoutes> {
        self.cancels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A cancel key for a new session of protocol `version` (32 bytes in 3.2, as PostgreSQL).
    pub(crate) fn issue_key(&self, version: pgproto::ProtocolVersion) -> Option<BackendKeyData> {
        self.routes()
            .keys
            .issue(version, 32, pgproto::os_random, None)
    }

    /// Forgets the key of a session that ended.
    pub(crate) fn forget_key(&self, pid: i32) {
        self.routes().keys.remove(pid);
    }

    /// Where the cancels of session `pid` go from now on: the key of the upstream connection
    /// that serves it, or nowhere. Before nowhere, waits for a cancel of its own on the way.
    pub(crate) async fn route_cancels(&self, pid: i32, upstream: Option<Arc<BackendKeyData>>) {
        loop {
            {
                let mut routes = self.routes();
                if upstream.is_some() || !routes.sending.contains(&pid) {
                    if let Some(slot) = routes.keys.get_mut(pid) {
                        *slot = upstream;
                    }
                    return;
                }
            }
            crate::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Passes a client's CancelRequest to the upstream connection serving it, if the key is one
    /// the proxy issued and a connection serves it now.
    pub(crate) async fn cancel(&self, request: &CancelRequest) {
        let pid = request.process_id();
        let key = {
            let mut routes = self.routes();
            let key = routes.keys.find(request).cloned().flatten();
            if key.is_some() {
                routes.sending.insert(pid);
            }
            key
        };
        let Some(key) = key else {
            return;
        };
        if let Err(e) = self.pool.target.cancel(&key).await {
            eprintln!("proxy: cancel: {e}");
        }
        self.routes().sending.remove(&pid);
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("proxy: {e}");
            std::process::exit(2);
        }
    };
    // No timer driver: timers are made on a thread of their own (see [`timer`]).
    if let Err(e) = timer::start() {
        eprintln!("proxy: cannot start the timers' thread: {e}");
        std::process::exit(1);
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if args.threads > 0 {
            b.worker_threads(args.threads);
        }
        b.enable_io().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("proxy: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let info = ConnInfo::parse(&args.upstream).map_err(|e| format!("--upstream: {e}"))?;
    let upstream_tls = client_tls::TlsSetup::new(&info).map_err(|e| format!("--upstream: {e}"))?;
    let database = info.dbname.clone().unwrap_or_else(|| info.user.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let tls = if args.tls {
        Some(
            server_tls::Tls::self_signed()
                .map_err(|e| format!("cannot make a certificate: {e}"))?,
        )
    } else {
        None
    };
    let mut config = ServerConfig::default();
    config.startup_end = StartupEnd::Application;
    config.pipeline_depth = session::PIPELINE_DEPTH;
    let upstream_addr = format!("{}:{}", info.host, info.port);
    let shared = Arc::new(Shared {
        method: args.auth,
        user: args.user.clone(),
        password: args.password.clone(),
        verifier: ScramVerifier::generate(&args.password)?,
        tls,
        config: Arc::new(config),
        mode: args.mode,
        pool: Pool::new(
            Target {
                info,
                tls: upstream_tls,
                max_prepared: args.max_prepared,
            },
            args.pool_size,
        ),
        database: database.clone(),
        registry: StatementRegistry::new("pgproto_"),
        cancels: Mutex::new(CancelRoutes::default()),
        parking: Some(park::Parking::start(tokio::runtime::Handle::current())?),
        idle_clock: Arc::default(),
    });
    timer::spawn(shared.idle_clock.clone().run());
    let password = match args.auth {
        Method::Trust => String::new(),
        _ => format!(" password={}", args.password),
    };
    let sslmode = if args.tls { "require" } else { "disable" };
    println!(
        "listening on {addr}; upstream {upstream_addr}; connect with: psql \"host={} port={} user={}{password} dbname={database} sslmode={sslmode}\"",
        addr.ip(),
        addr.port(),
        args.user
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    tokio::spawn(session::serve(socket, shared.clone()));
                }
                Err(e) => eprintln!("proxy: accept: {e}"),
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated() => break,
        }
    }
    Ok(())
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
