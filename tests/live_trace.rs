//! *live*: protocol traces (`pgproto::trace`) beside libpq 18.6's own, on fresh sessions.
//!
//! - psycopg (libpq 18.6) sessions against a PostgreSQL 18 server started here, recorded by
//!   `tests/data/record_proxy.py` with libpq's trace on (`tests/data/trace_sessions.py`):
//!   `inspect --trace` on the recorded streams gives libpq's lines. With
//!   `PGPROTO_WRITE_TRACES=1` the recordings replace those in `tests/data/traces`
//!   (`bash tests/data/regenerate_traces.sh`).
//! - The server example with `--trace FILE` under psycopg: its trace of the connection is
//!   libpq's, seen from the other end.
//! - The client example with `--trace FILE` against PostgreSQL 18, through the recording
//!   proxy: its trace is what `inspect --trace` reads from the recorded bytes; with TLS it
//!   shows the plaintext the recording cannot.
//! - A `Client` traced from the middle of a session, with a row limit that makes the server
//!   send PortalSuspended (libpq never sets one): its lines are the last ones `inspect --trace`
//!   reads from the recording.

mod support;

#[path = "support/driver/mod.rs"]
#[allow(unused_imports)]
mod driver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgproto::trace::{TraceFlags, Tracer};
use pgproto::{BackendMessage, Bind, ClientEvent};
use support::demo_server::DemoServer;
use support::pg::{venv_python, Cluster, PgVersion, SCRAM_USER, SSL_USER};
use support::trace::{compare, inspect_trace, lines, read, strip_fields, SESSIONS};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pgproto-trace-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Runs `trace_sessions.py` against `port`, writing into `outdir`.
fn record_sessions(port: u16, outdir: &Path, sessions: &[&str]) {
    let mut cmd = Command::new(venv_python());
    cmd.arg(script("trace_sessions.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--outdir")
        .arg(outdir);
    for s in sessions {
        cmd.args(["--session", s]);
    }
    let out = cmd.output().expect("run trace_sessions.py");
    assert!(
        out.status.success(),
        "trace_sessions.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("libpq 180006"),
        "the recordings need libpq 18.6: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fresh_psycopg_sessions_trace_as_libpq_does() {
    // ssl=off: the first session's SSLRequest is answered with N, and the rest is plaintext.
    let cluster = Cluster::start_with(PgVersion::V18, "ssl = off");
    let dir = temp_dir("fresh");
    record_sessions(cluster.port, &dir, &[]);
    for s in SESSIONS {
        let ours = inspect_trace(
            &dir.join(format!("{}-1.client", s.name)),
            &dir.join(format!("{}-1.server", s.name)),
        );
        let libpq = lines(&read(&dir, s.name, "libpq"));
        if let Err(e) = compare(&ours, &libpq, s.auth_fails) {
            panic!("session {}: {e}", s.name);
        }
    }
    if std::env::var_os("PGPROTO_WRITE_TRACES").is_some() {
        let keep = support::trace::data_dir();
        std::fs::create_dir_all(&keep).expect("create tests/data/traces");
        for s in SESSIONS {
            for ext in ["client", "server", "libpq"] {
                let name = format!("{}-1.{ext}", s.name);
                std::fs::copy(dir.join(&name), keep.join(&name)).expect("keep a recording");
            }
        }
        eprintln!("recordings written to {}", keep.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_example_traces_what_libpq_traces() {
    let dir = temp_dir("server");
    let trace = dir.join("server.trace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let server = DemoServer::start(&["--no-tls", "--trace", &trace_arg]);
    record_sessions(server.addr.port(), &dir, &["demo_server"]);
    drop(server); // flushes and closes the trace file
    let raw = lines(&std::fs::read(&trace).expect("read the server's trace"));
    assert!(!raw.is_empty(), "the server example wrote no trace");
    for l in &raw {
        // `1<TAB>2026-01-31 12:34:56.789012<TAB>F...`: connection 1, then libpq's timestamp.
        let text = String::from_utf8_lossy(l);
        let mut parts = text.splitn(3, '\t');
        assert_eq!(parts.next(), Some("1"), "connection number in {text:?}");
        let stamp = parts.next().unwrap_or_default();
        assert!(
            stamp.len() == 26 && stamp.as_bytes()[10] == b' ' && stamp.as_bytes()[19] == b'.',
            "timestamp in {text:?}"
        );
    }
    let ours = strip_fields(&raw, 2);
    let libpq = lines(&read(&dir, "demo_server", "libpq"));
    if let Err(e) = compare(&ours, &libpq, false) {
        panic!("server example's trace against libpq's: {e}");
    }
    // The recorded bytes say the same as the server's own trace.
    let recorded = inspect_trace(
        &dir.join("demo_server-1.client"),
        &dir.join("demo_server-1.server"),
    );
    if let Err(e) = compare(&recorded, &libpq, false) {
        panic!("inspect --trace against libpq's: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `record_proxy.py` in front of `port`, recording into `dir` as `PREFIX-N.*`.
struct Proxy {
    child: Child,
    port: u16,
    stop: PathBuf,
}

impl Proxy {
    fn start(upstream: u16, dir: &Path, prefix: &str) -> Self {
        let ready = dir.join(format!("{prefix}.ready"));
        let stop = dir.join(format!("{prefix}.stop"));
        let child = Command::new(venv_python())
            .arg(script("record_proxy.py"))
            .args(["--listen-port", "0", "--upstream-port"])
            .arg(upstream.to_string())
            .arg("--outdir")
            .arg(dir)
            .args(["--prefix", prefix, "--ready-file"])
            .arg(&ready)
            .arg("--stop-file")
            .arg(&stop)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start record_proxy.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(p) = text.trim().parse() {
                    break p;
                }
            }
            assert!(Instant::now() < deadline, "record_proxy.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, port, stop }
    }

    /// Stops the proxy once its connections have ended, and waits for it.
    fn finish(mut self) {
        std::fs::write(&self.stop, b"").expect("write the stop file");
        let mut err = String::new();
        if let Some(e) = self.child.stderr.take() {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                err.push_str(&line);
                err.push('\n');
            }
        }
        let status = self.child.wait().expect("wait for record_proxy.py");
        assert!(status.success(), "record_proxy.py failed: {err}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run_client_example(args: &[&str]) {
    let out = Command::new(support::examples::example("client"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the client example");
    // Exit 1 is a statement that failed on purpose.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "client example: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn client_example_traces_what_went_over_the_wire() {
    let cluster = Cluster::start(PgVersion::V18);
    let dir = temp_dir("client");
    let proxy = Proxy::start(cluster.port, &dir, "plain");
    let trace = dir.join("plain.trace");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=pgproto user={} password={} sslmode=disable",
        proxy.port,
        SCRAM_USER.name,
        SCRAM_USER.password.unwrap_or_default()
    );
    run_client_example(&[
        "--trace",
        &trace.to_string_lossy(),
        &conninfo,
        "SELECT 1, NULL, 'caf\u{e9}'",
        "SELECT 1/0",
        "",
        "DO $$BEGIN RAISE NOTICE 'hi'; END$$",
    ]);
    run_client_example(&[
        "--extended",
        "--trace",
        &dir.join("plain-ext.trace").to_string_lossy(),
        &conninfo,
        "SELECT 2",
        "SELECT no_such_column",
        "SELECT 3",
    ]);
    proxy.finish();
    for (n, file) in [(1, "plain.trace"), (2, "plain-ext.trace")] {
        let ours = strip_fields(&lines(&std::fs::read(dir.join(file)).expect("trace")), 1);
        assert!(ours.iter().any(|l| l == b"B\t8\tAuthenticationOk"));
        let recorded = inspect_trace(
            &dir.join(format!("plain-{n}.client")),
            &dir.join(format!("plain-{n}.server")),
        );
        for d in [b'F', b'B'] {
            let pick = |v: &[Vec<u8>]| -> Vec<Vec<u8>> {
                v.iter().filter(|l| l[0] == d).cloned().collect()
            };
            assert_eq!(
                pick(&ours)
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect::<Vec<_>>(),
                pick(&recorded)
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect::<Vec<_>>(),
                "{file}: the client's own trace and the recorded bytes differ"
            );
        }
    }

    // With TLS the recording is encrypted after the SSLResponse; the client's trace goes on in
    // plaintext, every message of it.
    let tls_trace = dir.join("tls.trace");
    run_client_example(&[
        "--trace",
        &tls_trace.to_string_lossy(),
        &format!(
            "host=127.0.0.1 port={} dbname=pgproto user={} password={} sslmode=require",
            cluster.port,
            SSL_USER.name,
            SSL_USER.password.unwrap_or_default()
        ),
        "SELECT 1",
    ]);
    let ours = strip_fields(&lines(&std::fs::read(&tls_trace).expect("trace")), 1);
    let names: Vec<String> = ours
        .iter()
        .map(|l| {
            String::from_utf8_lossy(l)
                .split('\t')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.contains("ParameterStatus"))
        .collect();
    let expected_start = ["F 8 SSLRequest", "B 1 SSLResponse"];
    assert_eq!(&names[..2], &expected_start, "{names:#?}");
    assert_eq!(&ours[1], b"B\t1\tSSLResponse\t S");
    for must in [
        "StartupMessage",
        "AuthenticationSASL",
        "SASLInitialResponse",
        "AuthenticationSASLContinue",
        "SASLResponse",
        "AuthenticationSASLFinal",
        "AuthenticationOk",
        "BackendKeyData",
        "Query",
        "DataRow",
        "Terminate",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(must)),
            "{must} missing: {names:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_traced_mid_session_sees_portal_suspended() {
    let cluster = Cluster::start(PgVersion::V18);
    let dir = temp_dir("suspended");
    let proxy = Proxy::start(cluster.port, &dir, "suspended");
    let mut conn = driver::connect(&format!(
        "host=127.0.0.1 port={} dbname=pgproto user={} password={} sslmode=disable",
        proxy.port,
        SCRAM_USER.name,
        SCRAM_USER.password.unwrap_or_default()
    ))
    .expect("connect");
    let traced = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&traced);
    conn.client_mut().set_tracer(
        Tracer::new(move |l: &[u8]| sink.lock().unwrap().push(l.to_vec()))
            .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS),
    );
    let c = conn.client_mut();
    c.parse("", "SELECT generate_series(1, 3)", &[])
        .expect("parse");
    let bind = Bind::new("", "", &[], &[], &[]).expect("bind");
    c.bind(&bind).expect("bind");
    c.execute("", 2).expect("execute");
    c.execute("", 0).expect("execute");
    c.sync().expect("sync");
    conn.pump().expect("pump");
    let mut suspended = 0;
    loop {
        match conn.next_event().expect("event") {
            ClientEvent::Response {
                message: BackendMessage::PortalSuspended,
                ..
            } => suspended += 1,
            ClientEvent::Response {
                message: BackendMessage::ReadyForQuery(_),
                ..
            } => break,
            _ => {}
        }
    }
    assert_eq!(suspended, 1);
    conn.terminate().expect("terminate");
    drop(conn);
    proxy.finish();

    let ours = traced.lock().unwrap().clone();
    let recorded = inspect_trace(
        &dir.join("suspended-1.client"),
        &dir.join("suspended-1.server"),
    );
    assert!(
        ours.iter().any(|l| l == b"B\t4\tPortalSuspended"),
        "{ours:?}"
    );
    for d in [b'F', b'B'] {
        let pick = |v: &[Vec<u8>]| -> Vec<String> {
            v.iter()
                .filter(|l| l[0] == d)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        };
        let (ours, recorded) = (pick(&ours), pick(&recorded));
        assert!(
            recorded.ends_with(&ours) && !ours.is_empty(),
            "the trace set mid-session must be the recording's last lines:\n{ours:#?}\n{recorded:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
