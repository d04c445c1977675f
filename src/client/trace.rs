//! Turning the protocol trace on and off (see [`crate::trace`]).

use crate::trace::{Direction, Tracer};

use super::{Client, Phase};

impl Client {
    /// Traces every message from now on, both directions, in libpq's `PQtrace` format (see
    /// [`crate::trace`]): what [`Client::poll_transmit`] hands out as `F` lines, what
    /// [`Client::receive`] is given as `B` lines, each line as soon as its message is whole.
    ///
    /// Set right after [`Client::new`], the trace starts with the first start-up packet. Set
    /// later, between two turns of the run loop, it starts with the next message (messages
    /// received but not yet polled included). Replaces a tracer set before.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use pgproto::trace::{TraceFlags, Tracer};
    /// use pgproto::{Client, ClientConfig};
    ///
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&lines);
    /// let mut client = Client::new(ClientConfig::new("alice"))?;
    /// client.set_tracer(
    ///     Tracer::new(move |l: &[u8]| sink.lock().unwrap().push(l.to_vec()))
    ///         .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS),
    /// );
    /// let _ = client.poll_transmit();
    /// assert!(lines.lock().unwrap()[0].starts_with(b"F\t"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_tracer(&mut self, mut tracer: Tracer) {
        let (untagged, answer) = match &self.phase {
            Phase::Startup(s) => s.trace_position(self.core.out.is_empty()),
            _ => (false, None),
        };
        tracer.resume(untagged, answer);
        tracer.feed(Direction::Backend, self.core.decoder.peek());
        self.core.trace = Some(Box::new(tracer));
    }

    /// Stops tracing and gives the tracer back (libpq's `PQuntrace`); `None` if none was set.
    pub fn take_tracer(&mut self) -> Option<Tracer> {
        self.core.trace.take().map(|t| *t)
    }
}
