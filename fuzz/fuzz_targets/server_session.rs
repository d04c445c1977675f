//! Arbitrary bytes from a "client", in chunks, through a [`Server`]: `receive`, then
//! `poll_event` until `Ok(None)`, then `poll_transmit`, as the run-loop contract says. The
//! application answers every event with a scripted policy: it accepts or refuses encryption,
//! authenticates, and answers each frontend message generically (Query with CommandComplete and
//! ReadyForQuery, Parse with ParseComplete, Bind with BindComplete, Describe with NoData, Execute
//! with CommandComplete or PortalSuspended, Close with CloseComplete, Sync with ReadyForQuery,
//! FunctionCall with a result and ReadyForQuery, COPY in both directions...). Every one of those
//! answers must be accepted: the server hands out a message only when it can be answered.
//!
//! Input layout: byte 0 is the policy, byte 1 the chunk size (0: everything at once), the rest is
//! the stream the client sent.
//!
//! - bits 0-1: authentication: 0 trust, 1 SCRAM-SHA-256 (-PLUS over TLS), 2 MD5, 3 cleartext;
//! - bit 2: newest protocol 3.2 (else 3.0);
//! - bit 3: accept SSLRequest (the TLS "handshake" then succeeds at once, with a certificate
//!   hash); else refuse it;
//! - bit 4: accept GSSENCRequest; else refuse it;
//! - bit 5: results carry a row, and Execute with a row limit is suspended;
//! - bit 6: a notice and a ParameterStatus after every answer;
//! - bit 7: after every chunk, an answer chosen at random (right or wrong: it succeeds or returns
//!   a `UsageError`, and never panics).
//!
//! A Query's text picks its answer: empty: EmptyQueryResponse; holding `/0`: an error; `COPY`
//! with `STDIN`: COPY FROM STDIN; other `COPY`: COPY TO STDOUT; `BEGIN` starts a transaction
//! (`T`, `E` after an error), `COMMIT`, `ROLLBACK` and `END` end it; anything else: a result. A
//! Parse whose query holds `/0` or `no_such` fails, and the server discards what follows until
//! Sync. (The captures used as seeds say `SELECT 1/0` and `SELECT no_such_column`.)
//!
//! Checks: no panic; the server never holds more undecoded bytes than it was given; an error is
//! returned again by every later `poll_event`, even after more input, and every answer is then
//! refused with `UsageError::Closed`.
#![no_main]

use std::hint::black_box;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgproto::auth::{md5, ScramVerifier};
use pgproto::{
    CopyResponse, ErrorFields, FieldCode, FieldDescription, Format, FormatCodes, FrontendMessage,
    ProtocolVersion, RowDescription, Server, ServerAuth, ServerConfig, ServerEvent, Target,
    TransactionStatus, UsageError,
};

fn verifier() -> ScramVerifier {
    static V: OnceLock<ScramVerifier> = OnceLock::new();
    V.get_or_init(|| {
        ScramVerifier::new("pencil", b"0123456789abcdef", 4096).expect("a valid verifier")
    })
    .clone()
}

fn config(max_3_2: bool) -> std::sync::Arc<ServerConfig> {
    static C: OnceLock<[std::sync::Arc<ServerConfig>; 2]> = OnceLock::new();
    let c = C.get_or_init(|| {
        let mut old = ServerConfig::default();
        old.max_protocol_version = ProtocolVersion::V3_0;
        // A fixed secret: doomed exchanges and runs are reproducible.
        old.mock_auth_secret = [7; 32];
        let mut new = old.clone();
        new.max_protocol_version = ProtocolVersion::V3_2;
        [old.into(), new.into()]
    });
    c[usize::from(max_3_2)].clone()
}

fn fields(severity: &str, code: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, severity),
        (FieldCode::Code, code),
        (FieldCode::Message, "scripted"),
    ])
    .expect("valid fields")
}

fn row_description() -> RowDescription {
    RowDescription::new(&[FieldDescription {
        name: b"n",
        table_oid: 0,
        column_id: 0,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: Format::Text,
    }])
    .expect("a valid description")
}

/// The result of `tls_established` or `gss_established` right after accepting: success, or
/// `Closed` when accepting found plaintext bytes already buffered (CVE-2021-23214).
fn established(r: Result<(), UsageError>) {
    match r {
        Ok(()) | Err(UsageError::Closed) => {}
        Err(e) => panic!("{OK}: {e}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct App {
    s: Server,
    policy: u8,
    status: TransactionStatus,
}

const OK: &str = "the server refused a valid answer";

impl App {
    fn auth(&self) -> ServerAuth {
        match self.policy & 3 {
            0 => ServerAuth::Trust,
            1 => ServerAuth::Scram {
                verifier: Some(verifier()),
            },
            2 => ServerAuth::Md5 {
                stored: Some(md5::stored_hash("alice", "pencil")),
            },
            _ => ServerAuth::Password {
                stored: Some(md5::stored_hash("alice", "pencil")),
            },
        }
    }

    fn event(&mut self, e: ServerEvent) {
        let s = &mut self.s;
        match &e {
            ServerEvent::SslRequest => {
                let accept = self.policy & 8 != 0;
                s.accept_ssl(accept).expect(OK);
                if accept {
                    // With plaintext buffered behind the request, accepting already failed the
                    // connection (the error comes from poll_event): then this is refused.
                    established(s.tls_established(Some(vec![0xab; 32])));
                }
            }
            ServerEvent::GssEncRequest => {
                let accept = self.policy & 16 != 0;
                s.accept_gssenc(accept).expect(OK);
                if accept {
                    established(s.gss_established());
                }
            }
            ServerEvent::DirectTls => {
                black_box(s.take_buffered());
                s.tls_established(Some(vec![0xab; 32])).expect(OK);
            }
            ServerEvent::Startup { .. } => {
                let auth = self.auth();
                self.s.authenticate(auth).expect(OK);
            }
            ServerEvent::AuthResponse(_) => self.s.auth_succeeded().expect(OK),
            ServerEvent::Message(m) => {
                self.answer(m);
                if self.policy & 64 != 0 {
                    self.s.notice(&fields("NOTICE", "00000")).expect(OK);
                    self.s.parameter_status("TimeZone", "UTC").expect(OK);
                }
            }
            _ => {}
        }
        black_box(e);
    }

    fn ready(&mut self) {
        self.s.ready_for_query(self.status).expect(OK);
    }

    fn fail(&mut self, code: &str) {
        self.s.error_response(&fields("ERROR", code)).expect(OK);
        if self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
    }

    fn answer(&mut self, m: &FrontendMessage) {
        let rows = self.policy & 32 != 0;
        match m {
            FrontendMessage::Query(q) => {
                let sql = q.sql();
                let copy = CopyResponse::new(Format::Text, FormatCodes::default());
                if sql.is_empty() {
                    self.s.empty_query_response().expect(OK);
                } else if contains(sql, b"/0") {
                    self.fail("22012");
                } else if sql.starts_with(b"COPY") && contains(sql, b"STDIN") {
                    // The Query goes on with the client's CopyData, CopyDone or CopyFail.
                    self.s.copy_in_response(&copy).expect(OK);
                    return;
                } else if sql.starts_with(b"COPY") {
                    self.s.copy_out_response(&copy).expect(OK);
                    self.s.copy_data(b"1\n").expect(OK);
                    self.s.copy_done().expect(OK);
                    self.s.command_complete("COPY 1").expect(OK);
                } else {
                    if sql.starts_with(b"BEGIN") {
                        self.status = TransactionStatus::InTransaction;
                    } else if [&b"COMMIT"[..], b"ROLLBACK", b"END"]
                        .iter()
                        .any(|w| sql.starts_with(w))
                    {
                        self.status = TransactionStatus::Idle;
                    }
                    if rows {
                        self.s.row_description(&row_description()).expect(OK);
                        self.s.data_row(&[Some(b"1")]).expect(OK);
                    }
                    self.s.command_complete("SELECT 1").expect(OK);
                }
                self.ready();
            }
            FrontendMessage::Parse(p) => {
                if contains(p.query(), b"/0") || contains(p.query(), b"no_such") {
                    self.fail("42703");
                } else {
                    self.s.parse_complete().expect(OK);
                }
            }
            FrontendMessage::Bind(_) => self.s.bind_complete().expect(OK),
            FrontendMessage::Describe(d) => {
                if d.target() == Target::Statement {
                    self.s.parameter_description(&[23]).expect(OK);
                }
                if rows {
                    self.s.row_description(&row_description()).expect(OK);
                } else {
                    self.s.no_data().expect(OK);
                }
            }
            FrontendMessage::Execute(e) => {
                if rows {
                    self.s.data_row(&[Some(b"1"), None]).expect(OK);
                }
                if rows && e.max_rows() > 0 {
                    self.s.portal_suspended().expect(OK);
                } else {
                    self.s.command_complete("SELECT 1").expect(OK);
                }
            }
            FrontendMessage::Close(_) => self.s.close_complete().expect(OK),
            FrontendMessage::Sync => self.ready(),
            FrontendMessage::Flush => {}
            FrontendMessage::FunctionCall(_) => {
                self.s.function_call_response(Some(b"42")).expect(OK);
                self.ready();
            }
            FrontendMessage::CopyData(_) => {}
            FrontendMessage::CopyDone => {
                self.s.command_complete("COPY 1").expect(OK);
                self.ready();
            }
            FrontendMessage::CopyFail(_) => {
                self.fail("57014");
                self.ready();
            }
            other => panic!("the server handed out {other:?} to answer"),
        }
    }

    /// An answer chosen by `k`, right or wrong for the current state.
    fn probe(&mut self, k: usize) {
        let s = &mut self.s;
        let r: Result<(), UsageError> = match k % 12 {
            0 => s.ready_for_query(TransactionStatus::Idle),
            1 => s.data_row(&[None]),
            2 => s.command_complete("SELECT 0"),
            3 => s.parse_complete(),
            4 => s.bind_complete(),
            5 => s.no_data(),
            6 => s.error_response(&fields("ERROR", "XX000")),
            7 => s.copy_data(b"x"),
            8 => s.copy_done(),
            9 => s.authenticate(ServerAuth::Trust),
            10 => s.accept_ssl(false),
            _ => s.notification(1, "c", "p"),
        };
        black_box(r.ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let [policy, chunk, ref input @ ..] = *data else {
        return;
    };
    let mut app = App {
        s: Server::new(config(policy & 4 != 0)),
        policy,
        status: TransactionStatus::Idle,
    };
    let chunk = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk as usize
    };
    let mut fed = 0;
    for (i, piece) in input.chunks(chunk).enumerate() {
        app.s.receive(black_box(piece));
        fed += piece.len();
        loop {
            match app.s.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    app.event(e)
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)), Err(e.clone()), "error is not sticky");
                    app.s.receive(&input[fed..]);
                    app.s.receive_eof();
                    assert_eq!(
                        app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)),
                        Err(e.clone()),
                        "error is not sticky after more input"
                    );
                    assert!(!app.s.is_ready());
                    let closed = Err(UsageError::Closed);
                    assert_eq!(app.s.ready_for_query(TransactionStatus::Idle), closed);
                    assert_eq!(app.s.data_row(&[None]), closed);
                    assert_eq!(app.s.notice(&fields("NOTICE", "00000")), closed);
                    assert_eq!(app.s.authenticate(ServerAuth::Trust), closed);
                    // The FATAL ErrorResponse (if any) can still be flushed.
                    while let Some(b) = app.s.poll_transmit() {
                        black_box(b);
                    }
                    assert!(app.s.poll_transmit().is_none());
                    black_box(e);
                    return;
                }
            }
        }
        assert!(
            app.s.buffered_len() <= fed,
            "the server holds {} undecoded bytes but was given {fed}",
            app.s.buffered_len()
        );
        if policy & 128 != 0 {
            app.probe(i + piece.len());
        }
        while let Some(b) = app.s.poll_transmit() {
            assert!(!b.is_empty(), "poll_transmit returned empty bytes");
            black_box(b);
        }
    }
    // The client hangs up.
    app.s.receive_eof();
    loop {
        match app.s.poll_event() {
            Ok(Some(e)) => {
                let e = e.into_owned();
                app.event(e)
            }
            Ok(None) => break,
            Err(e) => {
                assert_eq!(app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)), Err(e), "error is not sticky after EOF");
                break;
            }
        }
    }
    while let Some(b) = app.s.poll_transmit() {
        black_box(b);
    }
});
