//! Session mode's pass-through: once a client owns its upstream connection, its frames go to
//! the connection as they are and the server's come back as they are, cut by two `Relay`s and
//! never decoded.
//!
//! Nothing needs decoding there: statement names are the client's own (no other client uses
//! the connection), and the client's requests are checked by the upstream server itself, which
//! answers a protocol violation with its own FATAL error. What the proxy still follows, from
//! the frames' type bytes and a few small bodies:
//!
//! - Terminate (`X`) from the client ends the session without reaching the connection, which
//!   goes back to the pool;
//! - the requests that each end with one ReadyForQuery (Query, Sync, FunctionCall), less the
//!   ReadyForQuery frames that came back, and the last transaction status: the connection is
//!   reused after the client leaves only with nothing in flight and no transaction open (a Sync
//!   the server ignores, during COPY FROM STDIN, only makes the count too high, and the
//!   connection is closed rather than reused);
//! - an ErrorResponse with nothing in flight: a FATAL error, the server is going away;
//! - ParameterStatus (the client's values, and the connection's) and CommandComplete (the
//!   statements a `DISCARD ALL` removed), as in the decoding path.
//!
//! Memory stays bounded as in the decoding path: each relay holds at most a whole-frame limit
//! and one read, and the run loop reads only while the bytes waiting either way are below its
//! high-water mark.

use bytes::{Buf, BytesMut};
use pgproto::pooler::{Action, Correlator, StatementNote};
use pgproto::protocol::Request;
use pgproto::{FrameHeader, Limits, Relay};

use crate::pool::Lease;
use crate::session::observe;

/// A session's pass-through state.
pub(crate) struct Direct {
    /// What the client sends, cut into frames.
    relay: Relay,
    /// The limits of the client's frames.
    limits: Limits,
    /// The limits of the upstream server's frames (those of its relay).
    upstream_limits: Limits,
    /// Requests sent upstream whose ReadyForQuery has not come back.
    pending: usize,
    /// The transaction status of the last ReadyForQuery.
    status: u8,
}

/// What happened to a pass-through session.
pub(crate) enum Outcome {
    /// Go on.
    Going,
    /// The client sent Terminate.
    Terminated,
    /// The client sent a frame no PostgreSQL client sends (an unknown type, a bad length).
    Invalid(String),
    /// The upstream server sent a FATAL error (an ErrorResponse with nothing in flight): it is
    /// in the client's buffer, and the connection is going away.
    GoingAway,
    /// The upstream server sent something that is not a frame.
    Broken(String),
}

/// What to do with a frame (see [`whole_frames`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Pass it on and go on.
    Next,
    /// Pass it on and stop.
    Last,
    /// Stop before it.
    Stop,
    /// Leave it out and go on.
    Drop,
}

impl Direct {
    /// Pass-through on a connection with nothing in flight, outside a transaction; the client's
    /// frames are checked against `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            relay: Relay::frontend(limits),
            limits,
            upstream_limits: Limits::default(),
            pending: 0,
            status: b'I',
        }
    }

    /// Moves the client's frames in `input` to `to_upstream`, taking `input`'s bytes.
    pub(crate) fn client(&mut self, input: &mut BytesMut, to_upstream: &mut BytesMut) -> Outcome {
        let pending = &mut self.pending;
        let mut each = |tag: u8, _: Option<&[u8]>| match tag {
            b'X' => Step::Stop,
            b'Q' | b'S' | b'F' => {
                *pending += 1;
                Step::Next
            }
            _ => Step::Next,
        };
        let relay = &mut self.relay;
        let mut whole = |h: FrameHeader, _: &[u8]| each(h.tag(), None);
        match whole_frames(relay, input, to_upstream, &self.limits, false, &mut whole) {
            Ok(Step::Next) => {}
            Ok(_) => return Outcome::Terminated,
            Err(e) => return Outcome::Invalid(e),
        }
        relay.receive(input);
        input.clear();
        loop {
            let piece = match relay.next_piece() {
                Ok(Some(p)) => p,
                Ok(None) => return Outcome::Going,
                Err(e) => return Outcome::Invalid(e.to_string()),
            };
            if piece.is_first() && each(piece.header().tag(), None) == Step::Stop {
                return Outcome::Terminated;
            }
            to_upstream.extend_from_slice(piece.bytes());
        }
    }

    /// Moves the upstream server's frames in `input` to `to_client`, taking `input`'s bytes,
    /// and learns what [`crate::direct`] follows (`wanted`: the client's parameter values).
    pub(crate) fn upstream(
        &mut self,
        lease: &mut Lease,
        input: &mut BytesMut,
        to_client: &mut BytesMut,
        wanted: &mut Vec<(String, String)>,
    ) -> Outcome {
        let up = &mut lease.upstream;
        let pending = &mut self.pending;
        let status = &mut self.status;
        let mut each = |tag: u8, body: Option<&[u8]>| {
            let Some(body) = body else {
                return Step::Next;
            };
            match tag {
                b'Z' => {
                    *pending = pending.saturating_sub(1);
                    *status = body.first().copied().unwrap_or(0);
                }
                b'E' if *pending == 0 => return Step::Last,
                b'S' | b'C' => {
                    observe(tag, body, &mut up.params, &mut up.statements);
                    if tag == b'S' {
                        crate::params::record_reported(wanted, body);
                    }
                }
                _ => {}
            }
            Step::Next
        };
        let relay = &mut up.relay;
        let limits = &self.upstream_limits;
        let mut whole =
            |h: FrameHeader, frame: &[u8]| each(h.tag(), frame.get(FrameHeader::SIZE..));
        let step = match whole_frames(relay, input, to_client, limits, true, &mut whole) {
            Ok(Step::Next) => {
                relay.receive(input);
                input.clear();
                loop {
                    let piece = match relay.next_piece() {
                        Ok(Some(p)) => p,
                        Ok(None) => break Step::Next,
                        Err(e) => {
                            up.broken = true;
                            return Outcome::Broken(e.to_string());
                        }
                    };
                    let step = each(piece.header().tag(), piece.body());
                    to_client.extend_from_slice(piece.bytes());
                    if step != Step::Next {
                        break step;
                    }
                }
            }
            Ok(step) => step,
            Err(e) => {
                up.broken = true;
                return Outcome::Broken(e);
            }
        };
        if step == Step::Next {
            Outcome::Going
        } else {
            up.broken = true;
            Outcome::GoingAway
        }
    }

    /// Whether a frame of the upstream server's was handed to the client in part only: the
    /// client can read nothing else after it.
    pub(crate) fn mid_frame(lease: Option<&Lease>) -> bool {
        lease.is_some_and(|l| l.upstream.relay.in_frame())
    }

    /// The session ends: whether its connection is fit for another client (nothing in flight,
    /// nothing half sent, no transaction open). If it is, its correlator starts afresh (the
    /// pass-through did not keep it up to date).
    pub(crate) fn settle(self, lease: &mut Lease, unsent: usize) -> bool {
        let clean =
            self.pending == 0 && self.status == b'I' && unsent == 0 && !self.relay.in_frame();
        if clean {
            lease.upstream.correlator = Correlator::new();
            lease.upstream.status = b'I';
        } else {
            lease.upstream.broken = true;
        }
        clean
    }
}

/// The common case without the relay's copy: while `relay` holds nothing, the whole frames at
/// the start of `input` (of a backend if `backend`, checked against `limits`) move to `out`, all
/// of `input` by swapping the two buffers when `out` is empty. `each` sees each frame (header
/// and all) first and says what to do with it. `Ok(Step::Next)` when the rest of `input`, left
/// there, is for the relay (the start of a frame not all there); an error (a bad header) comes
/// after the frames before it moved.
pub(crate) fn whole_frames(
    relay: &Relay,
    input: &mut BytesMut,
    out: &mut BytesMut,
    limits: &Limits,
    backend: bool,
    each: &mut impl FnMut(FrameHeader, &[u8]) -> Step,
) -> Result<Step, String> {
    if relay.buffered_len() != 0 || relay.in_frame() {
        return Ok(Step::Next);
    }
    // Frames from `kept` to `at` move to `out` together.
    let mut kept = 0;
    let mut at = 0;
    let mut step = Step::Next;
    let mut error = None;
    loop {
        let header = match FrameHeader::peek(&input[at..]) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let checked = if backend {
            header.check_backend(limits)
        } else {
            header.check_frontend(limits)
        };
        if let Err(e) = checked {
            error = Some(e.to_string());
            break;
        }
        let end = at + header.frame_len();
        if end > input.len() {
            break;
        }
        step = each(header, &input[at..end]);
        match step {
            Step::Stop => break,
            Step::Drop => {
                out.extend_from_slice(&input[kept..at]);
                kept = end;
                step = Step::Next;
            }
            Step::Next | Step::Last => {}
        }
        at = end;
        if step == Step::Last {
            break;
        }
    }
    if kept == 0 && at == input.len() && out.is_empty() {
        std::mem::swap(input, out);
    } else {
        out.extend_from_slice(&input[kept..at]);
        input.advance(at);
    }
    error.map_or(Ok(step), Err)
}

/// Sends `query` (a whole Query message) on a connection with nothing in flight and waits for
/// its answers, which nobody else sees (the parameters it reports are recorded).
pub(crate) async fn exchange(lease: &mut Lease, query: &[u8]) -> Result<(), String> {
    let up = &mut lease.upstream;
    let mut out = BytesMut::from(query);
    up.correlator
        .push(Request::Query, Action::Skip, StatementNote::None);
    up.conn
        .write_all(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    while !up.correlator.is_empty() {
        let n = up.conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        up.relay.receive(&buf);
        buf.clear();
        while let Some(piece) = up.relay.next_piece().map_err(|e| e.to_string())? {
            if let Some(body) = piece.body() {
                observe(
                    piece.header().tag(),
                    body,
                    &mut up.params,
                    &mut up.statements,
                );
                if piece.header().tag() == b'Z' {
                    up.status = body.first().copied().unwrap_or_default();
                }
            }
            up.correlator.route(&piece).map_err(|e| e.to_string())?;
        }
        while up.correlator.poll_event().is_some() {}
    }
    Ok(())
}
