//! Transaction mode's quick path: client requests that need no statement renaming (simple
//! queries, unnamed statements, portals) go upstream as they came, and their answers come back
//! as they came, without the `Server` state machine decoding them on either side, and without
//! the correlator: PgBouncer's way.
//!
//! What the proxy must know of such requests is when the connection has answered them all and
//! is idle, and that takes no more than the requests that end with a ReadyForQuery (Sync, Query,
//! FunctionCall; [`Batches`]): each ReadyForQuery answers the oldest. The rules of the server
//! that make it skip a Sync are followed as the correlator follows them: a Sync sent during COPY
//! FROM STDIN is ignored, and after an error in an extended-query COPY the server skips what
//! comes until the next Sync. One case the proxy cannot follow exactly: a Sync sent among the
//! COPY data is answered after all if the COPY fails on a row before it (the server had not
//! read it); such a ReadyForQuery goes to the client, and the connection, whose count may then
//! be off, serves no other client. So that an error never makes the server skip a Query (after an
//! error in an extended-query request, it skips up to the next Sync), the quick path never takes
//! a Query or FunctionCall that follows extended-query requests not closed by a Sync. Unlike the
//! correlator, it does not check that each answer is one the request allows: the upstream server
//! is PostgreSQL, and the client checks what it receives.
//!
//! The two paths never overlap. The quick path starts only when the `Server` has nothing in
//! flight, nothing buffered and no error it forwarded waiting for its ReadyForQuery (after an
//! extended-query error the `Server` skips until Sync, and must see that Sync), and the
//! correlator nothing. It takes only batches closed by a Sync, Query or FunctionCall, so that
//! the server answers all of them without waiting for more and an error in one never outlives
//! it. While its requests are in flight, what the client sends that it cannot take (a named
//! statement, Terminate, a frame it cannot read) waits, with the client no longer read; once
//! nothing is in flight and the server skips nothing ([`Batches::is_done`]), the `Server` gets
//! it, and whatever else the quick path left (the start of a batch not closed).

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use pgproto::{FrameHeader, Limits};

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

/// Whether a body starts with an empty name (the unnamed statement or portal).
fn unnamed(body: &[u8]) -> bool {
    body.first() == Some(&0)
}

/// Whether the quick path can take a frame, and whether it needs a connection. `copy`: a
/// COPY of the quick path's may be running, so the COPY data stream can pass.
fn takes(tag: u8, body: &[u8], copy: bool) -> Option<bool> {
    match tag {
        b'Q' | b'E' | b'F' => Some(true),
        b'S' | b'H' => Some(false),
        // Parse: the statement's name first.
        b'P' => unnamed(body).then_some(true),
        // Bind: the portal's name, then the statement's.
        b'B' => {
            let portal = body.iter().position(|b| *b == 0)?;
            unnamed(&body[portal + 1..]).then_some(true)
        }
        // Describe and Close: 'S' or 'P', then the name; a named statement is renamed.
        b'D' | b'C' => match body.split_first() {
            Some((b'P', _)) => Some(tag == b'D'),
            Some((b'S', name)) if unnamed(name) => Some(tag == b'D'),
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
/// too: the request it belongs to was closed before). `discarding`: the server skips what comes
/// until a Sync ([`Batches::discarding`]): every frame up to the next Sync is taken, to be
/// skipped there.
pub(crate) fn scan(input: &[u8], limits: &Limits, busy: bool, mut discarding: bool) -> Take {
    let mut take = Take {
        len: 0,
        needs_connection: false,
        hold: false,
    };
    let mut at = 0;
    let mut needs = false;
    // Extended-query requests were taken since the last Sync.
    let mut extended = false;
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
        if discarding {
            discarding = tag != b'S';
            at += len;
            take.len = at;
            continue;
        }
        match takes(tag, &rest[FrameHeader::SIZE..len], busy) {
            // After an error in the requests before it, the server would skip this one.
            Some(_) if extended && matches!(tag, b'Q' | b'F') => {
                take.hold = true;
                break;
            }
            Some(n) => needs |= n,
            None => {
                take.hold = true;
                break;
            }
        }
        match tag {
            b'P' | b'B' | b'D' | b'E' | b'C' => extended = true,
            b'S' => extended = false,
            _ => {}
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

/// Moves the first `len` bytes of `input` (whole frames [`scan`] took) to `out`, noting in
/// `batches` the requests that end with a ReadyForQuery.
pub(crate) fn forward(input: &mut BytesMut, len: usize, out: &mut BytesMut, batches: &mut Batches) {
    let mut at = 0;
    while at < len {
        let Ok(Some(header)) = FrameHeader::peek(&input[at..]) else {
            break;
        };
        batches.sent(header.tag());
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
/// flight: answers go to `to_client` as they came (whole frames straight from `input` when the
/// relay holds nothing, as in [`crate::direct`]), but those of the proxy's own query. `Ok(true)`:
/// an ErrorResponse came with nothing in flight, a FATAL error (it is in `to_client`): the server
/// is going away. An error: a ReadyForQuery or a COPY that answers no request.
pub(crate) fn upstream(
    up: &mut Upstream,
    input: &mut BytesMut,
    to_client: &mut BytesMut,
    wanted: &mut Vec<(String, String)>,
) -> Result<bool, String> {
    let Upstream {
        relay,
        batches,
        statements,
        params,
        status,
        ..
    } = up;
    let mut each = |batches: &mut Batches, tag: u8, body: &[u8]| -> Result<Step, String> {
        match tag {
            b'S' => {
                observe(tag, body, params, statements);
                crate::params::record_reported(wanted, body);
            }
            b'C' => observe(tag, body, params, statements),
            b'Z' => *status = body.first().copied().unwrap_or_default(),
            _ => {}
        }
        let going_away = tag == b'E' && batches.closers.is_empty();
        Ok(match (batches.route(tag)?, going_away) {
            (true, true) => Step::Last,
            (true, false) => Step::Next,
            (false, _) => Step::Drop,
        })
    };
    let mut failed = None;
    let mut whole =
        |_: FrameHeader, frame: &[u8]| match each(batches, frame[0], &frame[FrameHeader::SIZE..]) {
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
        // Only large frames come in pieces: a ReadyForQuery, a ParameterStatus or a
        // CommandComplete is always whole.
        let step = if piece.is_first() {
            let body = piece.body().unwrap_or_default();
            let step = each(batches, piece.header().tag(), body)?;
            if !piece.is_last() {
                batches.open = Some(step != Step::Drop);
            }
            step
        } else {
            let forward = batches.open.unwrap_or(true);
            if piece.is_last() {
                batches.open = None;
            }
            if forward {
                Step::Next
            } else {
                Step::Drop
            }
        };
        if step != Step::Drop {
            to_client.extend_from_slice(piece.bytes());
        }
        if step == Step::Last {
            return Ok(true);
        }
    }
}

/// A Sync in [`Batches`].
const SYNC: u8 = b'S';
/// A Query of the client's.
const QUERY: u8 = b'Q';
/// A FunctionCall.
const FUNCTION_CALL: u8 = b'F';
/// A Query of the proxy's own (the client's parameters): its answers are not the client's.
const OWN_QUERY: u8 = b'q';
/// An extended-query COPY FROM STDIN under way, whose Sync the server ignored: it ends with its
/// CommandComplete or ErrorResponse, not with a ReadyForQuery.
const COPY_IN: u8 = b'c';

/// The quick path's requests in flight on an upstream connection: those that end with a
/// ReadyForQuery, in the order they were sent (see the module's doc).
#[derive(Debug, Default)]
pub(crate) struct Batches {
    closers: VecDeque<u8>,
    /// The server is in COPY FROM STDIN and the client has not ended it: the server ignores
    /// the Syncs it sends.
    copying: bool,
    /// After an error in an extended-query COPY, the server skips what comes until a Sync not
    /// sent yet: the connection is not idle.
    discarding: bool,
    /// Syncs the client sent during the COPY under way. The server ignores those it reads
    /// before the COPY ends; if the COPY fails on data it had not read them all, and each Sync
    /// behind the bad row gets a ReadyForQuery. Which ones the proxy cannot tell.
    copy_syncs: usize,
    /// A COPY failed with Syncs sent during it ([`Batches::copy_syncs`]): ReadyForQuery may
    /// come that no request here accounts for. They go to the client, and the connection never
    /// serves another one (a late ReadyForQuery must not reach it).
    uncertain: bool,
    /// Where the rest of a frame handed out in pieces goes (to the client or not).
    open: Option<bool>,
}

impl Batches {
    /// The requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.closers.len()
    }

    /// Whether nothing is in flight and no frame is half routed.
    pub(crate) fn is_empty(&self) -> bool {
        self.closers.is_empty() && self.open.is_none()
    }

    /// Whether the server skips what comes until a Sync not sent yet (after an error in an
    /// extended-query COPY).
    pub(crate) fn discarding(&self) -> bool {
        self.discarding
    }

    /// Whether the quick path has nothing left to follow: nothing in flight, and the server
    /// skips nothing (the `Server` path may take over).
    pub(crate) fn is_done(&self) -> bool {
        self.is_empty() && !self.discarding
    }

    /// Whether nothing is in flight and the server skips nothing: the connection may serve
    /// another client (if no transaction is open).
    pub(crate) fn is_idle(&self) -> bool {
        self.is_empty() && !self.discarding && !self.copying
    }

    /// Whether ReadyForQuery may come that no request accounts for ([`Batches::uncertain`]):
    /// the connection must not serve another client.
    pub(crate) fn is_uncertain(&self) -> bool {
        self.uncertain
    }

    /// The proxy sent a Query of its own: its answers are dropped.
    pub(crate) fn own_query(&mut self) {
        self.closers.push_back(OWN_QUERY);
    }

    /// The client's frame of type `tag` was sent upstream.
    fn sent(&mut self, tag: u8) {
        match tag {
            b'S' if self.copying => self.copy_syncs += 1,
            b'S' => {
                self.closers.push_back(SYNC);
                self.discarding = false;
            }
            b'Q' => self.closers.push_back(QUERY),
            b'F' => self.closers.push_back(FUNCTION_CALL),
            // CopyDone, CopyFail.
            b'c' | b'f' => self.copying = false,
            _ => {}
        }
    }

    /// Whether a frame of type `tag` from upstream goes to the client; an error if it cannot
    /// answer what is in flight.
    fn route(&mut self, tag: u8) -> Result<bool, String> {
        let front = self.closers.front().copied();
        match tag {
            // Never an answer: always the client's.
            b'S' | b'N' | b'A' => return Ok(true),
            b'Z' => {
                return match self.closers.pop_front() {
                    Some(OWN_QUERY) => Ok(false),
                    Some(SYNC | QUERY | FUNCTION_CALL) => Ok(true),
                    // The answer to a Sync sent during a COPY that failed before reading it:
                    // the server skips nothing more.
                    None if self.uncertain => {
                        self.discarding = false;
                        Ok(true)
                    }
                    _ => Err("ReadyForQuery with no request in flight".into()),
                };
            }
            // CopyInResponse, CopyBothResponse: the Syncs sent before the COPY began, behind the
            // request that began it, are ignored. An extended-query COPY's own Sync is one of
            // them: the COPY stays in flight until its CommandComplete or ErrorResponse.
            b'G' | b'W' => {
                self.copying = true;
                match front {
                    Some(SYNC) => self.closers[0] = COPY_IN,
                    Some(QUERY | OWN_QUERY) => {}
                    _ => return Err("COPY with no request in flight".into()),
                }
                // They count as sent during the COPY: ignored if it reads them, answered if it
                // fails first (client data pipelined before the COPY began may come with them).
                let before = self.closers.len();
                let mut first = true;
                self.closers
                    .retain(|c| std::mem::take(&mut first) || *c != SYNC);
                self.copy_syncs += before - self.closers.len();
            }
            // While a COPY runs nothing else answers: this ends it, and it read every Sync sent
            // during it.
            b'C' => {
                if front == Some(COPY_IN) {
                    self.closers.pop_front();
                }
                self.copy_syncs = 0;
            }
            b'E' => {
                self.copying = false;
                if self.copy_syncs > 0 {
                    self.copy_syncs = 0;
                    self.uncertain = true;
                }
                if front == Some(COPY_IN) {
                    // The server skips what comes until a Sync.
                    self.closers.pop_front();
                    while self.closers.front().is_some_and(|c| *c != SYNC) {
                        self.closers.pop_front();
                    }
                    self.discarding = self.closers.is_empty();
                }
            }
            _ => {}
        }
        Ok(front != Some(OWN_QUERY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(b: &mut Batches, tags: &[u8]) {
        for t in tags {
            b.sent(*t);
        }
    }

    fn routed(b: &mut Batches, tags: &[u8]) -> Vec<bool> {
        tags.iter().map(|t| b.route(*t).unwrap()).collect()
    }

    #[test]
    fn each_ready_for_query_answers_the_oldest() {
        let mut b = Batches::default();
        b.own_query();
        sent(&mut b, b"PBDESQ");
        assert_eq!(b.len(), 3);
        // The proxy's SET: dropped, but its ParameterStatus.
        assert_eq!(routed(&mut b, b"CSZ"), [false, true, false]);
        assert_eq!(routed(&mut b, b"12TDCZ"), [true; 6]);
        assert!(!b.is_empty());
        assert_eq!(routed(&mut b, b"TDCZ"), [true; 4]);
        assert!(b.is_idle());
        assert!(b.route(b'Z').is_err());
    }

    #[test]
    fn syncs_during_copy_from_stdin_are_ignored() {
        // Simple query: the Syncs sent behind it before the COPY began get no answer.
        let mut b = Batches::default();
        sent(&mut b, b"QS");
        routed(&mut b, b"G");
        sent(&mut b, b"dSdc");
        assert_eq!(b.len(), 1);
        routed(&mut b, b"CZ");
        assert!(b.is_idle());
        // Extended query: its own Sync is ignored; the COPY ends with its CommandComplete and
        // the client's next Sync gets the ReadyForQuery.
        sent(&mut b, b"PBES");
        routed(&mut b, b"12G");
        sent(&mut b, b"dc");
        routed(&mut b, b"C");
        assert!(b.is_idle());
        sent(&mut b, b"S");
        routed(&mut b, b"Z");
        assert!(b.is_idle());
        // An error during an extended-query COPY: the server skips until a Sync not sent yet.
        sent(&mut b, b"PBES");
        routed(&mut b, b"12GE");
        assert!(b.is_empty() && !b.is_idle());
        sent(&mut b, b"dcS");
        routed(&mut b, b"Z");
        assert!(b.is_idle());
    }

    /// An extended-query COPY FROM STDIN begun as libpq begins it (its Sync behind the Execute).
    fn extended_copy_begun() -> Batches {
        let mut b = Batches::default();
        sent(&mut b, b"PBES");
        routed(&mut b, b"12G");
        b
    }

    #[test]
    fn a_sync_sent_during_a_copy_that_fails_may_be_answered() {
        // The COPY reads the Sync sent among its data, and succeeds: nothing changes.
        let mut b = extended_copy_begun();
        sent(&mut b, b"dSdc");
        routed(&mut b, b"C");
        sent(&mut b, b"S");
        routed(&mut b, b"Z");
        assert!(b.is_idle() && !b.is_uncertain());
        // The COPY fails on the row before the Sync, which the server then reads: its
        // ReadyForQuery goes to the client and ends the skipping, and the connection is never
        // given to another client.
        let mut b = extended_copy_begun();
        sent(&mut b, b"dS");
        assert_eq!(routed(&mut b, b"E"), [true]);
        assert!(b.is_uncertain() && !b.is_idle());
        assert_eq!(routed(&mut b, b"Z"), [true]);
        assert!(b.is_idle() && b.is_uncertain());
        // The COPY read the Sync before failing: the server skips until the client's next one.
        let mut b = extended_copy_begun();
        sent(&mut b, b"dSd");
        routed(&mut b, b"E");
        assert!(b.discarding() && b.is_uncertain());
        sent(&mut b, b"S");
        routed(&mut b, b"Z");
        assert!(b.is_idle());
        // Without a Sync during the COPY, an unexpected ReadyForQuery is still an error.
        let mut b = extended_copy_begun();
        sent(&mut b, b"d");
        routed(&mut b, b"E");
        assert!(!b.is_uncertain());
        assert!(b.route(b'Z').is_err());
    }

    #[test]
    fn a_query_after_open_extended_requests_is_not_taken() {
        let limits = Limits::default();
        let frame = |tag: u8, body: &[u8]| {
            let mut f = vec![tag];
            f.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            f.extend_from_slice(body);
            f
        };
        let parse = frame(b'P', b"\0SELECT 1\0\0\0");
        let query = frame(b'Q', b"SELECT 1\0");
        let sync = frame(b'S', b"");
        let input = [parse.clone(), query.clone()].concat();
        let take = scan(&input, &limits, false, false);
        assert_eq!(take.len, 0);
        assert!(take.hold);
        let input = [parse.clone(), sync.clone(), query.clone()].concat();
        let take = scan(&input, &limits, false, false);
        assert_eq!(take.len, input.len());
        assert!(!take.hold);
        // While the server skips until a Sync, everything up to it is taken (a named
        // statement too: it is skipped there).
        let named = frame(b'P', b"s1\0SELECT 1\0\0\0");
        let input = [named.clone(), sync.clone(), named.clone()].concat();
        let take = scan(&input, &limits, true, true);
        assert_eq!(take.len, named.len() + sync.len());
        assert!(take.hold);
    }
}
