//! Transaction mode's quick path: client requests that need no statement renaming (simple
//! queries, unnamed statements, portals) go upstream as they came, and their answers come back
//! as they came, without the `Server` state machine decoding them on either side.
//!
//! The correlator still follows every request (it knows which answer ends which request, that a
//! Sync during COPY FROM STDIN gets none, when the connection is idle and can go back to the
//! pool); only the decoding, the re-encoding and the checks of the `Server` are skipped. The
//! upstream server checks the requests itself and answers a malformed one with an error.
//!
//! The two paths never overlap. The quick path starts only when the `Server` has nothing in
//! flight, nothing buffered and no error it forwarded waiting for its ReadyForQuery (after an
//! extended-query error the `Server` skips until Sync, and must see that Sync). It takes only
//! batches closed by a Sync, Query or FunctionCall, so that the server answers all of them
//! without waiting for more and an error in one never outlives it. While its requests are in
//! flight, what the client sends that it cannot take (a named statement, Terminate, a frame it
//! cannot read) waits, with the client no longer read; once the correlator is empty, the
//! `Server` gets it, and whatever else the quick path left (the start of a batch not closed).

use bytes::{Buf, BytesMut};
use pgproto::pooler::{
    Action, ClientStatements, Correlator, CorrelatorEvent, Rewrite, Route, StatementNote,
    StatementRegistry,
};
use pgproto::protocol::Request;
use pgproto::{FrameHeader, FramePiece, Limits};

use crate::direct::{whole_frames, Step};
use crate::session::observe;
use crate::upstream::Upstream;

/// The most bytes the quick path leaves in the read buffer waiting for the rest of a batch.
const WHOLE_LIMIT: usize = 64 * 1024;

/// What the quick path can take of the start of a client's bytes ([`scan`]).
pub(crate) struct Take {
    /// The bytes it takes: whole frames.
    pub(crate) len: usize,
    /// Whether they hold a request that needs an upstream connection.
    pub(crate) needs_connection: bool,
    /// Whether what follows cannot wait for more bytes (a frame the quick path cannot take, or
    /// too many bytes): the client is not read until the quick path's requests are answered,
    /// then the `Server` gets them.
    pub(crate) hold: bool,
}

/// The first string of a body (its bytes before the first NUL; all of it if there is none).
fn first_name(body: &[u8]) -> &[u8] {
    body.split(|b| *b == 0).next().unwrap_or_default()
}

/// Whether the quick path can take a frame, and whether it needs a connection. `copy`: a
/// COPY of the quick path's may be running, so the COPY data stream can pass.
fn takes(tag: u8, body: &[u8], copy: bool) -> Option<bool> {
    match tag {
        b'Q' | b'E' | b'F' => Some(true),
        b'S' | b'H' => Some(false),
        // Parse: the statement's name first.
        b'P' => first_name(body).is_empty().then_some(true),
        // Bind: the portal's name, then the statement's.
        b'B' => {
            let portal = first_name(body).len();
            let statement = body.get(portal + 1..).map(first_name);
            statement.is_some_and(<[u8]>::is_empty).then_some(true)
        }
        // Describe and Close: 'S' or 'P', then the name; a named statement is renamed.
        b'D' | b'C' => match body.split_first() {
            Some((b'P', _)) => Some(tag == b'D'),
            Some((b'S', name)) if first_name(name).is_empty() => Some(tag == b'D'),
            _ => None,
        },
        b'd' | b'c' | b'f' if copy => Some(false),
        _ => None,
    }
}

/// What the quick path can take of the start of `input`, checked against `limits`: the whole
/// frames it can take, up to the last one that closes a batch (Sync, Query, FunctionCall), so
/// that the server answers all of them without waiting for more. `busy`: requests of the quick
/// path are in flight, and the COPY data stream may belong to one of them (it closes a batch
/// too: the request it belongs to was closed before).
pub(crate) fn scan(input: &[u8], limits: &Limits, busy: bool) -> Take {
    let mut take = Take {
        len: 0,
        needs_connection: false,
        hold: false,
    };
    let mut at = 0;
    let mut needs = false;
    loop {
        let rest = &input[at..];
        let header = match FrameHeader::peek(rest) {
            Ok(Some(h)) if h.check_frontend(limits).is_ok() => h,
            Ok(None) => break,
            _ => {
                take.hold = true;
                break;
            }
        };
        let len = header.frame_len();
        if len > rest.len() {
            break;
        }
        let tag = header.tag();
        match takes(tag, &rest[FrameHeader::SIZE..len], busy) {
            Some(n) => needs |= n,
            None => {
                take.hold = true;
                break;
            }
        }
        at += len;
        if matches!(tag, b'S' | b'Q' | b'F') || busy && matches!(tag, b'd' | b'c' | b'f') {
            take.len = at;
            take.needs_connection = needs;
        }
    }
    // What is left waits in the read buffer for more bytes, up to a bound.
    take.hold |= input.len() - take.len > WHOLE_LIMIT;
    take
}

/// Moves the first `len` bytes of `input` (whole frames [`scan`] took) to `out`, pushing the
/// request each frame opens into `correlator`.
pub(crate) fn forward(
    input: &mut BytesMut,
    len: usize,
    out: &mut BytesMut,
    correlator: &mut Correlator<StatementNote>,
) {
    let mut at = 0;
    while at < len {
        let Ok(Some(header)) = FrameHeader::peek(&input[at..]) else {
            break;
        };
        let body = &input[at + FrameHeader::SIZE..at + header.frame_len()];
        let request = match header.tag() {
            b'Q' => Some(Request::Query),
            b'P' => Some(Request::Parse),
            b'B' => Some(Request::Bind),
            b'D' if body.first() == Some(&b'S') => Some(Request::DescribeStatement),
            b'D' => Some(Request::DescribePortal),
            b'E' => Some(Request::Execute),
            b'C' => Some(Request::Close),
            b'S' => Some(Request::Sync),
            b'F' => Some(Request::FunctionCall),
            b'c' | b'f' => {
                correlator.copy_ended();
                None
            }
            _ => None,
        };
        if let Some(request) = request {
            correlator.push(request, Action::Forward, StatementNote::None);
        }
        at += header.frame_len();
    }
    if len == input.len() && out.is_empty() {
        std::mem::swap(input, out);
    } else {
        out.extend_from_slice(&input[..len]);
        input.advance(len);
    }
}

/// Routes what the upstream server sent (in `input`, taken) while quick requests are in
/// flight: answers forwarded go to `to_client` as they came (whole frames straight from
/// `input` when the relay holds nothing, as in [`crate::direct`]). `Ok(true)`: an
/// ErrorResponse came with nothing in flight, a FATAL error (it is in `to_client`): the server
/// is going away.
pub(crate) fn upstream(
    up: &mut Upstream,
    registry: &StatementRegistry,
    client: &mut ClientStatements,
    input: &mut BytesMut,
    to_client: &mut BytesMut,
    wanted: &mut Vec<(String, String)>,
) -> Result<bool, String> {
    let Upstream {
        relay,
        correlator,
        statements,
        params,
        ..
    } = up;
    let mut each = |piece: &FramePiece<'_>| -> Result<Step, String> {
        let tag = piece.header().tag();
        if let Some(body) = piece.body() {
            observe(tag, body, params, statements);
            if tag == b'S' {
                crate::params::record_reported(wanted, body);
            }
        }
        let going_away = piece.is_first() && tag == b'E' && correlator.is_empty();
        let forward = correlator.route(piece).map_err(|e| e.to_string())? == Route::Forward;
        // The quick path's own requests finish with nothing to settle; one of the rewriting's
        // may have finished just before the quick path began, and settling costs nothing.
        let mut rewrite = Rewrite {
            registry,
            client: &mut *client,
            upstream: &mut *statements,
        };
        while let Some(event) = correlator.poll_event() {
            if let CorrelatorEvent::Finished { data, outcome, .. } = event {
                rewrite.finished(data, outcome);
            }
        }
        Ok(match (forward, going_away) {
            (true, true) => Step::Last,
            (true, false) => Step::Next,
            (false, _) => Step::Drop,
        })
    };
    let mut failed = None;
    let mut whole = |_: FrameHeader, frame: &[u8]| match FramePiece::whole(frame)
        .map_err(|e| e.to_string())
        .and_then(|p| each(&p))
    {
        Ok(step) => step,
        Err(e) => {
            failed = Some(e);
            Step::Stop
        }
    };
    let step = whole_frames(
        relay,
        input,
        to_client,
        &Limits::default(),
        true,
        &mut whole,
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    if step == Step::Last {
        return Ok(true);
    }
    relay.receive(input);
    input.clear();
    loop {
        let piece = match relay.next_piece() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        let step = each(&piece)?;
        if step != Step::Drop {
            to_client.extend_from_slice(piece.bytes());
        }
        if step == Step::Last {
            return Ok(true);
        }
    }
}
