//! The result sets of replication commands, read from the text values of their one row
//! (`DataRow::columns`): `IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT`, the start and end
//! positions of `BASE_BACKUP`, and the next timeline sent after a `START_REPLICATION` on an
//! older timeline.

use crate::error::DecodeError;
use crate::message::common::utf8;
use crate::replication::Lsn;

/// A row's values: `None` is NULL.
type Row<'v, 'a> = &'v [Option<&'a [u8]>];

fn text<'a>(
    row: Row<'_, 'a>,
    i: usize,
    message: &'static str,
    field: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    match row.get(i) {
        None => Err(DecodeError::Truncated { message, field }),
        Some(None) => Ok(None),
        Some(Some(v)) => utf8(field, v).map(Some),
    }
}

fn required<'a>(
    row: Row<'_, 'a>,
    i: usize,
    message: &'static str,
    field: &'static str,
) -> Result<&'a str, DecodeError> {
    text(row, i, message, field)?.ok_or(DecodeError::InvalidValue {
        message,
        field,
        value: -1,
    })
}

fn lsn(s: &str, message: &'static str, field: &'static str) -> Result<Lsn, DecodeError> {
    s.parse().map_err(|_| DecodeError::InvalidValue {
        message,
        field,
        value: 0,
    })
}

fn number(s: &str, message: &'static str, field: &'static str) -> Result<u64, DecodeError> {
    s.parse().map_err(|_| DecodeError::InvalidValue {
        message,
        field,
        value: 0,
    })
}

/// The row of `IDENTIFY_SYSTEM`.
///
/// ```
/// use pgproto::replication::IdentifySystem;
/// let row = [Some(&b"7312345"[..]), Some(b"1"), Some(b"0/1A2B3C0"), None];
/// let id = IdentifySystem::from_row(&row)?;
/// assert_eq!((id.timeline, id.xlog_pos.to_string().as_str()), (1, "0/1A2B3C0"));
/// # Ok::<(), pgproto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    /// The cluster's system identifier.
    pub system_id: String,
    /// The current timeline.
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlog_pos: Lsn,
    /// The database connected to (logical replication), or `None`.
    pub dbname: Option<String>,
}

impl IdentifySystem {
    /// Reads the row's values (systemid, timeline, xlogpos, dbname). Fails with a
    /// [`DecodeError`] naming the column that is missing or not what the command returns.
    pub fn from_row(row: &[Option<&[u8]>]) -> Result<Self, DecodeError> {
        const M: &str = "IDENTIFY_SYSTEM";
        let timeline = number(required(row, 1, M, "timeline")?, M, "timeline")?;
        Ok(Self {
            system_id: required(row, 0, M, "systemid")?.to_string(),
            timeline: u32::try_from(timeline).map_err(|_| DecodeError::InvalidValue {
                message: M,
                field: "timeline",
                value: timeline as i64,
            })?,
            xlog_pos: lsn(required(row, 2, M, "xlogpos")?, M, "xlogpos")?,
            dbname: text(row, 3, M, "dbname")?.map(str::to_string),
        })
    }
}

/// The row of `CREATE_REPLICATION_SLOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// The slot's name.
    pub slot_name: String,
    /// Where streaming from the slot can start.
    pub consistent_point: Lsn,
    /// The exported snapshot, if any (`None` for a physical slot).
    pub snapshot_name: Option<String>,
    /// The output plugin (`None` for a physical slot).
    pub output_plugin: Option<String>,
}

impl CreatedSlot {
    /// Reads the row's values (slot_name, consistent_point, snapshot_name, output_plugin).
    /// Fails with a [`DecodeError`] naming the column that is missing or not what the command
    /// returns.
    pub fn from_row(row: &[Option<&[u8]>]) -> Result<Self, DecodeError> {
        const M: &str = "CREATE_REPLICATION_SLOT";
        Ok(Self {
            slot_name: required(row, 0, M, "slot_name")?.to_string(),
            consistent_point: lsn(
                required(row, 1, M, "consistent_point")?,
                M,
                "consistent_point",
            )?,
            snapshot_name: text(row, 2, M, "snapshot_name")?.map(str::to_string),
            output_plugin: text(row, 3, M, "output_plugin")?.map(str::to_string),
        })
    }
}

/// A WAL position and its timeline: the rows `BASE_BACKUP` sends before its archives (the
/// start) and after them (the end), and the row `START_REPLICATION` sends after the CopyBoth of
/// a timeline that is not the latest (the next timeline and where it branched off).
///
/// ```
/// use pgproto::replication::{Lsn, TimelinePosition};
/// // BASE_BACKUP's end position: the LSN first, then the timeline.
/// let end = TimelinePosition::from_lsn_row(&[Some(&b"0/2000138"[..]), Some(b"1")])?;
/// assert_eq!(end.lsn, Lsn::new(0x200_0138));
/// // After a timeline switch: the timeline first, then the switch position.
/// let next = TimelinePosition::from_timeline_row(&[Some(&b"2"[..]), Some(b"0/3000000")])?;
/// assert_eq!(next.timeline, 2);
/// # Ok::<(), pgproto::DecodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelinePosition {
    /// The position.
    pub lsn: Lsn,
    /// The timeline.
    pub timeline: u32,
}

impl TimelinePosition {
    /// Reads a row of (LSN, timeline), as `BASE_BACKUP` sends its start and end positions.
    pub fn from_lsn_row(row: &[Option<&[u8]>]) -> Result<Self, DecodeError> {
        Self::read(row, 0, 1, "BASE_BACKUP position")
    }

    /// Reads a row of (timeline, LSN), as `START_REPLICATION` sends the next timeline after
    /// the CopyBoth of an older one.
    pub fn from_timeline_row(row: &[Option<&[u8]>]) -> Result<Self, DecodeError> {
        Self::read(row, 1, 0, "next timeline")
    }

    fn read(
        row: &[Option<&[u8]>],
        lsn_at: usize,
        tli_at: usize,
        m: &'static str,
    ) -> Result<Self, DecodeError> {
        let tli = number(required(row, tli_at, m, "timeline")?, m, "timeline")?;
        Ok(Self {
            lsn: lsn(required(row, lsn_at, m, "lsn")?, m, "lsn")?,
            timeline: u32::try_from(tli).map_err(|_| DecodeError::InvalidValue {
                message: m,
                field: "timeline",
                value: tli as i64,
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let slot = CreatedSlot::from_row(&[
            Some(b"s1"),
            Some(b"0/1234"),
            Some(b"00000003-00000002-1"),
            Some(b"pgoutput"),
        ])
        .unwrap();
        assert_eq!(slot.consistent_point, Lsn::new(0x1234));
        assert_eq!(slot.output_plugin.as_deref(), Some("pgoutput"));
        let physical = CreatedSlot::from_row(&[Some(b"p"), Some(b"0/0"), None, None]).unwrap();
        assert_eq!(physical.snapshot_name, None);
        assert_eq!(
            IdentifySystem::from_row(&[Some(b"1"), Some(b"x"), Some(b"0/0"), None]),
            Err(DecodeError::InvalidValue {
                message: "IDENTIFY_SYSTEM",
                field: "timeline",
                value: 0
            })
        );
        assert_eq!(
            IdentifySystem::from_row(&[Some(b"1"), Some(b"1")]),
            Err(DecodeError::Truncated {
                message: "IDENTIFY_SYSTEM",
                field: "xlogpos"
            })
        );
        assert!(TimelinePosition::from_lsn_row(&[None, Some(b"1")]).is_err());
    }
}
