//! The messages inside CopyData during `START_REPLICATION` (physical and logical): what the
//! primary (walsender) sends and what the standby (the client) answers.
//!
//! Layouts: PostgreSQL 18 documentation, section 54.4 "Streaming Replication Protocol"
//! (<https://www.postgresql.org/docs/18/protocol-replication.html>). The primary status update
//! (`s`) and its request (`p`) are **not in PostgreSQL 18**: they come from the development
//! branch after 18 (section `protocol-replication-primary-status-update`), and a PostgreSQL 18
//! server never sends or accepts them.

use bytes::{BufMut, BytesMut};

use crate::codec::reader::SliceReader;
use crate::error::{DecodeError, EncodeError, Tag};
use crate::replication::wire::{check_payload, Field};
use crate::replication::{Lsn, Payload, Timestamp};

/// The bytes of XLogData before the WAL data: type byte, start, end, clock.
const XLOG_HEADER: usize = 1 + 8 + 8 + 8;

/// XLogData (`w`, primary to standby): a run of WAL, or in logical replication one message of
/// the output plugin (see [`pgoutput`](crate::replication::pgoutput)).
///
/// ```
/// use pgproto::replication::{Lsn, Payload, PrimaryMessage, Timestamp, XLogData};
///
/// let m = XLogData::new(Lsn::new(0x100), Lsn::new(0x200), Timestamp::EPOCH, b"wal")?;
/// let mut out = bytes::BytesMut::new();
/// m.encode_payload(&mut out);
/// let PrimaryMessage::XLogData(d) = PrimaryMessage::decode(&out)? else { unreachable!() };
/// assert_eq!(d.data(), b"wal");
/// assert_eq!(d.data_end(), Lsn::new(0x103));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XLogData<'a> {
    wal_start: Lsn,
    wal_end: Lsn,
    send_time: Timestamp,
    data: &'a [u8],
}

impl<'a> XLogData<'a> {
    /// The type byte.
    pub const TAG: u8 = b'w';

    /// XLogData carrying `data`, which starts at `wal_start`; `wal_end` is the end of WAL on
    /// the server, `send_time` its clock. Fails with [`EncodeError::TooLong`] when the message
    /// would not fit one CopyData.
    pub fn new(
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: Timestamp,
        data: &'a [u8],
    ) -> Result<Self, EncodeError> {
        check_payload("XLogData", XLOG_HEADER + data.len())?;
        Ok(Self {
            wal_start,
            wal_end,
            send_time,
            data,
        })
    }

    /// Where `data` starts in the WAL stream.
    pub fn wal_start(&self) -> Lsn {
        self.wal_start
    }

    /// The current end of WAL on the server.
    pub fn wal_end(&self) -> Lsn {
        self.wal_end
    }

    /// The server's clock when it sent the message.
    pub fn send_time(&self) -> Timestamp {
        self.send_time
    }

    /// The WAL data (physical), or one output plugin message (logical).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The location after the last byte of `data` (`wal_start + data.len()`).
    pub fn data_end(&self) -> Lsn {
        self.wal_start + self.data.len() as u64
    }

    /// Appends a whole CopyData frame holding XLogData whose data is `inner` (an output plugin
    /// message), without building the data first: what a server streaming pgoutput writes.
    /// Fails with [`EncodeError::TooLong`] when it would not fit one CopyData.
    ///
    /// ```
    /// use pgproto::replication::pgoutput::{Begin, PgOutputMessage};
    /// use pgproto::replication::{Lsn, Timestamp, XLogData};
    ///
    /// let begin = PgOutputMessage::Begin(Begin::new(Lsn::new(0x500), Timestamp::EPOCH, 742));
    /// let mut out = bytes::BytesMut::new();
    /// XLogData::encode_copy_data_with(&mut out, Lsn::new(0x400), Lsn::new(0x500), Timestamp::EPOCH, &begin)?;
    /// assert_eq!(out.len(), 5 + 25 + 21);
    /// # Ok::<(), pgproto::EncodeError>(())
    /// ```
    pub fn encode_copy_data_with(
        out: &mut BytesMut,
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: Timestamp,
        inner: &impl Payload,
    ) -> Result<(), EncodeError> {
        let len = XLOG_HEADER + inner.payload_len();
        check_payload("XLogData", len)?;
        out.reserve(5 + len);
        out.put_u8(b'd');
        out.put_i32((len + 4) as i32);
        out.put_u8(Self::TAG);
        wal_start.put(out);
        wal_end.put(out);
        send_time.put(out);
        inner.encode_payload(out);
        Ok(())
    }

    fn read(mut r: SliceReader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            wal_start: Lsn::read(&mut r, "WAL start")?,
            wal_end: Lsn::read(&mut r, "WAL end")?,
            send_time: Timestamp::read(&mut r, "send time")?,
            data: r.rest(),
        })
    }
}

impl Payload for XLogData<'_> {
    fn encode_payload(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        self.wal_start.put(out);
        self.wal_end.put(out);
        self.send_time.put(out);
        out.put_slice(self.data);
    }

    fn payload_len(&self) -> usize {
        XLOG_HEADER + self.data.len()
    }
}

fixed_message!(
    /// Primary keepalive message (`k`, primary to standby): the end of WAL on the server, and
    /// whether the standby must answer at once (with a [`StandbyStatusUpdate`]) to avoid a
    /// timeout disconnect.
    PrimaryKeepalive, b'k', "primary keepalive";
    {
        /// The current end of WAL on the server.
        wal_end: Lsn = "WAL end",
        /// The server's clock when it sent the message.
        send_time: Timestamp = "send time",
        /// Whether the standby should reply as soon as possible.
        reply_requested: bool = "reply requested",
    }
);

fixed_message!(
    /// Primary status update (`s`, primary to standby), **post-PostgreSQL 18** (in the
    /// development branch after 18, absent from the released 18.x documentation): the answer to
    /// a [`PrimaryStatusRequest`].
    PrimaryStatusUpdate, b's', "primary status update";
    {
        /// The latest WAL write position on the server.
        write_lsn: Lsn = "write LSN",
        /// The oldest transaction in its commit phase, as `epoch << 32 | xid` (the next xid
        /// when none is).
        oldest_xid_in_commit: u64 = "oldest xid in commit",
        /// The next transaction id to be assigned, as `epoch << 32 | xid`.
        next_xid: u64 = "next xid",
        /// The server's clock when it sent the message.
        send_time: Timestamp = "send time",
    }
);

fixed_message!(
    /// Standby status update (`r`, standby to primary): how far the standby has written,
    /// flushed and applied the stream. A logical replication client reports what it has
    /// processed as the flush position, which moves the slot's `confirmed_flush_lsn`.
    StandbyStatusUpdate, b'r', "standby status update";
    {
        /// The location of the last WAL byte + 1 received and written.
        write: Lsn = "write LSN",
        /// The location of the last WAL byte + 1 flushed to disk.
        flush: Lsn = "flush LSN",
        /// The location of the last WAL byte + 1 applied.
        apply: Lsn = "apply LSN",
        /// The client's clock when it sent the message.
        send_time: Timestamp = "send time",
        /// Whether the server should reply at once (a ping).
        reply_requested: bool = "reply requested",
    }
);

fixed_message!(
    /// Hot standby feedback message (`h`, standby to primary): the oldest transactions the
    /// standby still needs. Both xmins 0: feedback is being turned off.
    HotStandbyFeedback, b'h', "hot standby feedback";
    {
        /// The client's clock when it sent the message.
        send_time: Timestamp = "send time",
        /// The standby's global xmin, excluding the slots' catalog_xmin.
        xmin: u32 = "xmin",
        /// The epoch of `xmin`.
        xmin_epoch: u32 = "xmin epoch",
        /// The lowest catalog_xmin of the standby's replication slots (0 if none).
        catalog_xmin: u32 = "catalog xmin",
        /// The epoch of `catalog_xmin`.
        catalog_xmin_epoch: u32 = "catalog xmin epoch",
    }
);

fixed_message!(
    /// Request for a primary status update (`p`, standby to primary), **post-PostgreSQL 18**
    /// (in the development branch after 18, absent from the released 18.x documentation): asks
    /// for a [`PrimaryStatusUpdate`].
    PrimaryStatusRequest, b'p', "primary status request";
    {
        /// The client's clock when it sent the message.
        send_time: Timestamp = "send time",
    }
);

/// A message inside CopyData from the primary during `START_REPLICATION`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryMessage<'a> {
    /// XLogData (`w`).
    XLogData(XLogData<'a>),
    /// Primary keepalive message (`k`).
    PrimaryKeepalive(PrimaryKeepalive),
    /// Primary status update (`s`), post-PostgreSQL 18.
    PrimaryStatusUpdate(PrimaryStatusUpdate),
}

impl<'a> PrimaryMessage<'a> {
    /// Decodes a CopyData payload sent by the primary.
    ///
    /// Fails with [`DecodeError::UnknownSubmessage`] for another type byte, or with the error
    /// naming the message and field that does not decode.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((&tag, body)) = payload.split_first() else {
            return Err(DecodeError::Truncated {
                message: "streaming replication message",
                field: "type",
            });
        };
        Ok(match tag {
            XLogData::TAG => Self::XLogData(XLogData::read(SliceReader::new(body, "XLogData"))?),
            PrimaryKeepalive::TAG => Self::PrimaryKeepalive(PrimaryKeepalive::read(
                SliceReader::new(body, "PrimaryKeepalive"),
            )?),
            PrimaryStatusUpdate::TAG => Self::PrimaryStatusUpdate(PrimaryStatusUpdate::read(
                SliceReader::new(body, "PrimaryStatusUpdate"),
            )?),
            other => {
                return Err(DecodeError::UnknownSubmessage {
                    kind: "streaming replication (primary)",
                    tag: Tag(other),
                })
            }
        })
    }

    /// The message's name: `XLogData`, `PrimaryKeepalive` or `PrimaryStatusUpdate`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::XLogData(_) => "XLogData",
            Self::PrimaryKeepalive(_) => "PrimaryKeepalive",
            Self::PrimaryStatusUpdate(_) => "PrimaryStatusUpdate",
        }
    }
}

impl Payload for PrimaryMessage<'_> {
    fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::XLogData(m) => m.encode_payload(out),
            Self::PrimaryKeepalive(m) => m.encode_payload(out),
            Self::PrimaryStatusUpdate(m) => m.encode_payload(out),
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::XLogData(m) => m.payload_len(),
            Self::PrimaryKeepalive(m) => m.payload_len(),
            Self::PrimaryStatusUpdate(m) => m.payload_len(),
        }
    }
}

/// A message inside CopyData from the standby (the client) during `START_REPLICATION`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StandbyMessage {
    /// Standby status update (`r`).
    StandbyStatusUpdate(StandbyStatusUpdate),
    /// Hot standby feedback message (`h`).
    HotStandbyFeedback(HotStandbyFeedback),
    /// Request for a primary status update (`p`), post-PostgreSQL 18.
    PrimaryStatusRequest(PrimaryStatusRequest),
}

impl StandbyMessage {
    /// Decodes a CopyData payload sent by the standby.
    ///
    /// Fails with [`DecodeError::UnknownSubmessage`] for another type byte, or with the error
    /// naming the message and field that does not decode.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let Some((&tag, body)) = payload.split_first() else {
            return Err(DecodeError::Truncated {
                message: "streaming replication message",
                field: "type",
            });
        };
        Ok(match tag {
            StandbyStatusUpdate::TAG => Self::StandbyStatusUpdate(StandbyStatusUpdate::read(
                SliceReader::new(body, "StandbyStatusUpdate"),
            )?),
            HotStandbyFeedback::TAG => Self::HotStandbyFeedback(HotStandbyFeedback::read(
                SliceReader::new(body, "HotStandbyFeedback"),
            )?),
            PrimaryStatusRequest::TAG => Self::PrimaryStatusRequest(PrimaryStatusRequest::read(
                SliceReader::new(body, "PrimaryStatusRequest"),
            )?),
            other => {
                return Err(DecodeError::UnknownSubmessage {
                    kind: "streaming replication (standby)",
                    tag: Tag(other),
                })
            }
        })
    }

    /// The message's name: `StandbyStatusUpdate`, `HotStandbyFeedback` or
    /// `PrimaryStatusRequest`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StandbyStatusUpdate(_) => "StandbyStatusUpdate",
            Self::HotStandbyFeedback(_) => "HotStandbyFeedback",
            Self::PrimaryStatusRequest(_) => "PrimaryStatusRequest",
        }
    }
}

impl Payload for StandbyMessage {
    fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::StandbyStatusUpdate(m) => m.encode_payload(out),
            Self::HotStandbyFeedback(m) => m.encode_payload(out),
            Self::PrimaryStatusRequest(m) => m.encode_payload(out),
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::StandbyStatusUpdate(m) => m.payload_len(),
            Self::HotStandbyFeedback(m) => m.payload_len(),
            Self::PrimaryStatusRequest(m) => m.payload_len(),
        }
    }
}
