//! The pgoutput messages about data: Relation, Type, Insert, Update, Delete, Truncate, the
//! logical decoding Message, and Origin.

use bytes::{BufMut, BytesMut};

use crate::codec::reader::SliceReader;
use crate::codec::{check_count, check_cstr};
use crate::error::{DecodeError, EncodeError};
use crate::message::common::utf8;
use crate::replication::pgoutput::list::{Item, Iter, List};
use crate::replication::pgoutput::{Context, TupleData};
use crate::replication::wire::{check_payload, invalid, put_cstr, Field};
use crate::replication::Lsn;

/// The xid prefix of a message inside a streamed transaction.
fn read_xid(r: &mut SliceReader<'_>, ctx: Context) -> Result<Option<u32>, DecodeError> {
    if ctx.in_stream {
        r.u32("xid").map(Some)
    } else {
        Ok(None)
    }
}

fn put_xid(out: &mut BytesMut, xid: Option<u32>) {
    if let Some(xid) = xid {
        out.put_u32(xid);
    }
}

fn xid_len(xid: Option<u32>) -> usize {
    if xid.is_some() {
        4
    } else {
        0
    }
}

/// A relation's replica identity (`pg_class.relreplident`): what the old row of an Update or
/// Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key, if any.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: every column.
    Full,
    /// `i`: the columns of a chosen index.
    Index,
}

impl ReplicaIdentity {
    /// The byte as in `relreplident`.
    pub fn byte(self) -> u8 {
        match self {
            Self::Default => b'd',
            Self::Nothing => b'n',
            Self::Full => b'f',
            Self::Index => b'i',
        }
    }

    /// The setting a `relreplident` byte names, if any.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'd' => Self::Default,
            b'n' => Self::Nothing,
            b'f' => Self::Full,
            b'i' => Self::Index,
            _ => return None,
        })
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationColumn<'a> {
    /// Whether the column is part of the key (replica identity).
    pub key: bool,
    /// The column's name.
    pub name: &'a [u8],
    /// The OID of its data type.
    pub type_oid: u32,
    /// Its type modifier (`atttypmod`).
    pub type_modifier: i32,
}

impl<'a> Item<'a> for RelationColumn<'a> {
    const MIN_LEN: usize = 1 + 1 + 4 + 4;
    const MESSAGE: &'static str = "Relation";

    fn read(r: &mut SliceReader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            key: bool::read(r, "column flags")?,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type")?,
            type_modifier: r.i32("column type modifier")?,
        })
    }

    fn wire_len(&self) -> usize {
        10 + self.name.len()
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u8(self.key.into());
        put_cstr(out, self.name);
        out.put_u32(self.type_oid);
        out.put_i32(self.type_modifier);
    }
}

/// Relation (`R`): the columns of a relation, sent before the first change to it in a session
/// and again when its definition changes. Since PostgreSQL 18 the columns may include generated
/// columns (publication option `publish_generated_columns`); they are not marked as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation<'a> {
    xid: Option<u32>,
    oid: u32,
    namespace: &'a [u8],
    name: &'a [u8],
    replica_identity: ReplicaIdentity,
    columns: List<'a, RelationColumn<'a>>,
}

impl<'a> Relation<'a> {
    /// The type byte.
    pub const TAG: u8 = b'R';

    /// A Relation; `xid` is `Some` inside a streamed transaction. `namespace` is empty for
    /// `pg_catalog`.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when a name contains NUL,
    /// [`EncodeError::TooMany`] on more than 65,535 columns, or [`EncodeError::TooLong`].
    ///
    /// ```
    /// use pgproto::replication::pgoutput::{Relation, RelationColumn, ReplicaIdentity};
    /// let columns = [RelationColumn { key: true, name: b"id", type_oid: 23, type_modifier: -1 }];
    /// let r = Relation::new(None, 16384, b"public", b"t", ReplicaIdentity::Default, &columns)?;
    /// assert_eq!(r.columns().next().unwrap().name, b"id");
    /// # Ok::<(), pgproto::EncodeError>(())
    /// ```
    pub fn new(
        xid: Option<u32>,
        oid: u32,
        namespace: &'a [u8],
        name: &'a [u8],
        replica_identity: ReplicaIdentity,
        columns: &'a [RelationColumn<'a>],
    ) -> Result<Self, EncodeError> {
        check_cstr("namespace", namespace)?;
        check_cstr("relation name", name)?;
        check_count("columns", columns.len())?;
        for c in columns {
            check_cstr("column name", c.name)?;
        }
        let m = Self {
            xid,
            oid,
            namespace,
            name,
            replica_identity,
            columns: List::Items(columns),
        };
        check_payload("Relation", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The relation's OID, which changes refer to.
    pub fn oid(&self) -> u32 {
        self.oid
    }

    /// The namespace (schema), empty for `pg_catalog`.
    pub fn namespace(&self) -> &'a [u8] {
        self.namespace
    }

    /// The relation's name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The namespace as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn namespace_str(&self) -> Result<&'a str, DecodeError> {
        utf8("namespace", self.namespace)
    }

    /// The name as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn name_str(&self) -> Result<&'a str, DecodeError> {
        utf8("relation name", self.name)
    }

    /// The replica identity setting.
    pub fn replica_identity(&self) -> ReplicaIdentity {
        self.replica_identity
    }

    /// The number of columns.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// The published columns in order.
    pub fn columns(&self) -> Iter<'a, RelationColumn<'a>> {
        self.columns.iter()
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let oid = r.u32("relation OID")?;
        let namespace = r.cstr("namespace")?;
        let name = r.cstr("relation name")?;
        let ri = r.u8("replica identity")?;
        let replica_identity = ReplicaIdentity::from_byte(ri).ok_or(invalid(
            "Relation",
            "replica identity",
            ri.into(),
        ))?;
        let count = r.u16("column count")?;
        let columns = List::read(&mut r, count.into(), "columns", |_| Ok(()))?;
        r.finish()?;
        Ok(Self {
            xid,
            oid,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid)
            + 4
            + self.namespace.len()
            + 1
            + self.name.len()
            + 1
            + 1
            + 2
            + self.columns.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u32(self.oid);
        put_cstr(out, self.namespace);
        put_cstr(out, self.name);
        out.put_u8(self.replica_identity.byte());
        // INVARIANT: at most u16::MAX columns (checked by `new`, or read with a u16 count).
        out.put_u16(self.columns.len() as u16);
        self.columns.put(out);
    }
}

/// Type (`Y`): the name of a data type that is not built in, sent before the Relation that
/// uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type<'a> {
    xid: Option<u32>,
    oid: u32,
    namespace: &'a [u8],
    name: &'a [u8],
}

impl<'a> Type<'a> {
    /// The type byte.
    pub const TAG: u8 = b'Y';

    /// A Type message; `xid` is `Some` inside a streamed transaction. Fails with
    /// [`EncodeError::InteriorNul`] when a name contains NUL.
    pub fn new(
        xid: Option<u32>,
        oid: u32,
        namespace: &'a [u8],
        name: &'a [u8],
    ) -> Result<Self, EncodeError> {
        check_cstr("namespace", namespace)?;
        check_cstr("type name", name)?;
        let m = Self {
            xid,
            oid,
            namespace,
            name,
        };
        check_payload("Type", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The type's OID.
    pub fn oid(&self) -> u32 {
        self.oid
    }

    /// The namespace (schema), empty for `pg_catalog`.
    pub fn namespace(&self) -> &'a [u8] {
        self.namespace
    }

    /// The type's name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let oid = r.u32("type OID")?;
        let namespace = r.cstr("namespace")?;
        let name = r.cstr("type name")?;
        r.finish()?;
        Ok(Self {
            xid,
            oid,
            namespace,
            name,
        })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid) + 4 + self.namespace.len() + 1 + self.name.len() + 1
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u32(self.oid);
        put_cstr(out, self.namespace);
        put_cstr(out, self.name);
    }
}

/// Insert (`I`): a new row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insert<'a> {
    xid: Option<u32>,
    relation: u32,
    new: TupleData<'a>,
}

impl<'a> Insert<'a> {
    /// The type byte.
    pub const TAG: u8 = b'I';

    /// An Insert of `new` into the relation whose OID is `relation`; `xid` is `Some` inside a
    /// streamed transaction. Fails with [`EncodeError::TooLong`].
    pub fn new(xid: Option<u32>, relation: u32, new: TupleData<'a>) -> Result<Self, EncodeError> {
        let m = Self { xid, relation, new };
        check_payload("Insert", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The relation's OID (as in its [`Relation`] message).
    pub fn relation(&self) -> u32 {
        self.relation
    }

    /// The new row.
    pub fn new_tuple(&self) -> TupleData<'a> {
        self.new
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let relation = r.u32("relation OID")?;
        match r.u8("tuple kind")? {
            b'N' => {}
            other => return Err(invalid("Insert", "tuple kind", other.into())),
        }
        let new = TupleData::read(&mut r, "Insert", ctx.binary)?;
        r.finish()?;
        Ok(Self { xid, relation, new })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid) + 4 + 1 + self.new.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u32(self.relation);
        out.put_u8(b'N');
        self.new.put(out);
    }
}

/// The old row of an [`Update`] or [`Delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// `K`: the key columns (replica identity default or index); the other values are null.
    Key(TupleData<'a>),
    /// `O`: the whole old row (replica identity full).
    Full(TupleData<'a>),
}

impl<'a> OldTuple<'a> {
    /// The row, whichever kind it is.
    pub fn tuple(&self) -> TupleData<'a> {
        match self {
            Self::Key(t) | Self::Full(t) => *t,
        }
    }

    /// `K` or `O`.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Key(_) => b'K',
            Self::Full(_) => b'O',
        }
    }

    fn wire_len(&self) -> usize {
        1 + self.tuple().wire_len()
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u8(self.kind());
        self.tuple().put(out);
    }
}

/// Update (`U`): a changed row, with its old key or old row when the replica identity says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    xid: Option<u32>,
    relation: u32,
    old: Option<OldTuple<'a>>,
    new: TupleData<'a>,
}

impl<'a> Update<'a> {
    /// The type byte.
    pub const TAG: u8 = b'U';

    /// An Update; `xid` is `Some` inside a streamed transaction. Fails with
    /// [`EncodeError::TooLong`].
    pub fn new(
        xid: Option<u32>,
        relation: u32,
        old: Option<OldTuple<'a>>,
        new: TupleData<'a>,
    ) -> Result<Self, EncodeError> {
        let m = Self {
            xid,
            relation,
            old,
            new,
        };
        check_payload("Update", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The relation's OID (as in its [`Relation`] message).
    pub fn relation(&self) -> u32 {
        self.relation
    }

    /// The old key (`K`, when the update changed it) or old row (`O`, replica identity full).
    pub fn old(&self) -> Option<OldTuple<'a>> {
        self.old
    }

    /// The new row.
    pub fn new_tuple(&self) -> TupleData<'a> {
        self.new
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let relation = r.u32("relation OID")?;
        let mut kind = r.u8("tuple kind")?;
        let old = match kind {
            b'K' | b'O' => {
                let t = TupleData::read(&mut r, "Update", ctx.binary)?;
                let old = if kind == b'K' {
                    OldTuple::Key(t)
                } else {
                    OldTuple::Full(t)
                };
                kind = r.u8("new tuple kind")?;
                Some(old)
            }
            _ => None,
        };
        if kind != b'N' {
            let field = if old.is_some() {
                "new tuple kind"
            } else {
                "tuple kind"
            };
            return Err(invalid("Update", field, kind.into()));
        }
        let new = TupleData::read(&mut r, "Update", ctx.binary)?;
        r.finish()?;
        Ok(Self {
            xid,
            relation,
            old,
            new,
        })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid)
            + 4
            + self.old.as_ref().map_or(0, OldTuple::wire_len)
            + 1
            + self.new.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u32(self.relation);
        if let Some(old) = &self.old {
            old.put(out);
        }
        out.put_u8(b'N');
        self.new.put(out);
    }
}

/// Delete (`D`): a deleted row, identified by its old key or old row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    xid: Option<u32>,
    relation: u32,
    old: OldTuple<'a>,
}

impl<'a> Delete<'a> {
    /// The type byte.
    pub const TAG: u8 = b'D';

    /// A Delete; `xid` is `Some` inside a streamed transaction. Fails with
    /// [`EncodeError::TooLong`].
    pub fn new(xid: Option<u32>, relation: u32, old: OldTuple<'a>) -> Result<Self, EncodeError> {
        let m = Self { xid, relation, old };
        check_payload("Delete", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The relation's OID (as in its [`Relation`] message).
    pub fn relation(&self) -> u32 {
        self.relation
    }

    /// The old key (`K`) or old row (`O`).
    pub fn old(&self) -> OldTuple<'a> {
        self.old
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let relation = r.u32("relation OID")?;
        let kind = r.u8("tuple kind")?;
        let t = match kind {
            b'K' | b'O' => TupleData::read(&mut r, "Delete", ctx.binary)?,
            other => return Err(invalid("Delete", "tuple kind", other.into())),
        };
        r.finish()?;
        let old = if kind == b'K' {
            OldTuple::Key(t)
        } else {
            OldTuple::Full(t)
        };
        Ok(Self { xid, relation, old })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid) + 4 + self.old.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u32(self.relation);
        self.old.put(out);
    }
}

impl<'a> Item<'a> for u32 {
    const MIN_LEN: usize = 4;
    const MESSAGE: &'static str = "Truncate";

    fn read(r: &mut SliceReader<'a>) -> Result<Self, DecodeError> {
        r.u32("relation OID")
    }

    fn wire_len(&self) -> usize {
        4
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u32(*self);
    }
}

/// Truncate (`T`): one TRUNCATE of one or more relations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate<'a> {
    xid: Option<u32>,
    options: u8,
    relations: List<'a, u32>,
}

impl<'a> Truncate<'a> {
    /// The type byte.
    pub const TAG: u8 = b'T';
    /// The option bit for `CASCADE`.
    pub const CASCADE: u8 = 1;
    /// The option bit for `RESTART IDENTITY`.
    pub const RESTART_IDENTITY: u8 = 2;

    /// A Truncate of the relations whose OIDs are given; `options` holds [`Truncate::CASCADE`]
    /// and [`Truncate::RESTART_IDENTITY`]. Fails with [`EncodeError::OutOfRange`] for another
    /// option bit or more than `i32::MAX` relations.
    pub fn new(xid: Option<u32>, options: u8, relations: &'a [u32]) -> Result<Self, EncodeError> {
        if options & !(Self::CASCADE | Self::RESTART_IDENTITY) != 0 {
            return Err(EncodeError::OutOfRange {
                field: "truncate options",
                reason: "only CASCADE (1) and RESTART IDENTITY (2) are defined",
            });
        }
        if i32::try_from(relations.len()).is_err() {
            return Err(EncodeError::OutOfRange {
                field: "relations",
                reason: "more than an Int32 count allows",
            });
        }
        let m = Self {
            xid,
            options,
            relations: List::Items(relations),
        };
        check_payload("Truncate", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// The option bits ([`Truncate::CASCADE`], [`Truncate::RESTART_IDENTITY`]).
    pub fn options(&self) -> u8 {
        self.options
    }

    /// Whether `CASCADE` was given.
    pub fn cascade(&self) -> bool {
        self.options & Self::CASCADE != 0
    }

    /// Whether `RESTART IDENTITY` was given.
    pub fn restart_identity(&self) -> bool {
        self.options & Self::RESTART_IDENTITY != 0
    }

    /// The number of relations.
    pub fn relation_count(&self) -> usize {
        self.relations.len()
    }

    /// The relations' OIDs.
    pub fn relations(&self) -> Iter<'a, u32> {
        self.relations.iter()
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let count = r.i32("relation count")?;
        if count < 0 {
            return Err(DecodeError::InvalidCount {
                message: "Truncate",
                field: "relation count",
                count: count.into(),
            });
        }
        let options = r.u8("options")?;
        if options & !(Self::CASCADE | Self::RESTART_IDENTITY) != 0 {
            return Err(invalid("Truncate", "options", options.into()));
        }
        let relations = List::read(&mut r, count as u32, "relations", |_| Ok(()))?;
        r.finish()?;
        Ok(Self {
            xid,
            options,
            relations,
        })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid) + 4 + 1 + self.relations.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        // INVARIANT: at most i32::MAX relations (checked by `new`, or read as a positive Int32).
        out.put_i32(self.relations.len() as i32);
        out.put_u8(self.options);
        self.relations.put(out);
    }
}

/// Message (`M`): a logical decoding message (`pg_logical_emit_message`), sent when the
/// `messages` option is on. A transactional one belongs to its transaction; a
/// non-transactional one is sent as soon as it is decoded, outside any transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogicalMessage<'a> {
    xid: Option<u32>,
    transactional: bool,
    lsn: Lsn,
    prefix: &'a [u8],
    content: &'a [u8],
}

impl<'a> LogicalMessage<'a> {
    /// The type byte.
    pub const TAG: u8 = b'M';

    /// A logical decoding message; `xid` is `Some` inside a streamed transaction. Fails with
    /// [`EncodeError::InteriorNul`] when `prefix` contains NUL, or [`EncodeError::TooLong`].
    pub fn new(
        xid: Option<u32>,
        transactional: bool,
        lsn: Lsn,
        prefix: &'a [u8],
        content: &'a [u8],
    ) -> Result<Self, EncodeError> {
        check_cstr("prefix", prefix)?;
        crate::codec::check_value_len("content", content.len())?;
        let m = Self {
            xid,
            transactional,
            lsn,
            prefix,
            content,
        };
        check_payload("Message", m.payload_len())?;
        Ok(m)
    }

    /// The xid of the streamed transaction this message belongs to (`None` outside a stream).
    pub fn xid(&self) -> Option<u32> {
        self.xid
    }

    /// Whether the message is transactional.
    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// The message's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Its prefix.
    pub fn prefix(&self) -> &'a [u8] {
        self.prefix
    }

    /// Its content, raw bytes.
    pub fn content(&self) -> &'a [u8] {
        self.content
    }

    pub(crate) fn read(mut r: SliceReader<'a>, ctx: Context) -> Result<Self, DecodeError> {
        let xid = read_xid(&mut r, ctx)?;
        let transactional = bool::read(&mut r, "flags")?;
        let lsn = Lsn::read(&mut r, "LSN")?;
        let prefix = r.cstr("prefix")?;
        let len = r.i32("content length")?;
        if len < 0 {
            return Err(DecodeError::InvalidCount {
                message: "Message",
                field: "content length",
                count: len.into(),
            });
        }
        let content = r.take(len as usize, "content")?;
        r.finish()?;
        Ok(Self {
            xid,
            transactional,
            lsn,
            prefix,
            content,
        })
    }

    pub(crate) fn payload_len(&self) -> usize {
        1 + xid_len(self.xid) + 1 + 8 + self.prefix.len() + 1 + 4 + self.content.len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        put_xid(out, self.xid);
        out.put_u8(self.transactional.into());
        out.put_u64(self.lsn.as_u64());
        put_cstr(out, self.prefix);
        out.put_i32(self.content.len() as i32);
        out.put_slice(self.content);
    }
}

/// Origin (`O`): the transaction came from another node (a replication origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin<'a> {
    commit_lsn: Lsn,
    name: &'a [u8],
}

impl<'a> Origin<'a> {
    /// The type byte.
    pub const TAG: u8 = b'O';

    /// An Origin message. Fails with [`EncodeError::InteriorNul`] when `name` contains NUL.
    pub fn new(commit_lsn: Lsn, name: &'a [u8]) -> Result<Self, EncodeError> {
        check_cstr("origin name", name)?;
        check_payload("Origin", 10 + name.len())?;
        Ok(Self { commit_lsn, name })
    }

    /// The LSN of the commit on the origin server.
    pub fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// The origin's name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    pub(crate) fn read(mut r: SliceReader<'a>) -> Result<Self, DecodeError> {
        let commit_lsn = Lsn::read(&mut r, "commit LSN")?;
        let name = r.cstr("origin name")?;
        r.finish()?;
        Ok(Self { commit_lsn, name })
    }

    pub(crate) fn payload_len(&self) -> usize {
        10 + self.name.len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u8(Self::TAG);
        out.put_u64(self.commit_lsn.as_u64());
        put_cstr(out, self.name);
    }
}
