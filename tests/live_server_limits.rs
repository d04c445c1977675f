//! The `server` example under clients that do not play along, over raw sockets (`--no-tls
//! --auth trust`): `--startup-timeout` closes connections that do not finish start-up,
//! `--max-connections` refuses the extra ones with FATAL 53300 (connections in start-up
//! count; a silent one beyond the cap gets it when it times out), a client that does not read its results is not read from (and stays connected), and
//! a listener that does not read its notifications is disconnected without slowing NOTIFY.
//! Small versions of the targets of `scripts/load.py`, which measures the full ones.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use pgproto::{BackendDecoder, BackendMessage, ErrorFields};
use support::demo_server::DemoServer;
use support::wire::{query, ssl_request, startup, terminate};

/// The bound every test holds the server's peak resident set to.
const LIMIT_KIB: u64 = 64 * 1024;

fn start(extra: &[&str]) -> DemoServer {
    let mut args = vec!["--no-tls", "--auth", "trust"];
    args.extend_from_slice(extra);
    DemoServer::start(&args)
}

fn demo_startup() -> Vec<u8> {
    startup(3, 0, &[("user", "demo"), ("database", "demo")])
}

/// A connection that reads backend messages with a deadline.
struct Conn {
    sock: TcpStream,
    dec: BackendDecoder,
    eof: bool,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        let sock = TcpStream::connect(addr).expect("connect to the example server");
        Self {
            sock,
            dec: BackendDecoder::new(),
            eof: false,
        }
    }

    /// Logged in (trust), or the error that refused it.
    fn login(addr: SocketAddr) -> Result<Self, ErrorFields> {
        let mut c = Self::open(addr);
        c.send(&demo_startup());
        loop {
            match c.next(Duration::from_secs(20)) {
                Some(BackendMessage::ReadyForQuery(_)) => return Ok(c),
                Some(BackendMessage::ErrorResponse(f)) => return Err(f),
                Some(_) => {}
                None => panic!("the server closed during start-up"),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write to the server");
    }

    /// The next message; `None` at end of file.
    fn next(&mut self, timeout: Duration) -> Option<BackendMessage<'static>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(m) = self.dec.next().expect("well-formed backend messages") {
                return Some(m);
            }
            if self.eof {
                return None;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no answer within {timeout:?}"));
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.dec.receive(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// Runs `sql` and returns the first value of its first row.
    fn value(&mut self, sql: &str) -> Option<String> {
        self.send(&query(sql));
        let mut first = None;
        loop {
            match self.next(Duration::from_secs(30)) {
                Some(BackendMessage::DataRow(r)) if first.is_none() => {
                    first = r
                        .columns()
                        .next()
                        .and_then(|c| c.expect("a well-formed value"))
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                }
                Some(BackendMessage::ErrorResponse(f)) => panic!("{sql}: {f:?}"),
                Some(BackendMessage::ReadyForQuery(_)) => return first,
                Some(_) => {}
                None => panic!("{sql}: the server closed"),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// SQLSTATE and message of an ErrorResponse.
fn code_and_message(f: &ErrorFields) -> (String, String) {
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    (text(f.code()), text(f.message()))
}

/// How long until the server closes `sock` (reading and dropping what it sends), at most `max`.
fn closed_after(sock: &mut TcpStream, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < max {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match sock.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn start_up_that_does_not_finish_in_time_is_closed() {
    let server = start(&["--startup-timeout", "1"]);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(&demo_startup()[..6]).unwrap();
    // SSLRequest answered `N` (no TLS), then nothing.
    let mut after_ssl = TcpStream::connect(server.addr).unwrap();
    after_ssl.write_all(&ssl_request()).unwrap();
    let mut ready = Conn::login(server.addr).expect("log in");
    for (name, sock) in [
        ("silent", &mut silent),
        ("half a start-up packet", &mut half),
        ("after SSLRequest", &mut after_ssl),
    ] {
        let took = closed_after(sock, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name}: still open after 10 s"));
        assert!(
            took < Duration::from_secs(5),
            "{name}: closed after {took:?}, the timeout is 1 s"
        );
    }
    // A connection that finished start-up is not subject to the timeout.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ready.value("SELECT 1").as_deref(), Some("1"));
}

#[test]
fn connections_beyond_the_cap_get_fatal_53300() {
    let server = start(&["--max-connections", "2"]);
    let mut a = Conn::login(server.addr).expect("first login");
    let b = Conn::login(server.addr).expect("second login");
    let refused = Conn::login(server.addr)
        .err()
        .expect("the third is refused");
    assert_eq!(
        code_and_message(&refused),
        ("53300".into(), "sorry, too many clients already".into())
    );
    // Closed after the FATAL.
    let mut third = Conn::open(server.addr);
    third.send(&demo_startup());
    assert!(matches!(
        third.next(Duration::from_secs(10)),
        Some(BackendMessage::ErrorResponse(_))
    ));
    assert!(third.next(Duration::from_secs(10)).is_none(), "closed");
    // The two keep working; a connection still in start-up counts.
    assert_eq!(a.value("SELECT 1").as_deref(), Some("1"));
    drop(b);
    let silent = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let refused = Conn::login(server.addr)
        .err()
        .expect("refused: the silent one counts");
    assert_eq!(code_and_message(&refused).0, "53300");
    drop(silent);
    // Its slot comes back.
    let start = Instant::now();
    let back = loop {
        match Conn::login(server.addr) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(f) => panic!("no slot 10 s after a close: {f:?}"),
        }
    };
    drop(back);
    assert_eq!(a.value("SELECT 2").as_deref(), Some("2"));
}

#[test]
fn a_silent_connection_beyond_the_cap_is_told_why_when_it_times_out() {
    let server = start(&["--max-connections", "1", "--startup-timeout", "1"]);
    let mut within = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut beyond = Conn::open(server.addr);
    // Within the cap: closed without a word, as PostgreSQL after authentication_timeout.
    let mut got = Vec::new();
    within
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    within.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "{got:?}");
    // Beyond it: FATAL 53300, then closed.
    match beyond.next(Duration::from_secs(10)) {
        Some(BackendMessage::ErrorResponse(f)) => assert_eq!(
            code_and_message(&f),
            ("53300".into(), "sorry, too many clients already".into())
        ),
        other => panic!("expected FATAL 53300, got {other:?}"),
    }
    assert!(beyond.next(Duration::from_secs(10)).is_none(), "closed");
}

#[test]
fn bad_limit_flags_are_usage_errors() {
    for (flag, value) in [
        ("--max-connections", "0"),
        ("--max-connections", "many"),
        ("--startup-timeout", "0"),
        ("--startup-timeout", "-1"),
    ] {
        let out = Command::new(support::demo_server::binary())
            .args([flag, value, "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

/// The rows of each query of the pipeline below: 20,000 rows of about 210 bytes.
const ROWS_SQL: &str = "WITH RECURSIVE t(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM t \
                        WHERE x < 20000) SELECT x, printf('%.200c', 'r') FROM t";

#[test]
fn a_client_that_does_not_read_its_results_is_not_read_from() {
    let server = start(&[]);
    let mut hog = Conn::login(server.addr).expect("log in");
    // 100 results of about 4.3 MB each: 430 MB if the server buffered them.
    let pipeline: Vec<u8> = (0..100).flat_map(|_| query(ROWS_SQL)).collect();
    hog.send(&pipeline);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let mut other = Conn::login(server.addr).expect("another client logs in");
        assert_eq!(other.value("SELECT 1").as_deref(), Some("1"));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "answered in {:?}",
            t.elapsed()
        );
        other.send(&terminate());
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak = server.peak_kib();
    assert!(peak < LIMIT_KIB, "peak {peak} KiB while nobody read");
    // Still connected: the first results come, whole and in order.
    for _ in 0..3 {
        let mut rows = 0;
        loop {
            match hog.next(Duration::from_secs(60)) {
                Some(BackendMessage::DataRow(_)) => rows += 1,
                Some(BackendMessage::CommandComplete(c)) => {
                    assert_eq!(c.tag(), b"SELECT 20000");
                }
                Some(BackendMessage::ReadyForQuery(_)) => break,
                Some(BackendMessage::RowDescription(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(rows, 20_000);
    }
    // Going away mid-stream ends the connection's work; the server stays bounded.
    hog.sock.shutdown(Shutdown::Both).unwrap();
    drop(hog);
    let mut after = Conn::login(server.addr).expect("log in afterwards");
    assert_eq!(after.value("SELECT 3").as_deref(), Some("3"));
    assert!(server.peak_kib() < LIMIT_KIB);
}

#[test]
fn a_listener_that_does_not_read_is_disconnected_and_notify_never_waits() {
    let server = start(&[]);
    let mut listener = Conn::login(server.addr).expect("log in");
    listener.send(&query("LISTEN flood"));
    while !matches!(
        listener.next(Duration::from_secs(10)),
        Some(BackendMessage::ReadyForQuery(_))
    ) {}
    let mut notifier = Conn::login(server.addr).expect("log in");
    let one = query(&format!("NOTIFY flood, '{}'", "n".repeat(7_900)));
    // 3,000 notifications of 8 kB: 24 MB, more than the socket buffers and the mailbox.
    let mut succeeded = 0;
    for _ in 0..60 {
        let t = Instant::now();
        notifier.send(&one.repeat(50));
        let mut ready = 0;
        while ready < 50 {
            match notifier.next(Duration::from_secs(30)) {
                Some(BackendMessage::CommandComplete(_)) => succeeded += 1,
                Some(BackendMessage::ReadyForQuery(_)) => ready += 1,
                Some(BackendMessage::ErrorResponse(f)) => panic!("NOTIFY failed: {f:?}"),
                Some(_) => {}
                None => panic!("the notifier was disconnected"),
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "50 NOTIFYs took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(succeeded, 3_000);
    assert!(
        server.peak_kib() < LIMIT_KIB,
        "peak {} KiB",
        server.peak_kib()
    );
    // The listener's connection was ended: what it can still read ends in end of file.
    closed_after(&mut listener.sock, Duration::from_secs(30))
        .expect("the listener is disconnected");
    // Everyone else carries on.
    assert_eq!(notifier.value("SELECT 1").as_deref(), Some("1"));
}
