//! The example server (`examples/server`, SQLite behind `pgproto::Server`) as a child process,
//! and a way to run real clients (psql, pgbench) against it with a time limit (std only).
//!
//! ```ignore
//! mod support;
//! use support::demo_server::DemoServer;
//!
//! let server = DemoServer::start(&["--auth", "md5"]);
//! let mut psql = std::process::Command::new(support::pg::psql(support::pg::PgVersion::V15));
//! psql.args(["-X", "-w", "-c", "select 1", "-d"]).arg(server.conninfo("sslmode=require"));
//! let out = support::demo_server::run(&mut psql, "", 60); // stdin, time limit in seconds
//! ```
//!
//! The example is built once per test binary with the cargo that builds the tests (a no-op
//! when `cargo test` has built it already), and each [`DemoServer`] listens on a free port of
//! 127.0.0.1 and is killed (by its pid) on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The user and password the server is started with (its defaults).
pub(crate) const USER: &str = "demo";
/// See [`USER`].
pub(crate) const PASSWORD: &str = "demo";

/// The example's executable, built on first use.
pub(crate) fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| super::examples::example("server"))
}

/// A running example server.
pub(crate) struct DemoServer {
    child: Child,
    /// Where it listens (127.0.0.1, a free port).
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl DemoServer {
    /// Starts the server with `args` (plus `--listen 127.0.0.1:0`) and waits for its
    /// `listening on ADDR; ...` line.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_binary(binary(), args)
    }

    /// Starts another example that prints the same first line (the `proxy` example), with
    /// `args` plus `--listen 127.0.0.1:0`.
    pub(crate) fn start_example(name: &str, args: &[&str]) -> Self {
        Self::start_binary(&super::examples::example(name), args)
    }

    fn start_binary(binary: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example server");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the example server did not start: {}",
                String::from_utf8_lossy(&stderr.lock().unwrap_or_else(|e| e.into_inner()))
            );
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split(';').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// A libpq connection string for the default user and password, plus `extra`.
    pub(crate) fn conninfo(&self, extra: &str) -> String {
        self.conninfo_as(USER, PASSWORD, extra)
    }

    /// A libpq connection string for `user` and `password`, plus `extra`.
    pub(crate) fn conninfo_as(&self, user: &str, password: &str, extra: &str) -> String {
        format!(
            "host={} port={} user={user} password={password} dbname=demo connect_timeout=10 {extra}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// The server's peak resident set so far (VmHWM), in KiB.
    pub(crate) fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status of the example server");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// What the server wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        // SIGTERM to exactly this child (by its pid), so that it removes its scratch database;
        // SIGKILL if it has not exited within 5 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `input` on stdin and PG* variables cleared; kills it after `timeout_s`.
pub(crate) fn run(cmd: &mut Command, input: &str, timeout_s: u64) -> Output {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cmd.get_program().to_string_lossy()));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            panic!(
                "{} timed out after {timeout_s} s\n--- stdout\n{}\n--- stderr\n{}",
                cmd.get_program().to_string_lossy(),
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// stdout and stderr of `out`, for assertion messages.
pub(crate) fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
