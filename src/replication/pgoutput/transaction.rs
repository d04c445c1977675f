//! The pgoutput messages that frame transactions: Begin and Commit, the streamed-transaction
//! messages (protocol version 2 and later) and the two-phase messages (version 3 and later).

use bytes::{BufMut, BytesMut};

use crate::codec::check_cstr;
use crate::codec::reader::SliceReader;
use crate::error::{DecodeError, EncodeError};
use crate::message::common::utf8;
use crate::replication::wire::{check_payload, put_cstr, zero_flags, Field};
use crate::replication::{Lsn, Timestamp};

fixed_message!(
    /// Begin (`B`): a transaction's changes follow, up to its [`Commit`].
    Begin, b'B', "Begin";
    {
        /// The final LSN of the transaction (its commit record).
        final_lsn: Lsn = "final LSN",
        /// The commit timestamp.
        commit_time: Timestamp = "commit timestamp",
        /// The transaction's xid.
        xid: u32 = "xid",
    }
);

fixed_message!(
    /// Commit (`C`): the end of the transaction that [`Begin`] opened.
    Commit, b'C', "Commit", zero_flags;
    {
        /// The LSN of the commit.
        commit_lsn: Lsn = "commit LSN",
        /// The end LSN of the transaction.
        end_lsn: Lsn = "end LSN",
        /// The commit timestamp.
        commit_time: Timestamp = "commit timestamp",
    }
);

fixed_message!(
    /// Stream Start (`S`, protocol version 2 and later): a segment of a large in-progress
    /// transaction follows, up to Stream Stop; its messages carry the xid of the
    /// (sub)transaction they belong to.
    StreamStart, b'S', "Stream Start";
    {
        /// The top-level transaction's xid.
        xid: u32 = "xid",
        /// Whether this is the transaction's first segment.
        first_segment: bool = "first segment",
    }
);

/// Stream Commit (`c`, protocol version 2 and later): a streamed transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamCommit {
    xid: u32,
    commit_lsn: Lsn,
    end_lsn: Lsn,
    commit_time: Timestamp,
}

impl StreamCommit {
    /// The type byte.
    pub const TAG: u8 = b'c';

    /// A Stream Commit message.
    pub const fn new(xid: u32, commit_lsn: Lsn, end_lsn: Lsn, commit_time: Timestamp) -> Self {
        Self {
            xid,
            commit_lsn,
            end_lsn,
            commit_time,
        }
    }

    /// The transaction's xid.
    pub const fn xid(&self) -> u32 {
        self.xid
    }

    /// The LSN of the commit.
    pub const fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// The end LSN of the transaction.
    pub const fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// The commit timestamp.
    pub const fn commit_time(&self) -> Timestamp {
        self.commit_time
    }

    pub(crate) fn read(mut r: SliceReader<'_>) -> Result<Self, DecodeError> {
        let xid = r.u32("xid")?;
        zero_flags(&mut r)?;
        let m = Self {
            xid,
            commit_lsn: Lsn::read(&mut r, "commit LSN")?,
            end_lsn: Lsn::read(&mut r, "end LSN")?,
            commit_time: Timestamp::read(&mut r, "commit timestamp")?,
        };
        r.finish()?;
        Ok(m)
    }

    pub(crate) const LEN: usize = 1 + 4 + 1 + 8 + 8 + 8;

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        out.put_u32(self.xid);
        out.put_u8(0);
        self.commit_lsn.put(out);
        self.end_lsn.put(out);
        self.commit_time.put(out);
    }
}

/// Stream Abort (`A`, protocol version 2 and later): a streamed transaction, or one of its
/// subtransactions, aborted. With protocol version 4 and `streaming = parallel` it also
/// carries the abort's LSN and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamAbort {
    xid: u32,
    subxid: u32,
    abort: Option<(Lsn, Timestamp)>,
}

impl StreamAbort {
    /// The type byte.
    pub const TAG: u8 = b'A';

    /// A Stream Abort of `subxid` (equal to `xid` when the whole transaction aborted); `abort`
    /// is the abort's LSN and timestamp, sent only under protocol version 4 with
    /// `streaming = parallel`.
    pub const fn new(xid: u32, subxid: u32, abort: Option<(Lsn, Timestamp)>) -> Self {
        Self { xid, subxid, abort }
    }

    /// The top-level transaction's xid.
    pub const fn xid(&self) -> u32 {
        self.xid
    }

    /// The aborted (sub)transaction's xid; equal to [`StreamAbort::xid`] for the whole
    /// transaction.
    pub const fn subxid(&self) -> u32 {
        self.subxid
    }

    /// The abort's LSN and timestamp (protocol version 4, `streaming = parallel`).
    pub const fn abort(&self) -> Option<(Lsn, Timestamp)> {
        self.abort
    }

    pub(crate) fn read(mut r: SliceReader<'_>, parallel: bool) -> Result<Self, DecodeError> {
        let xid = r.u32("xid")?;
        let subxid = r.u32("subtransaction xid")?;
        let abort = if parallel {
            Some((
                Lsn::read(&mut r, "abort LSN")?,
                Timestamp::read(&mut r, "abort timestamp")?,
            ))
        } else {
            None
        };
        r.finish()?;
        Ok(Self { xid, subxid, abort })
    }

    pub(crate) fn payload_len(&self) -> usize {
        9 + if self.abort.is_some() { 16 } else { 0 }
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        out.put_u32(self.xid);
        out.put_u32(self.subxid);
        if let Some((lsn, time)) = self.abort {
            lsn.put(out);
            time.put(out);
        }
    }
}

/// A prepared transaction, as Begin Prepare (`b`), Prepare (`P`), Commit Prepared (`K`) and
/// Stream Prepare (`p`) describe it (protocol version 3 and later, `two_phase` on). Which LSNs
/// and which time these are depends on the message: see
/// [`PgOutputMessage`](super::PgOutputMessage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prepared<'a> {
    lsn: Lsn,
    end_lsn: Lsn,
    time: Timestamp,
    xid: u32,
    gid: &'a [u8],
}

impl<'a> Prepared<'a> {
    /// A prepared transaction's description. Fails with [`EncodeError::InteriorNul`] when
    /// `gid` contains NUL.
    pub fn new(
        lsn: Lsn,
        end_lsn: Lsn,
        time: Timestamp,
        xid: u32,
        gid: &'a [u8],
    ) -> Result<Self, EncodeError> {
        check_cstr("gid", gid)?;
        check_payload("Prepare", 31 + gid.len())?;
        Ok(Self {
            lsn,
            end_lsn,
            time,
            xid,
            gid,
        })
    }

    /// The LSN of the prepare (Begin Prepare, Prepare, Stream Prepare) or of the commit of the
    /// prepared transaction (Commit Prepared).
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The end LSN of the prepared transaction (of its commit, for Commit Prepared).
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// The prepare timestamp (the commit timestamp, for Commit Prepared).
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// The transaction's xid.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The user-defined GID of the prepared transaction.
    pub fn gid(&self) -> &'a [u8] {
        self.gid
    }

    /// The GID as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn gid_str(&self) -> Result<&'a str, DecodeError> {
        utf8("gid", self.gid)
    }

    pub(crate) fn read(mut r: SliceReader<'a>, flags: bool) -> Result<Self, DecodeError> {
        if flags {
            zero_flags(&mut r)?;
        }
        let m = Self {
            lsn: Lsn::read(&mut r, "LSN")?,
            end_lsn: Lsn::read(&mut r, "end LSN")?,
            time: Timestamp::read(&mut r, "timestamp")?,
            xid: r.u32("xid")?,
            gid: r.cstr("gid")?,
        };
        r.finish()?;
        Ok(m)
    }

    pub(crate) fn payload_len(&self, flags: bool) -> usize {
        1 + usize::from(flags) + 8 + 8 + 8 + 4 + self.gid.len() + 1
    }

    pub(crate) fn put(&self, out: &mut BytesMut, tag: u8, flags: bool) {
        out.put_u8(tag);
        if flags {
            out.put_u8(0);
        }
        self.lsn.put(out);
        self.end_lsn.put(out);
        self.time.put(out);
        out.put_u32(self.xid);
        put_cstr(out, self.gid);
    }
}

/// Rollback Prepared (`r`, protocol version 3 and later, `two_phase` on): a prepared
/// transaction was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RollbackPrepared<'a> {
    prepare_end_lsn: Lsn,
    rollback_end_lsn: Lsn,
    prepare_time: Timestamp,
    rollback_time: Timestamp,
    xid: u32,
    gid: &'a [u8],
}

impl<'a> RollbackPrepared<'a> {
    /// The type byte.
    pub const TAG: u8 = b'r';

    /// A Rollback Prepared message. Fails with [`EncodeError::InteriorNul`] when `gid`
    /// contains NUL.
    pub fn new(
        prepare_end_lsn: Lsn,
        rollback_end_lsn: Lsn,
        prepare_time: Timestamp,
        rollback_time: Timestamp,
        xid: u32,
        gid: &'a [u8],
    ) -> Result<Self, EncodeError> {
        check_cstr("gid", gid)?;
        check_payload("Rollback Prepared", 39 + gid.len())?;
        Ok(Self {
            prepare_end_lsn,
            rollback_end_lsn,
            prepare_time,
            rollback_time,
            xid,
            gid,
        })
    }

    /// The end LSN of the prepared transaction.
    pub fn prepare_end_lsn(&self) -> Lsn {
        self.prepare_end_lsn
    }

    /// The end LSN of the rollback.
    pub fn rollback_end_lsn(&self) -> Lsn {
        self.rollback_end_lsn
    }

    /// The prepare timestamp.
    pub fn prepare_time(&self) -> Timestamp {
        self.prepare_time
    }

    /// The rollback timestamp.
    pub fn rollback_time(&self) -> Timestamp {
        self.rollback_time
    }

    /// The transaction's xid.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The user-defined GID of the prepared transaction.
    pub fn gid(&self) -> &'a [u8] {
        self.gid
    }

    pub(crate) fn read(mut r: SliceReader<'a>) -> Result<Self, DecodeError> {
        zero_flags(&mut r)?;
        let m = Self {
            prepare_end_lsn: Lsn::read(&mut r, "prepare end LSN")?,
            rollback_end_lsn: Lsn::read(&mut r, "rollback end LSN")?,
            prepare_time: Timestamp::read(&mut r, "prepare timestamp")?,
            rollback_time: Timestamp::read(&mut r, "rollback timestamp")?,
            xid: r.u32("xid")?,
            gid: r.cstr("gid")?,
        };
        r.finish()?;
        Ok(m)
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + 1 + 8 + 8 + 8 + 8 + 4 + self.gid.len() + 1
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        out.put_u8(0);
        self.prepare_end_lsn.put(out);
        self.rollback_end_lsn.put(out);
        self.prepare_time.put(out);
        self.rollback_time.put(out);
        out.put_u32(self.xid);
        put_cstr(out, self.gid);
    }
}
