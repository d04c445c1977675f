//! A `Client` and a `Server` of this crate talking to each other in memory, both read
//! through their borrowed events only, with right and wrong answers and commands.
//!
//! The fuzz input chooses the configuration, the client's commands, the server's answers and
//! how the bytes are cut into reads. Every event of both machines is read in its borrowed form
//! (`ClientEvent<BackendMessage<'_>>`, `ServerEvent<FrontendMessage<'_>>`), every field
//! of every borrowed message included, and never made owned.
//!
//! Input layout: byte 0 is the configuration, byte 1 the default read size (0: each transfer
//! in one read), the rest a script read one byte at a time (zeros once it runs out).
//!
//! - bits 0-1: authentication: 0 trust, 1 SCRAM-SHA-256 (-PLUS over TLS), 2 MD5, 3 cleartext,
//!   for user `alice` with password `pencil`;
//! - bit 2: the client asks for protocol 3.2; bit 3: the server offers 3.2 (else 3.0);
//! - bit 4: the client sends SSLRequest; bit 5: the server accepts it;
//! - bit 6: the client has the wrong password;
//! - bit 7: the server may add a notice, a notification or a ParameterStatus after an answer.
//!
//! Script: the low four bits of each byte are a client command (Query, Parse, Bind, Describe,
//! Execute, Close, Sync, Flush, FunctionCall, CopyData, CopyDone, CopyFail, with arguments
//! from the next bytes), or a step of the pair (with a read size from the next byte), or a
//! drive until nothing moves. The server answers each message completely, with variations
//! chosen by the next byte (success or error, how many rows, PortalSuspended). At the end:
//! CopyDone if a COPY FROM STDIN is open, a Sync, and a drive. While a `COPY IN` Query is
//! outstanding, the application sends only CopyData, CopyDone or CopyFail (any other command
//! becomes CopyDone), as the server ignores a Sync during COPY FROM STDIN.
//!
//! The high four bits `h` of a script byte make things go wrong (a byte below 16 never does):
//!
//! - a command byte with `h` odd is sent as it is, at whatever time: during COPY FROM STDIN
//!   (where the `Client` must refuse anything but COPY data), before a `COPY IN` Query is
//!   answered (the `Client` cannot know: it sends, and the server then fails the session as
//!   PostgreSQL does), CopyData, CopyDone or CopyFail with no COPY open (refused);
//! - `h` of 2 or more arms a wrong answer, described by the next two script bytes (see
//!   `server_app`): with a command byte, the server's application tries it in the middle of
//!   its next answer; with a step byte, at once (usually with no request in flight).
//!
//! Checks: no panic; a command either side refuses (`UsageError`) queues no bytes; each side's
//! error is returned again by every later `poll_event`, even after more input, and the
//! client's commands are then refused; the pair settles. The server machine may fail only on
//! messages the client sent before it learnt that a COPY FROM STDIN (or CopyBoth) had begun
//! (PostgreSQL ends the session then too); the client may fail only on the FATAL that refuses
//! a wrong password, or after the server closed the connection. Anything else the other side
//! accepted is a disagreement. When neither side failed and both are connected: every request
//! the client made was answered or skipped, none is pending, and both agree on the transaction
//! status.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::OnceLock;

use crate::auth::{md5, ScramVerifier};
use crate::{
    BackendMessage, Bind, Client, ClientConfig, ClientEvent, Encryption, Error, ErrorFields,
    FieldCode, FieldDescription, Format, FunctionCall, ProtocolVersion, RowDescription, Server,
    ServerAuth, ServerConfig, Target, TransactionStatus, UsageError,
};

mod server_app;

use server_app::{CopyOpen, Wrong};

/// The SCRAM iteration count of the pair's verifier: low, so that runs stay fast.
const PAIR_ITERATIONS: u32 = 16;
const OK: &str = "the server refused a valid answer";
const END_POINT: [u8; 32] = [0xab; 32];
/// The statements the client sends; the server answers by their text.
const SQL: [&str; 7] = [
    "SELECT 1", "", "FAIL", "COPY IN", "COPY OUT", "BEGIN", "COMMIT",
];

fn verifier() -> ScramVerifier {
    static V: OnceLock<ScramVerifier> = OnceLock::new();
    V.get_or_init(|| {
        ScramVerifier::new("pencil", b"0123456789abcdef", PAIR_ITERATIONS)
            .expect("a valid verifier")
    })
    .clone()
}

fn fields(severity: &str, code: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, severity),
        (FieldCode::Code, code),
        (FieldCode::Message, "scripted"),
    ])
    .expect("valid fields")
}

/// A RowDescription of `columns` int4 columns.
fn row_description(columns: usize) -> RowDescription {
    let field = FieldDescription {
        name: b"n",
        table_oid: 0,
        column_id: 0,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: Format::Text,
    };
    RowDescription::new(&vec![field; columns]).expect("a valid description")
}

/// The script: one byte at a time, zeros once it runs out.
struct Script<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// What a client event asks of the application.
enum Act {
    Nothing,
    Tls,
    Gss,
    /// A response or a skip for this request; `true` if it starts the client's COPY data
    /// stream (COPY FROM STDIN or CopyBoth).
    Answered(u64, bool),
}

/// Reads every field of a borrowed backend message; whether it starts the client's COPY data
/// stream.
fn read_backend(m: BackendMessage<'_>) -> bool {
    match m {
        BackendMessage::DataRow(row) => {
            black_box(row.len());
            // Values are checked as they are read; a bad one ends the row, not the session.
            for c in row.columns() {
                let _ = black_box(c);
            }
            false
        }
        BackendMessage::CopyData(data) => {
            black_box(data.data());
            false
        }
        m => {
            let copy_in = matches!(
                m,
                BackendMessage::CopyInResponse(_) | BackendMessage::CopyBothResponse(_)
            );
            black_box(m);
            copy_in
        }
    }
}

struct Pair {
    c: Client,
    s: Server,
    ctx: u8,
    /// The server's transaction status, as its application keeps it.
    status: TransactionStatus,
    /// The client's COPY data stream is open (as far as its application knows).
    copy_in: bool,
    /// A `COPY IN` Query sent and not yet answered. The application sends nothing else
    /// until its COPY is over: the server ignores a Sync sent during COPY FROM STDIN (as
    /// PostgreSQL does), which would then never be answered.
    copy_pending: bool,
    cerr: Option<Error>,
    serr: Option<Error>,
    requests: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    /// Bytes taken from the client (to check that a refused command queues none) and not yet
    /// given to the server; the same the other way.
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// The wrong answer the server's application tries during its next answer.
    wrong: Option<Wrong>,
    /// How many calls of the current right answer were made (where `wrong` goes).
    calls: u8,
    /// A wrong answer was accepted: right answers may now meet another column count.
    diverged: bool,
    /// The request in flight is a simple Query (not an Execute): a COPY it starts ends with
    /// ReadyForQuery.
    query_in_flight: bool,
    /// The COPY FROM STDIN or CopyBoth the server's application is in, if any.
    copy: Option<CopyOpen>,
    /// COPY data streams the server opened, and those the client saw open.
    copies_started: u64,
    copies_seen: u64,
    /// `copies_seen` when the client's bytes now being given to the server were taken.
    batch_seen: u64,
    /// The server sent a FATAL and closed (the application's `fatal()`, or the machine's own
    /// after a failure); the client is then told of EOF.
    server_closed: bool,
    eof_sent: bool,
    /// The client was connected once.
    connected: bool,
}

impl Pair {
    fn auth(&self) -> ServerAuth {
        match self.ctx & 3 {
            0 => ServerAuth::Trust,
            1 => ServerAuth::Scram {
                verifier: Some(verifier()),
            },
            2 => ServerAuth::Md5 {
                stored: Some(md5::stored_hash("alice", "pencil")),
            },
            _ => ServerAuth::Password {
                stored: Some(verifier().to_string()),
            },
        }
    }

    /// Moves what the client queued to `to_server`.
    fn take_client_output(&mut self) {
        while let Some(b) = self.c.poll_transmit() {
            assert!(!b.is_empty(), "the client transmitted empty bytes");
            self.to_server.extend_from_slice(&b);
        }
    }

    /// Moves what the server queued to `to_client`.
    fn take_server_output(&mut self) {
        while let Some(b) = self.s.poll_transmit() {
            assert!(!b.is_empty(), "the server transmitted empty bytes");
            self.to_client.extend_from_slice(&b);
        }
    }

    /// Moves the client's bytes to the server, then the server's to the client, in reads of
    /// `chunk` bytes (0: one read), draining events after each read. Whether bytes moved.
    fn step(&mut self, chunk: usize, script: &mut Script<'_>) -> bool {
        self.take_client_output();
        self.batch_seen = self.copies_seen;
        let bytes = std::mem::take(&mut self.to_server);
        let size = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        for piece in bytes.chunks(size) {
            self.s.receive(piece);
            self.drain_server(script);
        }
        self.drain_server(script);
        let mut moved = !bytes.is_empty();
        self.take_server_output();
        let bytes = std::mem::take(&mut self.to_client);
        let size = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        for piece in bytes.chunks(size) {
            self.c.receive(piece);
            self.drain_client();
        }
        self.drain_client();
        moved |= !bytes.is_empty();
        if (self.server_closed || self.serr.is_some()) && !self.eof_sent {
            // Everything the server sent is delivered: the connection ends.
            self.eof_sent = true;
            self.c.receive_eof();
            self.drain_client();
            moved = true;
        }
        moved
    }

    fn drive(&mut self, chunk: usize, script: &mut Script<'_>) {
        for _ in 0..1000 {
            if !self.step(chunk, script) {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    /// Drives, ending with CopyDone every COPY FROM STDIN (or CopyBoth) that starts, until
    /// nothing moves. (A wrong answer may start one more COPY at the end of another.)
    fn settle(&mut self, chunk: usize, script: &mut Script<'_>) {
        for _ in 0..8 {
            self.drive(chunk, script);
            if !self.copy_in {
                return;
            }
            black_box(self.c.copy_done().ok());
            self.copy_in = false;
        }
        panic!("COPY after COPY");
    }

    /// Whether the client may fail with `e` now: on a FATAL during start-up (refusing a wrong
    /// password, or the application's), or once the server closed the connection. Anything else is a disagreement.
    fn client_may_fail(&self, e: &Error) -> bool {
        let refused = self.ctx & 64 != 0 || self.server_closed;
        self.eof_sent || (refused && !self.connected && matches!(e, Error::Server(_)))
    }

    fn drain_client(&mut self) {
        if let Some(e) = &self.cerr {
            assert_eq!(
                self.c.poll_event().err().as_ref(),
                Some(e),
                "client error not sticky"
            );
            return;
        }
        loop {
            self.connected |= self.c.is_ready();
            let act = match self.c.poll_event() {
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(
                        self.c.poll_event().err().as_ref(),
                        Some(&e),
                        "client error not sticky"
                    );
                    assert!(self.c.query("SELECT 1").is_err());
                    assert!(self.c.sync().is_err());
                    assert!(!self.c.is_ready());
                    assert!(
                        self.client_may_fail(&e),
                        "the client failed on what the server accepted: {e}"
                    );
                    self.cerr = Some(e);
                    return;
                }
                Ok(Some(e)) => match e {
                    ClientEvent::SslResponse { accepted } => {
                        if accepted {
                            Act::Tls
                        } else {
                            Act::Nothing
                        }
                    }
                    ClientEvent::GssEncResponse { accepted } => {
                        if accepted {
                            Act::Gss
                        } else {
                            Act::Nothing
                        }
                    }
                    ClientEvent::Response { request, message } => {
                        Act::Answered(request.get(), read_backend(message))
                    }
                    ClientEvent::Skipped { request } => Act::Answered(request.get(), false),
                    other => {
                        black_box(other);
                        Act::Nothing
                    }
                },
            };
            match act {
                Act::Nothing => {}
                Act::Tls => {
                    let _ = self.c.tls_established(Some(END_POINT.to_vec()));
                }
                Act::Gss => {
                    let _ = self.c.gss_established();
                }
                Act::Answered(id, copy_in) => {
                    assert!(
                        self.requests.contains(&id),
                        "an answer to request {id}, which was never made"
                    );
                    self.answered.insert(id);
                    if copy_in {
                        self.copies_seen += 1;
                        self.copy_in = true;
                        self.copy_pending = false;
                    }
                }
            }
        }
    }

    /// A client command chosen by `op`, its arguments from the script; `anytime`: sent even
    /// where the application would wait or send COPY data instead. It may be refused (with
    /// `UsageError`, and then nothing is queued), never panic.
    fn command(&mut self, op: u8, anytime: bool, script: &mut Script<'_>) {
        if self.copy_pending && !anytime {
            // Wait for the COPY to start (or fail) first.
            self.drive(0, script);
            self.copy_pending = false;
        }
        let op = if self.copy_in && !anytime && !(9..=11).contains(&op) {
            10
        } else {
            op
        };
        // What the client queued so far goes, so that a refused command can be seen to queue
        // nothing.
        self.take_client_output();
        let name = |b: u8| if b & 1 == 0 { "" } else { "s" };
        let target = |b: u8| {
            if b & 2 == 0 {
                Target::Statement
            } else {
                Target::Portal
            }
        };
        let c = &mut self.c;
        let id = match op {
            0 => {
                let sql = SQL[usize::from(script.byte()) % SQL.len()];
                let id = c.query(sql);
                self.copy_pending |= id.is_ok() && sql == "COPY IN";
                id.map(Some)
            }
            1 => {
                let b = script.byte();
                c.parse(name(b), SQL[usize::from(b >> 1) % SQL.len()], &[23])
                    .map(Some)
            }
            2 => {
                let b = script.byte();
                let values = &[Some(&b"1"[..])];
                let bind = Bind::new("", name(b), &[], values, &[]).expect("a valid Bind");
                c.bind(&bind).map(Some)
            }
            3 => {
                let b = script.byte();
                c.describe(target(b), name(b)).map(Some)
            }
            4 => c.execute("", i32::from(script.byte() % 3)).map(Some),
            5 => {
                let b = script.byte();
                c.close(target(b), name(b)).map(Some)
            }
            6 => c.sync().map(Some),
            7 => c.flush().map(|()| None),
            8 => {
                let call = FunctionCall::new(42, &[], &[Some(&b"7"[..])], Format::Binary)
                    .expect("a valid FunctionCall");
                c.function_call(&call).map(Some)
            }
            9 => c.copy_data(b"1\t2\n").map(|()| None),
            10 | 11 => {
                let r = if op == 10 {
                    c.copy_done()
                } else {
                    c.copy_fail("stopped")
                };
                match r {
                    Ok(()) => self.copy_in = false,
                    // The server ended the COPY (with an error) first.
                    Err(UsageError::NotAllowed { .. }) => self.copy_in = false,
                    Err(_) => {}
                }
                r.map(|()| None)
            }
            _ => unreachable!(),
        };
        match id {
            Ok(Some(id)) => {
                assert!(self.requests.insert(id.get()), "a request id used twice");
            }
            Ok(None) => {}
            Err(e) => {
                black_box(e);
                assert!(
                    self.c.poll_transmit().is_none(),
                    "the client refused command {op} but queued bytes"
                );
            }
        }
    }
}

pub(super) fn run(data: &[u8]) {
    let [ctx, chunk, ref rest @ ..] = *data else {
        return;
    };
    let mut script = Script { bytes: rest, at: 0 };
    let mut config = ClientConfig::new("alice");
    config.database = Some("db".into());
    if ctx & 4 != 0 {
        config.max_protocol_version = ProtocolVersion::V3_2;
    }
    if ctx & 16 != 0 {
        config.encryption = Encryption::Ssl { required: false };
    }
    let password: &[u8] = if ctx & 64 != 0 { b"Pencil" } else { b"pencil" };
    config.password = Some(password.to_vec());
    // Few SCRAM iterations (the verifier's below): the key derivation would otherwise take
    // most of each run. The exchange is the same whatever the count.
    config.min_scram_iterations = PAIR_ITERATIONS;
    config.max_scram_iterations = 4096;
    let server_config = ServerConfig {
        mock_auth_secret: [7; 32],
        max_protocol_version: if ctx & 8 != 0 {
            ProtocolVersion::V3_2
        } else {
            ProtocolVersion::V3_0
        },
        ..ServerConfig::default()
    };
    let mut p = Pair {
        c: Client::new(config).expect("a valid configuration"),
        s: Server::new(server_config),
        ctx,
        status: TransactionStatus::Idle,
        copy_in: false,
        copy_pending: false,
        cerr: None,
        serr: None,
        requests: BTreeSet::new(),
        answered: BTreeSet::new(),
        to_server: Vec::new(),
        to_client: Vec::new(),
        wrong: None,
        calls: 0,
        diverged: false,
        query_in_flight: false,
        copy: None,
        copies_started: 0,
        copies_seen: 0,
        batch_seen: 0,
        server_closed: false,
        eof_sent: false,
        connected: false,
    };
    let chunk = usize::from(chunk);
    p.drive(chunk, &mut script);
    while !script.done() {
        let b = script.byte();
        let (op, h) = (b % 16, b >> 4);
        if h >= 2 {
            let wrong = Wrong::read(&mut script);
            if op <= 11 {
                p.wrong = Some(wrong);
            } else {
                p.try_wrong_now(wrong);
            }
        }
        match op {
            0..=11 => p.command(op, h & 1 != 0, &mut script),
            12 | 13 => {
                let n = usize::from(script.byte());
                p.step(n, &mut script);
            }
            14 => p.drive(chunk, &mut script),
            _ => {
                p.step(chunk, &mut script);
            }
        }
    }
    p.settle(chunk, &mut script);
    if let Ok(id) = p.c.sync() {
        p.requests.insert(id.get());
    }
    p.settle(chunk, &mut script);

    if p.cerr.is_none() && p.serr.is_none() && !p.server_closed && p.c.is_ready() && p.s.is_ready()
    {
        let unanswered: Vec<_> = p.requests.difference(&p.answered).collect();
        assert!(
            unanswered.is_empty(),
            "requests never answered: {unanswered:?}"
        );
        assert_eq!(p.c.pending_requests(), 0, "requests still pending");
        assert_eq!(
            p.c.transaction_status(),
            Some(p.s.transaction_status()),
            "the two sides disagree on the transaction status"
        );
    }
}
