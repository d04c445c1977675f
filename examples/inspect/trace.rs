//! `inspect --trace`: a recorded connection as libpq's `PQtrace` lines.
//!
//! The messages `streams.rs` found in each file are fed, whole, to a [`pgproto::trace::Tracer`]
//! (without timestamps), in turns that follow the conversation: the client's messages up to one
//! that waits for an answer (a start-up packet, an authentication response, Query, Sync, Flush,
//! FunctionCall, CopyDone, CopyFail, Terminate), then the server's up to one that waits for the
//! client (ReadyForQuery, an answer to SSLRequest or GSSENCRequest, an authentication request
//! that expects a response, CopyInResponse, CopyBothResponse), and so on. Each direction's lines
//! are in stream order; how the two interleave is this rule's guess, since two files do not
//! record it. The turns also give the tracer what it needs from the other direction: the
//! server's authentication request before the client's `p` message answering it, the client's
//! SSLRequest before the server's one-byte answer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pgproto::trace::{TraceFlags, Tracer};
use pgproto::{Authentication, BackendMessage, FrontendMessage};

use crate::streams::{Connection, Decoded};

/// Whether the client waits for the server after sending `m`.
fn client_waits(m: &FrontendMessage) -> bool {
    !matches!(
        m,
        FrontendMessage::Parse(_)
            | FrontendMessage::Bind(_)
            | FrontendMessage::Describe(_)
            | FrontendMessage::Execute(_)
            | FrontendMessage::Close(_)
            | FrontendMessage::CopyData(_)
    )
}

/// Whether the server waits for the client after sending `m`.
fn server_waits(m: &BackendMessage) -> bool {
    match m {
        BackendMessage::SslResponse { .. }
        | BackendMessage::GssEncResponse { .. }
        | BackendMessage::ReadyForQuery(_)
        | BackendMessage::CopyInResponse(_)
        | BackendMessage::CopyBothResponse(_) => true,
        BackendMessage::Authentication(a) => {
            !matches!(a, Authentication::Ok | Authentication::SaslFinal(_))
        }
        _ => false,
    }
}

/// Feeds `messages[*next..]` to the tracer up to and including the first for which `waits` is
/// true; returns whether any was fed.
fn turn<M>(
    messages: &[Decoded<M>],
    next: &mut usize,
    data: &[u8],
    waits: fn(&M) -> bool,
    mut feed: impl FnMut(&[u8]),
) -> bool {
    let start = *next;
    while let Some(d) = messages.get(*next) {
        *next += 1;
        feed(data.get(d.offset..d.offset + d.len).unwrap_or_default());
        if waits(&d.message) {
            break;
        }
    }
    *next > start
}

/// Writes the trace lines of a decoded connection to `out`: `client` and `server` are the files
/// `conn` was decoded from.
pub(crate) fn print(out: &mut dyn Write, conn: &Connection, client: &[u8], server: &[u8]) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let mut tracer = Tracer::new(move |line: &[u8]| {
        let mut buf = sink.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(line);
        buf.push(b'\n');
    })
    .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS);

    let (mut c, mut s) = (0, 0);
    loop {
        let fed_client = turn(&conn.client.messages, &mut c, client, client_waits, |b| {
            tracer.frontend(b)
        });
        let fed_server = turn(&conn.server.messages, &mut s, server, server_waits, |b| {
            tracer.backend(b)
        });
        let mut buf = lines.lock().unwrap_or_else(|e| e.into_inner());
        // Write errors (a closed pipe) are ignored: the exit status still tells.
        let _ = out.write_all(&buf);
        buf.clear();
        if !fed_client && !fed_server {
            break;
        }
    }
}
