//! `--trace FILE`: the connection's messages in libpq's `PQtrace` format, written to a file.

use std::fs::File;
use std::io::{self, Write};
use std::time::SystemTime;

use pgproto::trace::{Timestamp, TraceSink, Tracer};

/// Lines to a file, each with the time (UTC), as libpq's `PQtrace` without flags.
struct FileSink {
    file: io::BufWriter<File>,
}

impl TraceSink for FileSink {
    fn line(&mut self, line: &[u8]) {
        // A trace that cannot be written must not stop the connection.
        let _ = self.file.write_all(line);
        let _ = self.file.write_all(b"\n");
        let _ = self.file.flush();
    }

    fn now(&mut self) -> Option<Timestamp> {
        Some(Timestamp::from_system_time(SystemTime::now()))
    }
}

/// A tracer writing to `path` (created, or truncated).
pub(crate) fn file_tracer(path: &str) -> io::Result<Tracer> {
    let file = io::BufWriter::new(File::create(path)?);
    Ok(Tracer::new(FileSink { file }))
}
