//! Turning the protocol trace on and off (see [`crate::trace`]).

use crate::trace::{Direction, Tracer};

use super::startup::State;
use super::{Phase, Server};

impl Server {
    /// Traces every message from now on, both directions, in libpq's `PQtrace` format (see
    /// [`crate::trace`]): what [`Server::receive`] is given as `F` lines, what
    /// [`Server::poll_transmit`] hands out as `B` lines, each line as soon as its message is
    /// whole.
    ///
    /// Set right after [`Server::new`], the trace starts with the client's first start-up
    /// packet. Set later, between two turns of the run loop, it starts with the next message
    /// (messages received but not yet polled included). Replaces a tracer set before.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use pgproto::trace::{TraceFlags, Tracer};
    /// use pgproto::{Server, ServerConfig};
    ///
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&lines);
    /// let mut server = Server::new(ServerConfig::default());
    /// server.set_tracer(
    ///     Tracer::new(move |l: &[u8]| sink.lock().unwrap().push(l.to_vec()))
    ///         .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS),
    /// );
    /// server.receive(b"\0\0\0\x08\x04\xd2\x16\x2f"); // SSLRequest
    /// while server.poll_event()?.is_some() {}
    /// server.accept_ssl(false)?;
    /// let _ = server.poll_transmit();
    /// assert_eq!(
    ///     *lines.lock().unwrap(),
    ///     [&b"F\t8\tSSLRequest\t 1234 5679"[..], &b"B\t1\tSSLResponse\t N"[..]]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_tracer(&mut self, mut tracer: Tracer) {
        let untagged = self.core.decoder.in_startup();
        let out = &self.core.out;
        let answer = match &self.phase {
            Phase::Startup(s) => match s.state {
                State::AwaitSslDecision => Some(true),
                State::AwaitGssDecision => Some(false),
                // The answer is queued and not yet handed out.
                State::AwaitTls if !out.is_empty() => Some(true),
                State::AwaitGss if !out.is_empty() => Some(false),
                // A queued refusal does not say which request it refuses: taken as SSL's.
                State::AwaitPacket if out[..] == b"N"[..] => Some(true),
                _ => None,
            },
            _ => None,
        };
        tracer.resume(untagged, answer);
        tracer.feed(Direction::Frontend, self.core.decoder.peek());
        self.core.trace = Some(Box::new(tracer));
    }

    /// Stops tracing and gives the tracer back (libpq's `PQuntrace`); `None` if none was set.
    pub fn take_tracer(&mut self) -> Option<Tracer> {
        self.core.trace.take().map(|t| *t)
    }
}
