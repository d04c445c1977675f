//! `--trace FILE`: every connection's messages in libpq's `PQtrace` format, in one file.
//!
//! Each line is the connection's number (1 for the first connection accepted, then 2, ...), a
//! tab, and the line libpq's `PQtrace` would write without flags: the time (UTC), a tab, `F` or
//! `B`, the length, the message and its fields (see `pgproto::trace`).

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use pgproto::trace::{Timestamp, TraceSink, Tracer};

/// The trace file every connection writes to.
#[derive(Debug)]
pub(crate) struct TraceFile {
    file: Mutex<io::BufWriter<File>>,
    next: AtomicU64,
}

impl TraceFile {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &str) -> io::Result<Self> {
        Ok(Self {
            file: Mutex::new(io::BufWriter::new(File::create(path)?)),
            next: AtomicU64::new(1),
        })
    }

    /// A tracer for the next connection.
    pub(crate) fn tracer(self: &Arc<Self>) -> Tracer {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        Tracer::new(Sink {
            file: Arc::clone(self),
            prefix: format!("{number}\t").into_bytes(),
            line: Vec::new(),
        })
    }
}

/// One connection's lines.
struct Sink {
    file: Arc<TraceFile>,
    prefix: Vec<u8>,
    line: Vec<u8>,
}

impl TraceSink for Sink {
    fn line(&mut self, line: &[u8]) {
        // One write per line, so the lines of concurrent connections do not mix.
        self.line.clear();
        self.line.extend_from_slice(&self.prefix);
        self.line.extend_from_slice(line);
        self.line.push(b'\n');
        let mut file = self
            .file
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A trace that cannot be written must not stop the server.
        let _ = file.write_all(&self.line);
        let _ = file.flush();
    }

    fn now(&mut self) -> Option<Timestamp> {
        Some(Timestamp::from_system_time(SystemTime::now()))
    }
}
