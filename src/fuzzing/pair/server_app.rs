//! The server's application of the pair: it answers every message completely (the right
//! answers, with variations), and tries wrong answers where the script armed one.
//!
//! A wrong answer is any backend message the `Server` API lets the application attempt, tried
//! before a chosen call of the right answer (or after its last): ParseComplete, BindComplete,
//! CloseComplete, ParameterDescription, RowDescription (of 0 to 2 columns), NoData, DataRow (of
//! 0 to 2 columns), CommandComplete, EmptyQueryResponse, PortalSuspended, an ERROR, an
//! ErrorResponse with severity FATAL, ReadyForQuery (with any status), FunctionCallResponse,
//! CopyInResponse, CopyOutResponse, CopyBothResponse, CopyData, CopyDone, a notice, a
//! notification, a ParameterStatus, or `fatal()`. If the `Server` refuses it, it must return a
//! `UsageError` and queue nothing, and the application goes on with the right answer. If it
//! accepts it, the message goes to the client, which must accept it too (checked where the
//! client's events are read); the application then ends the request it was answering with
//! whatever the `Server` still allows (`finish`), or waits for the client's COPY data.

use std::hint::black_box;

use super::{fields, row_description, Pair, Script, END_POINT, OK};
use crate::{
    CopyResponse, Error, Format, FrontendMessage, Server, ServerEvent, Target, TransactionStatus,
    UsageError,
};

/// A frontend message as the server's application keeps it, once every field of the
/// borrowed view has been read.
enum Msg {
    Query(Vec<u8>),
    Parse { fails: bool },
    Bind,
    Describe { statement: bool },
    Execute { max_rows: i32 },
    Close,
    Sync,
    Flush,
    FunctionCall,
    CopyData,
    CopyDone,
    CopyFail,
}

/// What a server event asks of the application.
enum Todo {
    Nothing,
    Ssl,
    Gss,
    DirectTls,
    Startup,
    AuthResponse,
    Answer(Msg),
}

/// Reads every field of a borrowed frontend message.
fn read_frontend(m: FrontendMessage<'_>) -> Msg {
    black_box(m.name());
    black_box(m.tag());
    match m {
        FrontendMessage::Parse(p) => {
            black_box(p.name());
            black_box(p.param_types().sum::<u32>());
            let q = p.query();
            Msg::Parse {
                fails: q == b"FAIL",
            }
        }
        FrontendMessage::Bind(b) => {
            black_box((b.portal(), b.statement()));
            black_box(b.param_formats().into_iter().count());
            black_box(
                b.params()
                    .into_iter()
                    .map(|v| v.map_or(0, <[u8]>::len))
                    .sum::<usize>(),
            );
            black_box(b.result_formats().into_iter().count());
            Msg::Bind
        }
        FrontendMessage::Describe(d) => {
            black_box(d.name());
            Msg::Describe {
                statement: d.target() == Target::Statement,
            }
        }
        FrontendMessage::Close(c) => {
            black_box((c.target(), c.name()));
            Msg::Close
        }
        FrontendMessage::Execute(e) => {
            black_box(e.portal());
            Msg::Execute {
                max_rows: e.max_rows(),
            }
        }
        FrontendMessage::Sync => Msg::Sync,
        FrontendMessage::Flush => Msg::Flush,
        FrontendMessage::Query(q) => Msg::Query(q.sql().to_vec()),
        FrontendMessage::CopyData(data) => {
            black_box(data);
            Msg::CopyData
        }
        FrontendMessage::CopyDone => Msg::CopyDone,
        FrontendMessage::Terminate => panic!("the server handed out Terminate to answer"),
        FrontendMessage::CopyFail(text) => {
            black_box(text);
            Msg::CopyFail
        }
        FrontendMessage::FunctionCall(f) => {
            black_box(f);
            Msg::FunctionCall
        }
        other => panic!("the server handed out {other:?} to answer"),
    }
}

/// The number of kinds of wrong answer (`Pair::attempt`).
const WRONG_KINDS: u8 = 23;

/// A wrong answer the application tries: which (`kind`), with what variation (`arg`: a
/// column count, a transaction status), before which call of the right answer (`at`; after
/// the last one if there are fewer).
#[derive(Debug, Clone, Copy)]
pub(super) struct Wrong {
    kind: u8,
    arg: u8,
    at: u8,
}

impl Wrong {
    /// Reads a wrong answer from the next two script bytes.
    pub(super) fn read(script: &mut Script<'_>) -> Self {
        let (a, b) = (script.byte(), script.byte());
        Self {
            kind: a % WRONG_KINDS,
            arg: a / WRONG_KINDS,
            at: b % 8,
        }
    }
}

/// The COPY data stream the client has open towards the server's application.
#[derive(Debug, Clone, Copy)]
pub(super) struct CopyOpen {
    /// CopyBoth: the server has its own stream to end.
    both: bool,
    /// Started by a simple Query (ReadyForQuery follows its end), not an Execute.
    by_query: bool,
    /// A CopyData of the client's was read: every Sync it pipelined before it learnt of the
    /// COPY came before, and was ignored.
    heard: bool,
}

/// A right answer was cut short: a wrong answer was accepted in its place.
struct Diverted;

impl Pair {
    pub(super) fn drain_server(&mut self, script: &mut Script<'_>) {
        if let Some(e) = &self.serr {
            assert_eq!(
                self.s.poll_event().err().as_ref(),
                Some(e),
                "server error not sticky"
            );
            return;
        }
        loop {
            let todo = match self.s.poll_event() {
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(
                        self.s.poll_event().err().as_ref(),
                        Some(&e),
                        "server error not sticky"
                    );
                    assert_eq!(
                        self.s.ready_for_query(TransactionStatus::Idle),
                        Err(UsageError::Closed)
                    );
                    assert!(!self.s.is_ready());
                    assert!(
                        self.server_may_fail(&e),
                        "the server failed on what the client sent: {e}"
                    );
                    self.serr = Some(e);
                    return;
                }
                Ok(Some(e)) => match e {
                    ServerEvent::SslRequest => Todo::Ssl,
                    ServerEvent::GssEncRequest => Todo::Gss,
                    ServerEvent::DirectTls => Todo::DirectTls,
                    ServerEvent::Startup { message, version } => {
                        black_box((message, version));
                        Todo::Startup
                    }
                    ServerEvent::AuthResponse(m) => {
                        black_box(m);
                        Todo::AuthResponse
                    }
                    ServerEvent::Message(m) => Todo::Answer(read_frontend(m)),
                    other => {
                        black_box(other);
                        Todo::Nothing
                    }
                },
            };
            let s = &mut self.s;
            match todo {
                Todo::Nothing => {}
                Todo::Ssl => {
                    let accept = self.ctx & 32 != 0;
                    s.accept_ssl(accept).expect(OK);
                    if accept {
                        s.tls_established(Some(END_POINT.to_vec())).expect(OK);
                    }
                }
                Todo::Gss => s.accept_gssenc(false).expect(OK),
                Todo::DirectTls => {
                    black_box(s.take_buffered());
                    s.tls_established(Some(END_POINT.to_vec())).expect(OK);
                }
                Todo::Startup => {
                    let auth = self.auth();
                    self.s.authenticate(auth).expect(OK);
                }
                Todo::AuthResponse => self.s.auth_succeeded().expect(OK),
                Todo::Answer(m) => {
                    self.answer(m, script.byte());
                    if self.ctx & 128 != 0 {
                        self.extra(script.byte());
                    }
                }
            }
        }
    }

    /// Whether the server may fail with `e`: on a wrong password, and on a message the client
    /// sent during COPY FROM STDIN (or CopyBoth) before it could know the COPY had begun (one
    /// pipelined behind the request the COPY answers), where PostgreSQL ends the session too.
    fn server_may_fail(&self, e: &Error) -> bool {
        let blind = self.copies_started > self.batch_seen;
        (self.ctx & 64 != 0 && matches!(e, Error::Auth(_)))
            || (blind && matches!(e, Error::UnexpectedMessage { .. }))
    }

    /// Answers `m` completely, with variations chosen by `k`; with the armed wrong answer, if
    /// any, tried on the way.
    fn answer(&mut self, m: Msg, k: u8) {
        match m {
            Msg::Query(_) => self.query_in_flight = true,
            Msg::Execute { .. } => self.query_in_flight = false,
            _ => {}
        }
        self.calls = 0;
        let diverted = self.right(m, k).is_err();
        if !diverted {
            if let Some(w) = self.wrong.take() {
                // Fewer calls than `at`: after the last one.
                if !self.attempt(w) {
                    return;
                }
            } else {
                return;
            }
        }
        self.finish();
    }

    /// One call of the right answer; the armed wrong answer goes first if it is due here.
    fn say(
        &mut self,
        call: impl FnOnce(&mut Server) -> Result<(), UsageError>,
    ) -> Result<(), Diverted> {
        if let Some(w) = self.wrong.filter(|w| w.at <= self.calls) {
            self.wrong = None;
            if self.attempt(w) {
                return Err(Diverted);
            }
        }
        self.calls += 1;
        call(&mut self.s).expect(OK);
        Ok(())
    }

    /// One DataRow of the right answer, of one column. After a wrong answer was accepted (a
    /// RowDescription or NoData of another count), the row has the count the `Server` expects:
    /// what an application that follows its own descriptions sends.
    fn row(&mut self, value: Option<&'static [u8]>) -> Result<(), Diverted> {
        let diverged = self.diverged;
        self.say(|s| match s.data_row(&[value]) {
            Err(UsageError::FieldCount { expected, .. }) if diverged => match expected {
                Some(n) => s.data_row(&vec![value; usize::from(n)]),
                None => Ok(()),
            },
            r => r,
        })
    }

    fn ready(&mut self) -> Result<(), Diverted> {
        let status = self.status;
        self.say(|s| s.ready_for_query(status))
    }

    fn fail(&mut self, code: &str) -> Result<(), Diverted> {
        self.say(|s| s.error_response(&fields("ERROR", code)))?;
        self.failed();
        Ok(())
    }

    /// An error was sent for the request in flight.
    fn failed(&mut self) {
        if self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
    }

    /// The right answer to `m`, with variations chosen by `k`.
    fn right(&mut self, m: Msg, k: u8) -> Result<(), Diverted> {
        let copy = CopyResponse::new(Format::Text, &[]).expect("a few column formats");
        match m {
            Msg::Query(sql) => {
                match &sql[..] {
                    b"" => self.say(Server::empty_query_response)?,
                    b"FAIL" => self.fail("42P01")?,
                    b"COPY IN" => {
                        // The Query goes on with the client's CopyData, CopyDone or CopyFail.
                        self.say(|s| s.copy_in_response(&copy))?;
                        self.copy_opened(false);
                        return Ok(());
                    }
                    b"COPY OUT" => {
                        self.say(|s| s.copy_out_response(&copy))?;
                        for _ in 0..k % 3 {
                            self.say(|s| s.copy_data(b"1\n"))?;
                        }
                        self.say(Server::copy_done)?;
                        self.say(|s| s.command_complete("COPY 1"))?;
                    }
                    _ if k & 1 == 1 => self.fail("22012")?,
                    _ => {
                        if sql.starts_with(b"BEGIN") {
                            self.status = TransactionStatus::InTransaction;
                        } else if sql.starts_with(b"COMMIT") {
                            self.status = TransactionStatus::Idle;
                        }
                        self.say(|s| s.row_description(&row_description(1)))?;
                        for _ in 0..(k >> 1) % 4 {
                            self.row(Some(b"1"))?;
                        }
                        self.say(|s| s.command_complete("SELECT 1"))?;
                    }
                }
                self.ready()
            }
            Msg::Parse { fails } => {
                if fails || k.is_multiple_of(8) {
                    self.fail("42601")
                } else {
                    self.say(Server::parse_complete)
                }
            }
            Msg::Bind => {
                if k.is_multiple_of(16) {
                    self.fail("26000")
                } else {
                    self.say(Server::bind_complete)
                }
            }
            Msg::Describe { statement } => {
                if statement {
                    self.say(|s| s.parameter_description(&[23]))?;
                }
                // A portal always has rows here (an Execute of it sends some, which its
                // Describe must announce); a statement may have none.
                if k & 1 == 0 || !statement {
                    self.say(|s| s.row_description(&row_description(1)))
                } else {
                    self.say(Server::no_data)
                }
            }
            Msg::Execute { max_rows } => {
                let rows = i32::from(k % 4);
                let limited = max_rows > 0 && rows >= max_rows;
                for i in 0..if limited { max_rows } else { rows } {
                    // One column, as `row_description(1)` announces.
                    let value: &[u8] = b"1";
                    self.row((i % 2 == 0).then_some(value))?;
                }
                if limited {
                    self.say(Server::portal_suspended)
                } else if k & 64 != 0 {
                    self.fail("22012")
                } else {
                    self.say(|s| s.command_complete("SELECT 1"))
                }
            }
            Msg::Close => self.say(Server::close_complete),
            Msg::Sync => self.ready(),
            Msg::Flush => Ok(()),
            Msg::CopyData => {
                if let Some(open) = &mut self.copy {
                    open.heard = true;
                }
                Ok(())
            }
            Msg::FunctionCall => {
                if k & 1 == 0 {
                    self.say(|s| s.function_call_response(Some(b"42")))?;
                } else {
                    self.fail("42883")?;
                }
                self.ready()
            }
            Msg::CopyDone | Msg::CopyFail => {
                let Some(open) = self.copy.take() else {
                    // The server hands these out only during COPY, which the application
                    // started.
                    panic!("the server handed out the end of a COPY that was not started");
                };
                if open.both {
                    // The server ends its own stream too (if it has not yet).
                    self.finish();
                    return Ok(());
                }
                if matches!(m, Msg::CopyDone) {
                    self.say(|s| s.command_complete("COPY 1"))?;
                } else {
                    self.fail("57014")?;
                }
                if open.by_query {
                    self.ready()?;
                }
                Ok(())
            }
        }
    }

    /// A COPY FROM STDIN (or, `both`, CopyBoth) was started for the request in flight.
    fn copy_opened(&mut self, both: bool) {
        self.copies_started += 1;
        self.copy = Some(CopyOpen {
            both,
            by_query: self.query_in_flight,
            heard: false,
        });
    }

    /// Maybe an asynchronous message, chosen by `k`.
    fn extra(&mut self, k: u8) {
        if self.server_closed {
            return;
        }
        match k % 4 {
            0 => self.s.notice(&fields("NOTICE", "00000")).expect(OK),
            1 => self.s.notification(7, "chan", "payload").expect(OK),
            2 => self.s.parameter_status("TimeZone", "UTC").expect(OK),
            _ => {}
        }
    }

    /// Tries wrong answer `w` now (outside an answer, usually with nothing in flight).
    pub(super) fn try_wrong_now(&mut self, w: Wrong) {
        if self.serr.is_none() && self.attempt(w) {
            self.finish();
        }
    }

    /// Tries wrong answer `w`: whether the `Server` accepted (and queued) it in place of the
    /// right answer (an asynchronous message is accepted but replaces nothing).
    fn attempt(&mut self, w: Wrong) -> bool {
        if matches!(w.kind, 10 | 11) && self.copy.is_some_and(|c| !c.heard) {
            // Not tried: failing a COPY FROM STDIN before reading any of the client's data is a
            // race the protocol cannot settle. A Sync the client pipelined behind the request
            // is ignored if the server reads it during the COPY, answered if after; the client
            // sends it again when the COPY fails, which is right only in the first case.
            // PostgreSQL fails a COPY on its data, after those Syncs were read and ignored.
            return false;
        }
        // What is queued goes, so that a refusal can be seen to queue nothing.
        self.take_server_output();
        let status = [
            TransactionStatus::Idle,
            TransactionStatus::InTransaction,
            TransactionStatus::Failed,
        ][usize::from(w.arg % 3)];
        let columns = usize::from(w.arg % 3);
        let copy = CopyResponse::new(Format::Text, &[]).expect("a few column formats");
        let s = &mut self.s;
        let r = match w.kind {
            0 => s.parse_complete(),
            1 => s.bind_complete(),
            2 => s.close_complete(),
            3 => s.parameter_description(&[23]),
            4 => s.row_description(&row_description(columns)),
            5 => s.no_data(),
            6 => s.data_row(&vec![Some(&b"1"[..]); columns]),
            7 => s.command_complete("SELECT 1"),
            8 => s.empty_query_response(),
            9 => s.portal_suspended(),
            10 => s.error_response(&fields("ERROR", "XX000")),
            11 => s.error_response(&fields("FATAL", "57P01")),
            12 => s.ready_for_query(status),
            13 => s.function_call_response((w.arg & 1 == 0).then_some(&b"1"[..])),
            14 => s.copy_in_response(&copy),
            15 => s.copy_out_response(&copy),
            16 => s.copy_both_response(&copy),
            17 => s.copy_data(b"x\n"),
            18 => s.copy_done(),
            19 => s.notice(&fields("WARNING", "01000")),
            20 => s.notification(1, "wrong", ""),
            21 => s.parameter_status("application_name", "wrong"),
            _ => s.fatal(&fields("FATAL", "57P01")),
        };
        if let Err(e) = r {
            black_box(e);
            assert!(
                self.s.poll_transmit().is_none(),
                "the server refused {w:?} but queued bytes"
            );
            return false;
        }
        match w.kind {
            10 | 11 => {
                // An error fails the request in flight, and the COPY if one is open; a FATAL
                // with nothing in flight ends the session.
                self.failed();
                self.copy = None;
                self.server_closed |= !self.s.is_ready();
            }
            12 => self.status = status,
            14 => self.copy_opened(false),
            16 => self.copy_opened(true),
            22 => self.server_closed = true,
            // Asynchronous messages: allowed at any time, the answer goes on.
            19..=21 => return false,
            _ => {}
        }
        self.diverged = true;
        true
    }

    /// Ends the request in flight after a wrong answer was accepted, with the first answer
    /// the `Server` allows of: CopyDone (its COPY TO STDOUT or CopyBoth stream), ReadyForQuery,
    /// CommandComplete, NoData. Stops when nothing is in flight, or when none is allowed (the
    /// client's COPY data comes first).
    fn finish(&mut self) {
        for _ in 0..8 {
            if self.server_closed || self.s.in_flight() == 0 {
                return;
            }
            let status = self.status;
            let ended = self.try_answer(Server::copy_done)
                || self.try_answer(|s| s.ready_for_query(status))
                || self.try_answer(|s| s.command_complete("SELECT 0"))
                || self.try_answer(Server::no_data);
            if !ended {
                return;
            }
        }
        panic!("the request in flight did not end");
    }

    /// Tries an answer that may be refused: whether it was sent.
    fn try_answer(&mut self, call: impl FnOnce(&mut Server) -> Result<(), UsageError>) -> bool {
        self.take_server_output();
        match call(&mut self.s) {
            Ok(()) => true,
            Err(e) => {
                black_box(e);
                assert!(
                    self.s.poll_transmit().is_none(),
                    "the server refused an answer but queued bytes"
                );
                false
            }
        }
    }
}
