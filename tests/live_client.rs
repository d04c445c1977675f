//! The client role against real PostgreSQL 15 and 18 servers, through a blocking test driver
//! (`tests/support/driver/`, built on the public API), and the `client` example's command line
//! run as a process beside `psql -At`.
//!
//! Every scenario runs against both versions (the `pg15` and `pg18` modules at the end). Most
//! share one cluster per version; the tests that kill a server start their own. Needs
//! `bash scripts/install-test-deps.sh`; without it these tests fail and say so.

mod support;

#[path = "support/driver/mod.rs"]
mod driver;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use driver::{connect, ConnInfo, DriverError, Outcome, Statement};
use pgproto::{
    AuthError, AuthMethod, BackendMessage, ClientEvent, Error, ProtocolVersion, Target,
    TransactionStatus,
};
use sha2::Digest;
use support::client_cli::{psql_at, run_cli};
use support::pg::{
    self, Cluster, PgVersion, User, MD5_USER, PASSWORD_USER, SCRAM_USER, SSL_USER, TRUST_USER,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One cluster per version, shared by the tests that do not stop their server. (Statics are
/// not dropped: the harness's watchdog stops the server when the test process exits.)
fn shared(version: PgVersion) -> &'static Cluster {
    static CLUSTERS: [OnceLock<Cluster>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match version {
        PgVersion::V15 => &CLUSTERS[0],
        PgVersion::V18 => &CLUSTERS[1],
        PgVersion::V13 => &CLUSTERS[2],
    };
    slot.get_or_init(|| Cluster::start(version))
}

fn conninfo(cluster: &Cluster, user: User, extra: &str) -> String {
    cluster.conninfo_with(user, extra)
}

/// `sslrootcert=<the cluster's certificate>`.
fn rootcert(cluster: &Cluster) -> String {
    format!(
        "sslrootcert={}",
        pg::conninfo_quote(&cluster.cert_pem_path.to_string_lossy())
    )
}

fn must_connect(info: &str) -> driver::Conn {
    connect(info).unwrap_or_else(|e| panic!("connect {info}: {e}"))
}

fn connect_err(info: &str) -> DriverError {
    match connect(info) {
        Ok(c) => panic!(
            "connect {info} succeeded unexpectedly: {:?}",
            c.verbose_lines()
        ),
        Err(e) => e,
    }
}

fn one_value(conn: &mut driver::Conn, sql: &str) -> Option<String> {
    let rows = conn
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    assert_eq!(rows[0].len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

fn text(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// Waits for a line of the server log that names backend `pid` and contains `needle`.
fn wait_for_backend_log(cluster: &Cluster, pid: i32, needle: &str) -> bool {
    let tag = format!("[{pid}]");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if cluster
            .log()
            .lines()
            .any(|l| l.contains(&tag) && l.contains(needle))
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until backend `pid` runs a query containing `needle` (seen from another session).
fn wait_until_running(cluster: &Cluster, pid: i32, needle: &str) {
    let mut observer = must_connect(&cluster.conninfo(pg::SUPERUSER));
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active' \
         AND query LIKE '%{needle}%'"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while one_value(&mut observer, &sql).as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "backend {pid} never ran {needle}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `pg_ctl -m immediate stop` on `cluster`, as the server's OS user.
fn stop_immediately(cluster: &Cluster) {
    let pg_ctl = cluster.bindir.join("pg_ctl");
    let mut cmd = if pg::running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", pg::SERVER_OS_USER, "--"]).arg(pg_ctl);
        c
    } else {
        Command::new(pg_ctl)
    };
    cmd.arg("-D")
        .arg(&cluster.data_dir)
        .args(["-m", "immediate", "-w", "-t", "30", "stop"])
        .stdin(Stdio::null());
    let out = cmd.output().expect("run pg_ctl stop");
    pg::check(&out, "pg_ctl -m immediate stop");
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

fn auth_methods(version: PgVersion) {
    let cluster = shared(version);
    for (user, extra, method, tls) in [
        (TRUST_USER, "sslmode=disable", AuthMethod::None, false),
        (
            PASSWORD_USER,
            "sslmode=disable",
            AuthMethod::Password,
            false,
        ),
        (MD5_USER, "sslmode=disable", AuthMethod::Md5, false),
        (
            SCRAM_USER,
            "sslmode=disable",
            AuthMethod::ScramSha256,
            false,
        ),
        // sslmode=prefer (libpq's default): TLS, then SCRAM-SHA-256-PLUS by preference.
        (SCRAM_USER, "", AuthMethod::ScramSha256Plus, true),
        (MD5_USER, "sslmode=prefer", AuthMethod::Md5, true),
        (
            SSL_USER,
            "sslmode=require",
            AuthMethod::ScramSha256Plus,
            true,
        ),
        (
            SSL_USER,
            "sslmode=require channel_binding=disable",
            AuthMethod::ScramSha256,
            true,
        ),
    ] {
        let info = conninfo(cluster, user, extra);
        let mut conn = must_connect(&info);
        let c = conn.client();
        assert_eq!(c.auth_method(), Some(method), "{info}");
        assert_eq!(c.is_tls(), tls, "{info}");
        assert_eq!(c.protocol_version(), ProtocolVersion::V3_0, "{info}");
        assert_eq!(c.transaction_status(), Some(TransactionStatus::Idle));
        assert_eq!(c.backend_key().map(|k| k.secret_key().len()), Some(4));
        assert!(c
            .parameter("server_version")
            .is_some_and(|v| v.starts_with(&format!("{}.", version.major()))));
        assert_eq!(
            conn.verbose_lines(),
            [
                "protocol 3.0".to_string(),
                format!("auth {}", method.name()),
                format!("tls {}", if tls { "on" } else { "off" }),
                "cancel key 4 bytes".to_string(),
            ]
        );
        let pid = conn.backend_pid().expect("pid");
        assert_eq!(
            conn.simple_query(
                "SELECT current_user, pg_backend_pid()::text, \
                 (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())::text"
            )
            .unwrap(),
            [vec![
                text(user.name),
                text(&pid.to_string()),
                text(&tls.to_string())
            ]]
        );
        if method != AuthMethod::None {
            let needle = format!(
                "connection authenticated: identity=\"{}\" method={}",
                user.name, user.method
            );
            assert!(
                wait_for_backend_log(cluster, pid, &needle),
                "no '{needle}' for backend {pid}:\n{}",
                cluster.log()
            );
        }
        conn.terminate().unwrap();
    }

    // A wrong password: the server's FATAL error, at start-up.
    let wrong = User {
        password: Some("wrong"),
        ..SCRAM_USER
    };
    let e = connect_err(&conninfo(cluster, wrong, "sslmode=disable"));
    assert_eq!(e.sqlstate(), Some("28P01"), "{e}");
    let wrong = User {
        password: Some("wrong"),
        ..MD5_USER
    };
    let e = connect_err(&conninfo(cluster, wrong, "sslmode=disable"));
    assert_eq!(e.sqlstate(), Some("28P01"), "{e}");
    // No password at all.
    let e = connect_err(&conninfo(
        cluster,
        User {
            password: None,
            ..SCRAM_USER
        },
        "sslmode=disable",
    ));
    assert!(
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::MissingPassword))
        ),
        "{e:?}"
    );
    // pg_hba.conf: ssl_user only over TLS.
    let e = connect_err(&conninfo(cluster, SSL_USER, "sslmode=disable"));
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
}

fn scram_plus_channel_binding(version: PgVersion) {
    let cluster = shared(version);
    let root = rootcert(cluster);
    for extra in [
        "sslmode=require channel_binding=require".to_string(),
        format!("sslmode=verify-full {root} channel_binding=require"),
        format!("sslmode=verify-ca {root} channel_binding=require host=localhost"),
        format!("sslmode=verify-full {root} channel_binding=require host=localhost"),
    ] {
        let info = conninfo(cluster, SCRAM_USER, &extra);
        let mut conn = must_connect(&info);
        assert_eq!(
            conn.client().auth_method(),
            Some(AuthMethod::ScramSha256Plus),
            "{info}"
        );
        assert!(conn.client().is_tls());
        let pid = conn.backend_pid().unwrap();
        // The server names SCRAM-SHA-256-PLUS "scram-sha-256", and logs the TLS session.
        let needle = "connection authenticated: identity=\"scram_user\" method=scram-sha-256";
        assert!(
            wait_for_backend_log(cluster, pid, needle),
            "no '{needle}' for {pid}:\n{}",
            cluster.log()
        );
        assert!(wait_for_backend_log(cluster, pid, "SSL enabled"));
        assert_eq!(
            one_value(
                &mut conn,
                "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ),
            text("true")
        );
    }

    // The channel-binding data is the SHA-256 of the certificate (signed with SHA-256).
    let der = std::fs::read(&cluster.cert_der_path).unwrap();
    assert_eq!(
        pgproto::auth::tls_server_end_point(&der).ok(),
        Some(sha2::Sha256::digest(&der).to_vec())
    );

    // channel_binding=require without TLS: refused by the client.
    let e = connect_err(&conninfo(
        cluster,
        SCRAM_USER,
        "sslmode=disable channel_binding=require",
    ));
    assert!(
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::ChannelBindingUnavailable { .. }))
        ),
        "{e:?}"
    );

    // A certificate that does not chain to sslrootcert: refused by verify-ca and verify-full.
    let (_dir, other) = other_certificate();
    for mode in ["verify-ca", "verify-full"] {
        let e = connect_err(&conninfo(
            cluster,
            SCRAM_USER,
            &format!("sslmode={mode} sslrootcert={}", other.display()),
        ));
        assert!(matches!(e, DriverError::Tls(_)), "{mode}: {e:?}");
    }
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate unrelated to the clusters' (`<dir>/other.crt`).
fn other_certificate() -> (TempDir, std::path::PathBuf) {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pgproto-client-live-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.0.join("other.key"))
        .arg("-out")
        .arg(dir.0.join("other.crt"))
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    pg::check(&out, "openssl req");
    let path = dir.0.join("other.crt");
    (dir, path)
}

fn require_auth_refusals(version: PgVersion) {
    let cluster = shared(version);
    let method_not_allowed = |e: &DriverError| {
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::MethodNotAllowed { .. }))
        )
    };
    let incomplete = |e: &DriverError| {
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::Incomplete { .. }))
        )
    };
    let e = connect_err(&conninfo(
        cluster,
        SCRAM_USER,
        "sslmode=disable require_auth=md5",
    ));
    assert!(
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::MethodNotAllowed {
                method: "scram-sha-256"
            }))
        ),
        "{e:?}"
    );
    let e = connect_err(&conninfo(
        cluster,
        TRUST_USER,
        "sslmode=disable require_auth=scram-sha-256",
    ));
    assert!(incomplete(&e), "{e:?}");
    let e = connect_err(&conninfo(
        cluster,
        PASSWORD_USER,
        "sslmode=disable require_auth=!password",
    ));
    assert!(method_not_allowed(&e), "{e:?}");
    let e = connect_err(&conninfo(
        cluster,
        MD5_USER,
        "sslmode=disable require_auth=password,scram-sha-256",
    ));
    assert!(method_not_allowed(&e), "{e:?}");
    let e = connect_err(&conninfo(
        cluster,
        TRUST_USER,
        "sslmode=disable require_auth=!none",
    ));
    assert!(incomplete(&e), "{e:?}");
    // channel_binding=require refuses MD5 and trust even over TLS.
    let e = connect_err(&conninfo(
        cluster,
        MD5_USER,
        "sslmode=require channel_binding=require",
    ));
    assert!(
        matches!(
            e,
            DriverError::Protocol(Error::Auth(AuthError::ChannelBindingUnavailable { .. }))
        ),
        "{e:?}"
    );
    let e = connect_err(&conninfo(
        cluster,
        TRUST_USER,
        "sslmode=require channel_binding=require",
    ));
    assert!(incomplete(&e), "{e:?}");

    // Allowed combinations connect.
    for (user, ra) in [
        (SCRAM_USER, "scram-sha-256"),
        (SCRAM_USER, "!md5,!password"),
        (MD5_USER, "md5"),
        (PASSWORD_USER, "password,md5"),
        (TRUST_USER, "none"),
        (TRUST_USER, "!password"),
    ] {
        let mut conn = must_connect(&conninfo(
            cluster,
            user,
            &format!("sslmode=disable require_auth={ra}"),
        ));
        assert_eq!(one_value(&mut conn, "SELECT 1"), text("1"));
    }
}

// ---------------------------------------------------------------------------------------------
// TLS negotiation and protocol versions
// ---------------------------------------------------------------------------------------------

fn direct_tls(version: PgVersion) {
    let cluster = shared(version);
    let root = rootcert(cluster);
    for extra in [
        "sslmode=require sslnegotiation=direct".to_string(),
        format!("sslmode=verify-full {root} sslnegotiation=direct channel_binding=require"),
    ] {
        let info = conninfo(cluster, SCRAM_USER, &extra);
        let begun = Instant::now();
        match (version, connect(&info)) {
            (PgVersion::V18, Ok(mut conn)) => {
                assert!(conn.client().is_tls());
                assert_eq!(
                    conn.client().auth_method(),
                    Some(AuthMethod::ScramSha256Plus)
                );
                // No SSLRequest was sent, so no SSL response event.
                assert!(!conn
                    .startup_events()
                    .iter()
                    .any(|e| matches!(e, ClientEvent::SslResponse { .. })));
                let pid = conn.backend_pid().unwrap();
                assert_eq!(one_value(&mut conn, "SELECT 7"), text("7"));
                assert!(wait_for_backend_log(cluster, pid, "SSL enabled"));
            }
            (PgVersion::V18, Err(e)) => panic!("direct TLS against 18: {e}"),
            // PostgreSQL 15 takes the ClientHello for a start-up packet and hangs up.
            (PgVersion::V13 | PgVersion::V15, Ok(_)) => panic!("direct TLS against 15 succeeded"),
            (PgVersion::V13 | PgVersion::V15, Err(e)) => {
                assert!(
                    matches!(e, DriverError::Tls(_) | DriverError::Io { .. }),
                    "{e:?}"
                );
                assert!(begun.elapsed() < Duration::from_secs(10));
            }
        }
    }
    // libpq's rule: direct TLS needs sslmode=require or stricter.
    let e = connect_err(&conninfo(cluster, SCRAM_USER, "sslnegotiation=direct"));
    assert!(matches!(e, DriverError::Config(_)), "{e:?}");
}

fn protocol_3_2(version: PgVersion) {
    let cluster = shared(version);
    for extra in [
        "sslmode=disable max_protocol_version=3.2",
        "sslmode=require channel_binding=require max_protocol_version=latest",
    ] {
        let info = conninfo(cluster, SCRAM_USER, extra);
        let mut conn = must_connect(&info);
        let negotiated: Vec<_> = conn
            .startup_events()
            .iter()
            .filter_map(|e| match e {
                ClientEvent::ProtocolNegotiated {
                    version,
                    unrecognized,
                } => Some((*version, unrecognized.len())),
                _ => None,
            })
            .collect();
        let key_len = conn.client().backend_key().unwrap().secret_key().len();
        match version {
            PgVersion::V18 => {
                assert_eq!(conn.client().protocol_version(), ProtocolVersion::V3_2);
                assert!(negotiated.is_empty(), "{negotiated:?}");
                assert_eq!(key_len, 32);
                assert_eq!(conn.verbose_lines()[0], "protocol 3.2");
                assert_eq!(conn.verbose_lines()[3], "cancel key 32 bytes");
            }
            PgVersion::V13 | PgVersion::V15 => {
                assert_eq!(conn.client().protocol_version(), ProtocolVersion::V3_0);
                assert_eq!(negotiated, [(ProtocolVersion::V3_0, 0)]);
                assert_eq!(key_len, 4);
                assert_eq!(conn.verbose_lines()[0], "protocol 3.0");
            }
        }
        assert_eq!(one_value(&mut conn, "SELECT 'ok'"), text("ok"));
    }
    // min_protocol_version=3.2: 15's downgrade is refused.
    let r = connect(&conninfo(
        cluster,
        TRUST_USER,
        "sslmode=disable min_protocol_version=3.2 max_protocol_version=3.2",
    ));
    match (version, r) {
        (PgVersion::V18, Ok(conn)) => {
            assert_eq!(conn.client().protocol_version(), ProtocolVersion::V3_2)
        }
        (PgVersion::V15, Err(DriverError::Protocol(Error::ProtocolNegotiation { .. }))) => {}
        (_, r) => panic!("min_protocol_version=3.2 against {version}: {r:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

fn simple_queries(version: PgVersion) {
    let cluster = shared(version);
    let mut conn = must_connect(&conninfo(cluster, SCRAM_USER, "sslmode=require"));
    let table = format!("simple_{}", conn.backend_pid().unwrap());
    // Several statements in one Query, NULLs, an empty result, a command tag.
    let out = conn
        .query(&format!(
            "CREATE TEMP TABLE {table} (a int, b text); \
             INSERT INTO {table} VALUES (1, NULL), (2, 'two'), (3, 'a|b'); \
             SELECT * FROM {table} ORDER BY a; SELECT 1 WHERE false"
        ))
        .unwrap();
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.results.len(), 4);
    assert_eq!(out.results[0].tag.as_deref(), Some("CREATE TABLE"));
    assert_eq!(out.results[1].tag.as_deref(), Some("INSERT 0 3"));
    assert_eq!(
        out.results[2].columns.as_deref(),
        Some(&["a".to_string(), "b".to_string()][..])
    );
    assert_eq!(
        out.results[2].text_rows(),
        [
            vec![text("1"), None],
            vec![text("2"), text("two")],
            vec![text("3"), text("a|b")]
        ]
    );
    assert_eq!(out.results[2].tag.as_deref(), Some("SELECT 3"));
    assert!(out.results[3].rows.is_empty());
    assert_eq!(out.status, Some(TransactionStatus::Idle));

    // An empty query.
    let out = conn.query("").unwrap();
    assert_eq!(out.results.len(), 1);
    assert_eq!(out.results[0].tag, None);

    // An error ends the Query; the statements before it ran, the connection goes on.
    let out = conn
        .query(&format!(
            "INSERT INTO {table} VALUES (4, 'four'); SELECT 1/0; INSERT INTO {table} VALUES (5)"
        ))
        .unwrap();
    let err = out.error.clone().expect("error");
    assert_eq!(
        (err.severity.as_str(), err.code.as_str()),
        ("ERROR", "22012")
    );
    assert_eq!(err.message, "division by zero");
    assert_eq!(out.results.len(), 1);
    // One Query is one implicit transaction: the INSERT before the error is rolled back.
    assert_eq!(
        one_value(&mut conn, &format!("SELECT count(*) FROM {table}")),
        text("3")
    );
    let e = conn
        .simple_query("SELECT * FROM no_such_table")
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"));

    // Transaction status through a failed transaction.
    assert_eq!(
        conn.query("BEGIN").unwrap().status,
        Some(TransactionStatus::InTransaction)
    );
    let out = conn.query("SELECT 1/0").unwrap();
    assert_eq!(out.status, Some(TransactionStatus::Failed));
    let out = conn.query("SELECT 1").unwrap();
    assert_eq!(out.error.unwrap().code, "25P02");
    assert_eq!(
        conn.query("ROLLBACK").unwrap().status,
        Some(TransactionStatus::Idle)
    );

    // Notices are kept.
    conn.query("DO $$BEGIN RAISE NOTICE 'hello %', 42; END$$")
        .unwrap();
    let notices = conn.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].severity, "NOTICE");
    assert_eq!(notices[0].message, "hello 42");

    // ParameterStatus after SET.
    conn.query("SET application_name = 'pgproto live'").unwrap();
    assert_eq!(
        conn.client().parameter("application_name"),
        Some("pgproto live")
    );

    // A large value and many rows.
    let big = one_value(&mut conn, "SELECT repeat('x', 1000000)").unwrap();
    assert_eq!(big.len(), 1_000_000);
    let rows = conn
        .simple_query("SELECT g, g::text || 'x' FROM generate_series(1, 20000) g")
        .unwrap();
    assert_eq!(rows.len(), 20000);
    assert_eq!(rows[19999], [text("20000"), text("20000x")]);
    conn.terminate().unwrap();
}

fn extended_pipeline(version: PgVersion) {
    let cluster = shared(version);
    let mut conn = must_connect(&conninfo(cluster, MD5_USER, "sslmode=disable"));
    // 150 statements, each its own Sync segment, all written before reading; a syntax error
    // (Parse fails: Bind, Describe and Execute are skipped) and a run-time error in the middle.
    let n = 150;
    let statements: Vec<Statement> = (0..n)
        .map(|i| match i {
            70 => Statement::new("SELEC oops"),
            100 => Statement::new("SELECT 1 / $1::int").param(Some("0")),
            120 => Statement::new("SELECT 1 / (g - 1) FROM generate_series(1, 1) g"),
            _ => Statement::new("SELECT $1::int * 2, $2::text, $3::text")
                .param(Some(&i.to_string()))
                .param(None)
                .param(Some("p|q")),
        })
        .collect();
    let outcomes = conn.pipeline(&statements).unwrap();
    assert_eq!(outcomes.len(), n);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.status, Some(TransactionStatus::Idle), "{i}");
        match i {
            70 => {
                assert_eq!(o.error.as_ref().unwrap().code, "42601");
                assert_eq!(o.skipped, 3, "Bind, Describe and Execute skipped");
                assert!(o.results.is_empty());
            }
            100 => {
                // The planner folds 1 / $1 with the bound value: the error comes from Bind.
                assert_eq!(o.error.as_ref().unwrap().code, "22012");
                assert_eq!(o.skipped, 2, "Describe and Execute skipped");
            }
            120 => {
                // An error of the executor: nothing left to skip before the Sync.
                assert_eq!(o.error.as_ref().unwrap().code, "22012");
                assert_eq!(o.skipped, 0);
                assert!(o.results.is_empty());
            }
            _ => {
                assert!(o.error.is_none(), "{i}: {o:?}");
                assert_eq!(o.skipped, 0);
                assert_eq!(
                    o.text_rows(),
                    [vec![text(&(i * 2).to_string()), None, text("p|q")]],
                    "{i}"
                );
                assert_eq!(o.results[0].tag.as_deref(), Some("SELECT 1"));
            }
        }
    }
    assert_eq!(conn.client().pending_requests(), 0);

    // One Sync for many statements: after the error, everything up to the Sync is skipped;
    // the next segment runs.
    let c = conn.client_mut();
    let mut execs = Vec::new();
    for i in 0..120 {
        let sql = if i == 60 {
            // An executor error (a constant 1/0 would fail in Bind, at planning).
            "SELECT 1 / (g - 1) FROM generate_series(1, 1) g".to_string()
        } else {
            format!("SELECT {i}")
        };
        c.parse("", &sql, &[]).unwrap();
        let bind = pgproto::Bind::new("", "", &[], &[], &[]).unwrap();
        c.bind(&bind).unwrap();
        execs.push(c.execute("", 0).unwrap());
    }
    let sync1 = c.sync().unwrap();
    c.parse("", "SELECT 'after'", &[]).unwrap();
    let bind = pgproto::Bind::new("", "", &[], &[], &[]).unwrap();
    c.bind(&bind).unwrap();
    c.describe(Target::Portal, "").unwrap();
    let after = c.execute("", 0).unwrap();
    let sync2 = c.sync().unwrap();
    conn.pump().unwrap();
    let (mut skipped, mut rows, mut errors, mut readies) = (Vec::new(), Vec::new(), 0, 0);
    let mut after_row = None;
    while readies < 2 {
        match conn.next_event().unwrap() {
            ClientEvent::Skipped { request } => skipped.push(request),
            ClientEvent::Response { request, message } => match message {
                BackendMessage::DataRow(r) if request == after => {
                    after_row = r.get(0).and_then(Result::ok).flatten().map(<[u8]>::to_vec)
                }
                BackendMessage::DataRow(_) => rows.push(request),
                BackendMessage::ErrorResponse(_) => {
                    assert_eq!(request, execs[60]);
                    errors += 1;
                }
                BackendMessage::ReadyForQuery(_) => {
                    assert_eq!(request, if readies == 0 { sync1 } else { sync2 });
                    readies += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(rows, execs[..60]);
    // Statements 61..120 (Parse, Bind and Execute each) were skipped, not the Sync.
    assert_eq!(skipped.len(), 59 * 3);
    assert!(skipped.contains(&execs[119]) && !skipped.contains(&sync1));
    assert_eq!(after_row.as_deref(), Some(&b"after"[..]));

    // Extended queries that change data and return tags.
    let table = format!("ext_{}", conn.backend_pid().unwrap());
    let outcomes = conn
        .pipeline(&[
            Statement::new(format!("CREATE TEMP TABLE {table} (a int, b text)")),
            Statement::new(format!("INSERT INTO {table} VALUES ($1, $2), ($3, NULL)"))
                .param(Some("1"))
                .param(Some("one"))
                .param(Some("2")),
            Statement::new(format!("SELECT b FROM {table} ORDER BY a")),
        ])
        .unwrap();
    assert_eq!(outcomes[0].results[0].tag.as_deref(), Some("CREATE TABLE"));
    assert_eq!(outcomes[1].results[0].tag.as_deref(), Some("INSERT 0 2"));
    assert_eq!(outcomes[2].text_rows(), [vec![text("one")], vec![None]]);
    conn.terminate().unwrap();
}

/// Test data for COPY: `rows` lines of `id\tpayload\n`.
fn copy_data(rows: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(rows * 120);
    for i in 0..rows {
        let pad = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(3);
        data.extend_from_slice(format!("{i}\trow {i} {pad} {}\n", i * 7919 % 1000).as_bytes());
    }
    data
}

fn copy_in_out(version: PgVersion) {
    let cluster = shared(version);
    // Over TLS, to move 10 MB each way through rustls too.
    let mut conn = must_connect(&conninfo(cluster, SCRAM_USER, "sslmode=require"));
    let table = format!("copy_{}", conn.backend_pid().unwrap());
    conn.simple_query(&format!("CREATE TEMP TABLE {table} (id int, payload text)"))
        .unwrap();
    let rows = 90_000;
    let data = copy_data(rows);
    assert!(data.len() > 10 * 1024 * 1024, "{} bytes", data.len());
    let copied = conn
        .copy_in(&format!("COPY {table} FROM STDIN"), &data)
        .unwrap();
    assert_eq!(copied, rows as u64);
    let digest = hex(&sha2::Sha256::digest(&data));
    let check = conn
        .simple_query(&format!(
            "SELECT count(*)::text, sum(id)::text, encode(sha256(convert_to(string_agg(\
             id || E'\\t' || payload || E'\\n', '' ORDER BY id), 'UTF8')), 'hex') FROM {table}"
        ))
        .unwrap();
    let sum: usize = (0..rows).sum();
    assert_eq!(
        check,
        [vec![
            text(&rows.to_string()),
            text(&sum.to_string()),
            text(&digest)
        ]]
    );

    let out = conn
        .copy_out(&format!(
            "COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT"
        ))
        .unwrap();
    assert_eq!(out.len(), data.len());
    assert!(
        out == data,
        "COPY TO STDOUT differs from what was copied in"
    );

    // A bad row: the server's error, and the connection goes on.
    let e = conn
        .copy_in(
            &format!("COPY {table} FROM STDIN"),
            b"1\tok\nnot a number\tx\n",
        )
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("22P02"), "{e}");
    // COPY FROM STDIN through query(): refused with CopyFail.
    let out = conn.query(&format!("COPY {table} FROM STDIN")).unwrap();
    assert_eq!(out.error.unwrap().code, "57014");
    assert_eq!(
        one_value(&mut conn, &format!("SELECT count(*) FROM {table}")),
        text(&rows.to_string())
    );
    conn.terminate().unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Two connections
// ---------------------------------------------------------------------------------------------

fn listen_notify(version: PgVersion) {
    let cluster = shared(version);
    let mut listener = must_connect(&conninfo(cluster, SCRAM_USER, "sslmode=require"));
    let mut notifier = must_connect(&conninfo(cluster, TRUST_USER, "sslmode=disable"));
    let channel = format!("chan_{}", listener.backend_pid().unwrap());
    listener.simple_query(&format!("LISTEN {channel}")).unwrap();
    // Nothing yet: the wait times out.
    let begun = Instant::now();
    assert_eq!(
        listener
            .wait_for_notification(Duration::from_millis(200))
            .unwrap(),
        None
    );
    assert!(begun.elapsed() >= Duration::from_millis(150));

    notifier
        .simple_query(&format!("NOTIFY {channel}, 'hello'"))
        .unwrap();
    let n = listener
        .wait_for_notification(Duration::from_secs(10))
        .unwrap()
        .expect("notification");
    assert_eq!(n.channel, channel);
    assert_eq!(n.payload, "hello");
    assert_eq!(n.process_id, notifier.backend_pid().unwrap());

    // Several in one transaction, delivered at commit, in order.
    notifier
        .simple_query(&format!(
            "BEGIN; SELECT pg_notify('{channel}', 'a'); SELECT pg_notify('{channel}', 'b'); COMMIT"
        ))
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = listener
            .wait_for_notification(Duration::from_secs(10))
            .unwrap()
            .expect("notification");
        got.push(n.payload);
    }
    assert_eq!(got, ["a", "b"]);

    // One that arrives while the listener runs a query is kept for later.
    notifier
        .simple_query(&format!("NOTIFY {channel}, 'during'"))
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(one_value(&mut listener, "SELECT 1"), text("1"));
    let n = listener
        .wait_for_notification(Duration::from_secs(10))
        .unwrap()
        .expect("notification");
    assert_eq!(n.payload, "during");

    // After UNLISTEN, nothing.
    listener
        .simple_query(&format!("UNLISTEN {channel}"))
        .unwrap();
    notifier
        .simple_query(&format!("NOTIFY {channel}, 'ignored'"))
        .unwrap();
    assert_eq!(
        listener
            .wait_for_notification(Duration::from_millis(300))
            .unwrap(),
        None
    );
}

fn cancel_sleep(version: PgVersion) {
    let cluster = shared(version);
    for extra in [
        "sslmode=disable",
        "sslmode=require max_protocol_version=3.2",
        "sslmode=prefer",
    ] {
        let mut conn = must_connect(&conninfo(cluster, SCRAM_USER, extra));
        let pid = conn.backend_pid().unwrap();
        let canceller = conn.canceller().expect("cancel key");
        let begun = Instant::now();
        let sleeper = thread::spawn(move || {
            let r = conn.query("SELECT pg_sleep(30)");
            (conn, r)
        });
        wait_until_running(cluster, pid, "pg_sleep");
        canceller.cancel().unwrap();
        let (mut conn, r) = sleeper.join().expect("no panic");
        let out = r.unwrap();
        let err = out.error.expect("the query was cancelled");
        assert_eq!(err.code, "57014", "{extra}: {err}");
        assert_eq!(err.message, "canceling statement due to user request");
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "{extra}: {:?}",
            begun.elapsed()
        );
        // The connection is still usable.
        assert_eq!(
            one_value(&mut conn, "SELECT 'still here'"),
            text("still here")
        );
        // A cancel when nothing runs does nothing.
        canceller.cancel().unwrap();
        assert_eq!(one_value(&mut conn, "SELECT 2"), text("2"));
    }
}

// ---------------------------------------------------------------------------------------------
// Servers that go away
// ---------------------------------------------------------------------------------------------

/// A clean failure of a connection whose server went away: a FATAL error or end of file.
fn assert_clean_failure(r: Result<Outcome, DriverError>, what: &str) -> DriverError {
    match r {
        Err(e @ DriverError::Server(_)) => {
            assert_eq!(e.sqlstate(), Some("57P01"), "{what}: {e}");
            e
        }
        Err(e @ DriverError::Protocol(Error::UnexpectedEof { .. })) => e,
        other => panic!("{what}: expected a FATAL error or end of file, got {other:?}"),
    }
}

fn terminated_backend(version: PgVersion) {
    let cluster = shared(version);
    let mut conn = must_connect(&conninfo(cluster, SCRAM_USER, "sslmode=require"));
    let pid = conn.backend_pid().unwrap();
    let sleeper = thread::spawn(move || {
        let r = conn.query("SELECT pg_sleep(30)");
        (conn, r)
    });
    wait_until_running(cluster, pid, "pg_sleep");
    let mut admin = must_connect(&cluster.conninfo(pg::SUPERUSER));
    assert_eq!(
        one_value(&mut admin, &format!("SELECT pg_terminate_backend({pid})")),
        text("t")
    );
    let (mut conn, r) = sleeper.join().expect("no panic");
    let e = assert_clean_failure(r, "pg_terminate_backend");
    assert!(
        matches!(e, DriverError::Server(_)),
        "FATAL 57P01 expected: {e:?}"
    );
    // The connection is over; commands say so instead of hanging.
    assert!(conn.query("SELECT 1").is_err());
}

fn killed_server(version: PgVersion) {
    // pg_ctl -m immediate stop while a query runs, on a cluster of its own.
    let cluster = Cluster::start(version);
    let mut conn = must_connect(&conninfo(&cluster, SCRAM_USER, "sslmode=require"));
    let mut plain = must_connect(&conninfo(&cluster, TRUST_USER, "sslmode=disable"));
    let pid = conn.backend_pid().unwrap();
    let sleeper = thread::spawn(move || {
        let r = conn.query("SELECT pg_sleep(30)");
        (conn, r)
    });
    wait_until_running(&cluster, pid, "pg_sleep");
    let begun = Instant::now();
    stop_immediately(&cluster);
    let (mut conn, r) = sleeper.join().expect("no panic");
    assert_clean_failure(r, "immediate shutdown");
    assert!(begun.elapsed() < Duration::from_secs(20));
    assert!(conn.query("SELECT 1").is_err());
    // The idle connection finds out at its next query.
    let r = plain.query("SELECT 1");
    assert!(
        matches!(
            r,
            Err(DriverError::Server(_) | DriverError::Protocol(Error::UnexpectedEof { .. }))
        ),
        "{r:?}"
    );
    // Nobody listens any more.
    assert!(connect(&conninfo(&cluster, TRUST_USER, "sslmode=disable")).is_err());
}

fn killed_backend(version: PgVersion) {
    // SIGKILL of the backend mid-query (the postmaster then restarts everything), on a cluster
    // of its own.
    let cluster = Cluster::start(version);
    let mut conn = must_connect(&conninfo(&cluster, MD5_USER, "sslmode=disable"));
    let pid = conn.backend_pid().unwrap();
    let sleeper = thread::spawn(move || {
        let r = conn.query("SELECT pg_sleep(30)");
        (conn, r)
    });
    wait_until_running(&cluster, pid, "pg_sleep");
    let out = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .output()
        .expect("run kill");
    pg::check(&out, "kill -KILL");
    let (_conn, r) = sleeper.join().expect("no panic");
    assert!(
        matches!(r, Err(DriverError::Protocol(Error::UnexpectedEof { .. }))),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The example's command line against psql -At
// ---------------------------------------------------------------------------------------------

fn cli_matches_psql(version: PgVersion) {
    let cluster = shared(version);
    let info = conninfo(cluster, TRUST_USER, "sslmode=disable");
    let simple = [
        "SELECT 1, NULL, 'a|b', ''",
        "CREATE TEMP TABLE t (a int, b text)",
        "INSERT INTO t VALUES (1, NULL), (2, 'x')",
        "INSERT INTO t VALUES (3, 'y') RETURNING *",
        "SELECT * FROM t ORDER BY a",
        "SELECT 1 WHERE false",
        "SELECT 1; SELECT 2",
        "COPY t FROM STDIN",
        "COPY t TO STDOUT",
        "SET application_name = 'x'",
        "BEGIN",
        "UPDATE t SET a = a WHERE a > 100 RETURNING a",
        "COMMIT",
        "SELECT 1/0",
        "SELECT 'after the error'",
        "DO $$BEGIN RAISE NOTICE 'hi'; END$$",
        "",
        "SELECT E'two\\nlines', 4.5::numeric, true, '{1,2}'::int[]",
    ];
    let stdin = b"10\tten\n11\t\\N\n";
    let ours = run_cli(
        &[info.as_str()]
            .iter()
            .chain(&simple)
            .copied()
            .collect::<Vec<_>>(),
        stdin,
    );
    let theirs = psql_at(version, &info, &simple, stdin);
    assert_eq!(ours.stdout, theirs, "stderr: {}", ours.stderr);
    assert_eq!(ours.code, 1);
    assert_eq!(
        ours.stderr, "ERROR:  22012: division by zero\nNOTICE:  hi\n",
        "stdout: {}",
        ours.stdout
    );

    // --extended: one statement per argument, pipelined (COPY FROM STDIN too; more in
    // live_client_copy.rs).
    let extended = [
        "SELECT 1, NULL, 'a|b', ''",
        "CREATE TEMP TABLE t (a int, b text)",
        "INSERT INTO t VALUES (1, NULL), (2, 'x')",
        "INSERT INTO t VALUES (3, 'y') RETURNING *",
        "SELECT * FROM t ORDER BY a",
        "SELECT 1 WHERE false",
        "COPY t FROM STDIN",
        "COPY t TO STDOUT",
        "SELECT 1/0",
        "SELECT 'after the error'",
        "SELECT E'two\\nlines', 4.5::numeric, true, '{1,2}'::int[]",
    ];
    let args: Vec<&str> = ["--extended", info.as_str()]
        .iter()
        .chain(&extended)
        .copied()
        .collect();
    let ours = run_cli(&args, stdin);
    let theirs = psql_at(version, &info, &extended, stdin);
    assert_eq!(ours.stdout, theirs, "stderr: {}", ours.stderr);
    assert_eq!(ours.code, 1);
    assert_eq!(ours.stderr, "ERROR:  22012: division by zero\n");

    // Success: exit 0; --verbose prints the four lines.
    let tls_info = conninfo(
        cluster,
        SCRAM_USER,
        "sslmode=require channel_binding=require max_protocol_version=3.2",
    );
    let ours = run_cli(&["--verbose", &tls_info, "SELECT current_user"], b"");
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    assert_eq!(ours.stdout, "scram_user\n");
    let (proto, key) = match version {
        PgVersion::V13 | PgVersion::V15 => ("3.0", 4),
        PgVersion::V18 => ("3.2", 32),
    };
    assert_eq!(
        ours.stderr,
        format!("protocol {proto}\nauth scram-sha-256-plus\ntls on\ncancel key {key} bytes\n")
    );
    let ours = run_cli(
        &[
            "--extended",
            "--verbose",
            &conninfo(cluster, MD5_USER, "sslmode=disable"),
            "SELECT 1",
        ],
        b"",
    );
    assert_eq!(
        (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
        (
            0,
            "1\n",
            "protocol 3.0\nauth md5\ntls off\ncancel key 4 bytes\n"
        )
    );

    // Connection failures: stderr and exit 1; usage errors: exit 2.
    let wrong = User {
        password: Some("wrong"),
        ..SCRAM_USER
    };
    let ours = run_cli(
        &[&conninfo(cluster, wrong, "sslmode=disable"), "SELECT 1"],
        b"",
    );
    assert_eq!(ours.code, 1);
    assert!(ours.stderr.contains("28P01"), "{}", ours.stderr);
    assert!(ours.stdout.is_empty());
    assert_eq!(run_cli(&[&info], b"").code, 2);
    assert_eq!(run_cli(&["--bogus", &info, "SELECT 1"], b"").code, 2);
    let ours = run_cli(
        &["host=127.0.0.1 port=1 user=x sslmode=disable", "SELECT 1"],
        b"",
    );
    assert_eq!(ours.code, 1);
    assert!(ours.stderr.starts_with("error: "), "{}", ours.stderr);
}

// ---------------------------------------------------------------------------------------------
// No server needed
// ---------------------------------------------------------------------------------------------

#[test]
fn conninfo_parsing() {
    let info = ConnInfo::parse(
        "host=127.0.0.1 port=5 user=u password=p dbname=d sslmode=verify-full sslrootcert=/x \
         sslnegotiation=direct channel_binding=require require_auth=scram-sha-256 \
         min_protocol_version=3.0 max_protocol_version=latest application_name=app",
    )
    .unwrap();
    let config = info.client_config();
    assert_eq!(config.encryption, pgproto::Encryption::DirectSsl);
    assert_eq!(config.max_protocol_version, ProtocolVersion::V3_2);
    assert_eq!(config.user, "u");
    assert_eq!(config.database.as_deref(), Some("d"));
    assert_eq!(config.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(config.application_name.as_deref(), Some("app"));
    assert_eq!(
        config.channel_binding,
        pgproto::ChannelBindingPolicy::Require
    );
    assert!(!config.require_auth.allows(AuthMethod::Md5));
    for (mode, enc) in [
        ("disable", pgproto::Encryption::None),
        ("prefer", pgproto::Encryption::Ssl { required: false }),
        ("require", pgproto::Encryption::Ssl { required: true }),
        ("verify-ca", pgproto::Encryption::Ssl { required: true }),
        ("verify-full", pgproto::Encryption::Ssl { required: true }),
    ] {
        let info = ConnInfo::parse(&format!("user=u sslmode={mode}")).unwrap();
        assert_eq!(info.client_config().encryption, enc, "{mode}");
    }
    for bad in [
        "user=u sslmode=sometimes",
        "user=u bogus=1",
        "user=u max_protocol_version=3.1",
        "user=u require_auth=md5,!password",
        "user=u sslnegotiation=direct sslmode=prefer",
        "user=u min_protocol_version=3.2 max_protocol_version=3.0",
        "user=u port=x",
        "user=u sslcert=/x",
        "postgresql://u@h/d?nosuch=1",
    ] {
        assert!(
            matches!(ConnInfo::parse(bad), Err(DriverError::Config(_))),
            "{bad}"
        );
    }
}

/// The library's tls-server-end-point data, which both the test driver and the example use.
fn end_point(cert: &[u8]) -> Option<Vec<u8>> {
    pgproto::auth::tls_server_end_point(cert).ok()
}

#[test]
fn channel_binding_hash_follows_the_signature_algorithm() {
    // A minimal DER skeleton: SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID }, BIT STRING }.
    fn cert(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut c = vec![0x30, body.len() as u8];
        c.extend_from_slice(&body);
        c
    }
    let rsa = |last: u8| cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last]);
    let ecdsa = |last: u8| cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, last]);
    for (c, len) in [
        (rsa(0x04), 32), // md5WithRSAEncryption: SHA-256
        (rsa(0x05), 32), // sha1WithRSAEncryption: SHA-256
        (rsa(0x0b), 32),
        (rsa(0x0c), 48),
        (rsa(0x0d), 64),
        (ecdsa(0x02), 32),
        (ecdsa(0x03), 48),
        (ecdsa(0x04), 64),
    ] {
        let h = end_point(&c).expect("hash");
        assert_eq!(h.len(), len);
        if len == 32 {
            assert_eq!(h, sha2::Sha256::digest(&c).to_vec());
        }
    }
    // RSASSA-PSS and Ed25519 have no single hash; garbage is no certificate.
    assert_eq!(end_point(&rsa(0x0a)), None);
    assert_eq!(end_point(&cert(&[0x2b, 0x65, 0x70])), None);
    assert_eq!(end_point(b"\x30\x05abc"), None);
    assert_eq!(end_point(b""), None);
}

// ---------------------------------------------------------------------------------------------
// Every scenario against both servers
// ---------------------------------------------------------------------------------------------

macro_rules! against_both {
    ($($name:ident),* $(,)?) => {
        mod pg15 {
            $(#[test] fn $name() { super::$name(super::PgVersion::V15) })*
        }
        mod pg18 {
            $(#[test] fn $name() { super::$name(super::PgVersion::V18) })*
        }
    };
}

against_both!(
    auth_methods,
    scram_plus_channel_binding,
    require_auth_refusals,
    direct_tls,
    protocol_3_2,
    simple_queries,
    extended_pipeline,
    copy_in_out,
    listen_notify,
    cancel_sleep,
    terminated_backend,
    killed_server,
    killed_backend,
    cli_matches_psql,
);
