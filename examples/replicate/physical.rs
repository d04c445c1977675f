//! `replicate physical`: WAL into a directory, as `pg_receivewal -D DIR --endpos LSN` writes
//! it.
//!
//! The segment being written is `NAME.partial`, zero-filled to the segment size when created;
//! once its last byte is written it is synced and renamed to `NAME`, 24 upper-case hexadecimal
//! digits: 8 for the timeline, then the segment number split into two halves of 8 (for example
//! `000000010000000000000003`). Streaming starts
//! at the segment after the last complete one in the directory, or at a `.partial` segment's
//! start, or (with `--slot`) at the slot's `restart_lsn` (`READ_REPLICATION_SLOT`), or at the
//! server's current WAL position; `--start` overrides these. The start is always rounded down
//! to a segment boundary. Status updates report the written and synced positions: at the
//! start, every 10 seconds, and when the server asks. The run ends once the WAL written reaches
//! `--end` (the last XLogData is written whole, as pg_receivewal does); the unfinished segment
//! stays `.partial`.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use pgproto::replication::{
    IdentifySystem, Lsn, PrimaryMessage, ReplicationCommand, StandbyStatusUpdate, Timestamp,
};

use crate::conn::{text, Conn, CopyEvent, Started};
use crate::conninfo::ConnInfo;
use crate::results::DriverError;
use crate::Failure;

const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// The `physical` command line.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) conninfo: String,
    pub(crate) dir: PathBuf,
    pub(crate) slot: Option<String>,
    pub(crate) start: Option<Lsn>,
    pub(crate) end: Lsn,
}

/// A size as `SHOW` prints it (`16MB`, `1GB`, `512kB`).
fn parse_size(s: &str) -> Option<u64> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    let unit = match &s[digits.len()..] {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// The WAL segment file name of segment `segno` on timeline `tli`.
pub(crate) fn segment_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per_id = 0x1_0000_0000 / seg_size;
    format!("{tli:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

/// The segment being written.
struct Open {
    segno: u64,
    file: File,
    path: PathBuf,
}

/// Writes WAL into segment files.
struct Writer {
    dir: PathBuf,
    tli: u32,
    seg_size: u64,
    open: Option<Open>,
    /// The position after the last byte written.
    written: Lsn,
    /// The position up to which the files are synced.
    synced: Lsn,
}

impl Writer {
    fn partial_path(&self, segno: u64) -> PathBuf {
        self.dir.join(format!(
            "{}.partial",
            segment_name(self.tli, segno, self.seg_size)
        ))
    }

    /// Writes `data`, which starts at `start`.
    fn write(&mut self, start: Lsn, mut data: &[u8]) -> Result<(), Failure> {
        let mut at = start.as_u64();
        while !data.is_empty() {
            let segno = at / self.seg_size;
            let offset = at % self.seg_size;
            let n = data.len().min((self.seg_size - offset) as usize);
            if self.open.as_ref().map(|o| o.segno) != Some(segno) {
                self.close()?;
                let path = self.partial_path(segno);
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(Failure::Output)?;
                if file.metadata().map_err(Failure::Output)?.len() != self.seg_size {
                    // A new segment, filled with zeros to its full size first.
                    file.set_len(self.seg_size).map_err(Failure::Output)?;
                }
                self.open = Some(Open { segno, file, path });
            }
            let open = self.open.as_mut().expect("a segment was just opened");
            open.file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| open.file.write_all(&data[..n]))
                .map_err(Failure::Output)?;
            at += n as u64;
            data = &data[n..];
            self.written = Lsn::new(at);
            if at.is_multiple_of(self.seg_size) {
                self.complete()?;
            }
        }
        Ok(())
    }

    /// The open segment is complete: sync it and drop `.partial` from its name.
    fn complete(&mut self) -> Result<(), Failure> {
        if let Some(open) = self.open.take() {
            open.file.sync_all().map_err(Failure::Output)?;
            let done = self
                .dir
                .join(segment_name(self.tli, open.segno, self.seg_size));
            fs::rename(&open.path, done).map_err(Failure::Output)?;
            self.synced = self.written;
        }
        Ok(())
    }

    /// Syncs the open segment and keeps it `.partial`.
    fn close(&mut self) -> Result<(), Failure> {
        if let Some(open) = self.open.take() {
            open.file.sync_all().map_err(Failure::Output)?;
            self.synced = self.written;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Failure> {
        if let Some(open) = &self.open {
            open.file.sync_data().map_err(Failure::Output)?;
        }
        self.synced = self.written;
        Ok(())
    }
}

/// Where the directory says streaming should start: after the last complete segment, or at a
/// partial one's start.
fn start_in_dir(dir: &Path, seg_size: u64) -> Result<Option<Lsn>, Failure> {
    let mut best: Option<(u64, bool)> = None;
    for entry in fs::read_dir(dir).map_err(Failure::Output)? {
        let name = entry.map_err(Failure::Output)?.file_name();
        let name = name.to_string_lossy();
        let (base, partial) = match name.strip_suffix(".partial") {
            Some(b) => (b, true),
            None => (&*name, false),
        };
        if base.len() != 24 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let (Ok(log), Ok(seg)) = (
            u64::from_str_radix(&base[8..16], 16),
            u64::from_str_radix(&base[16..24], 16),
        ) else {
            continue;
        };
        let segno = log * (0x1_0000_0000 / seg_size) + seg;
        // A complete segment means starting at the next one.
        let next = if partial { segno } else { segno + 1 };
        if best.is_none_or(|(b, _)| next > b) {
            best = Some((next, partial));
        }
    }
    Ok(best.map(|(segno, _)| Lsn::new(segno * seg_size)))
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Runs `replicate physical`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let info = ConnInfo::parse(&args.conninfo)?;
    let mut conn = Conn::connect(&info, Some("true"))?;
    let id_rows = conn.query("IDENTIFY_SYSTEM")?;
    let row = id_rows
        .first()
        .and_then(|s| s.first())
        .ok_or_else(|| Failure::Message("IDENTIFY_SYSTEM returned no row".into()))?;
    let values: Vec<Option<&[u8]>> = row.iter().map(|v| v.as_deref()).collect();
    let id = IdentifySystem::from_row(&values).map_err(|e| DriverError::Protocol(e.into()))?;
    let show = conn.query("SHOW wal_segment_size")?;
    let seg_size = show
        .first()
        .and_then(|s| s.first())
        .and_then(|r| text(r, 0))
        .and_then(|s| parse_size(&s))
        .filter(|s| s.is_power_of_two())
        .ok_or_else(|| Failure::Message("cannot read wal_segment_size".into()))?;
    fs::create_dir_all(&args.dir).map_err(Failure::Output)?;

    let mut tli = id.timeline;
    let mut start = match args.start {
        Some(s) => Some(s),
        None => start_in_dir(&args.dir, seg_size)?,
    };
    if let (None, Some(slot)) = (start, &args.slot) {
        let sets = conn.query(&format!(
            "READ_REPLICATION_SLOT {}",
            String::from_utf8_lossy(&crate::names::quote_identifier(slot.as_bytes()))
        ))?;
        if let Some(row) = sets.first().and_then(|s| s.first()) {
            if let (Some(lsn), Some(t)) = (text(row, 1), text(row, 2)) {
                start = lsn.parse().ok();
                tli = t.parse().unwrap_or(tli);
            }
        }
    }
    let start = start.unwrap_or(id.xlog_pos);
    let start = Lsn::new(start.as_u64() - start.as_u64() % seg_size);

    let command = ReplicationCommand::StartPhysical {
        slot: args.slot.clone(),
        start,
        timeline: Some(tli),
    };
    if let Started::Done(_) = conn.start(&command.to_string())? {
        return Err(Failure::Message(
            "the server has no WAL to stream on that timeline".into(),
        ));
    }
    let mut w = Writer {
        dir: args.dir.clone(),
        tli,
        seg_size,
        open: None,
        written: start,
        synced: start,
    };
    let mut last_status = Instant::now();
    let send_status = |conn: &mut Conn, w: &Writer, reply: bool| {
        let update = StandbyStatusUpdate::new(w.written, w.synced, Lsn::INVALID, now(), reply);
        conn.send(&update)
    };
    send_status(&mut conn, &w, false)?;
    let mut server_done = false;
    loop {
        let wait = STATUS_INTERVAL.saturating_sub(last_status.elapsed());
        match conn.copy_event(wait.max(Duration::from_millis(10)))? {
            CopyEvent::Idle => {
                w.sync()?;
                send_status(&mut conn, &w, false)?;
                last_status = Instant::now();
            }
            CopyEvent::Done => {
                server_done = true;
                break;
            }
            CopyEvent::Data(d) => {
                match PrimaryMessage::decode(&d).map_err(|e| DriverError::Protocol(e.into()))? {
                    PrimaryMessage::XLogData(x) => {
                        w.write(x.wal_start(), x.data())?;
                        if w.written >= args.end {
                            break;
                        }
                    }
                    PrimaryMessage::PrimaryKeepalive(k) if k.reply_requested() => {
                        w.sync()?;
                        send_status(&mut conn, &w, false)?;
                        last_status = Instant::now();
                    }
                    _ => {}
                }
            }
        }
    }
    // Done: sync, report, end the client's side; the segment stays `.partial`.
    w.close()?;
    if !server_done {
        send_status(&mut conn, &w, false)?;
    }
    conn.copy_done()?;
    while !server_done {
        match conn.copy_event(Duration::from_secs(30))? {
            CopyEvent::Done => server_done = true,
            CopyEvent::Data(_) => {}
            CopyEvent::Idle => {
                return Err(Failure::Message("the server did not end the COPY".into()))
            }
        }
    }
    let sets = conn.finish()?;
    if let Some(row) = sets.first().and_then(|s| s.first()) {
        // The server's timeline ended before --end: it names the next one.
        eprintln!(
            "replicate: timeline {tli} ended at {}; the server is on timeline {} now",
            text(row, 1).unwrap_or_default(),
            text(row, 0).unwrap_or_default()
        );
    }
    conn.terminate();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(segment_name(1, 0x102, 16 << 20), "000000010000000100000002");
    }
}
