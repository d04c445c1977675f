//! pgoutput, PostgreSQL's logical replication output plugin: protocol versions 1 to 4.
//!
//! In logical replication each [`XLogData`](crate::replication::XLogData) carries one pgoutput
//! message. Which messages may come, and some of their fields, depend on what
//! `START_REPLICATION ... LOGICAL` asked for ([`PgOutputOptions`]) and on whether a streamed
//! transaction is open (its messages carry the xid of the (sub)transaction they belong to), so
//! decoding takes that context: [`PgOutputDecoder`] keeps it from message to message and
//! refuses what it rules out.
//!
//! Layouts: PostgreSQL 18 documentation, section 54.9 "Logical Replication Message Formats"
//! (<https://www.postgresql.org/docs/18/protocol-logicalrep-message-formats.html>), and section
//! 54.5 for the options.
//!
//! | message | type byte | protocol version | when |
//! | --- | --- | --- | --- |
//! | Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate | `B C O R Y I U D T` | 1 | always |
//! | Message | `M` | 1 | `messages` on |
//! | Stream Start, Stream Stop, Stream Commit, Stream Abort | `S E c A` | 2 | `streaming` on or parallel |
//! | Begin Prepare, Prepare, Commit Prepared, Rollback Prepared | `b P K r` | 3 | `two_phase` on |
//! | Stream Prepare | `p` | 3 | `two_phase` and `streaming` |
//! | Stream Abort's abort LSN and timestamp | | 4 | `streaming` parallel |
//!
//! ```
//! use pgproto::replication::pgoutput::{PgOutputDecoder, PgOutputMessage, PgOutputOptions, Streaming};
//!
//! let options = PgOutputOptions::new(2, ["pub"])?.with_streaming(Streaming::On)?;
//! let mut decoder = PgOutputDecoder::new(&options);
//! // Stream Start (xid 7, first segment), an Insert inside it (xid 7 before the relation OID),
//! // Stream Stop.
//! let start = b"S\0\0\0\x07\x01";
//! let insert = b"I\0\0\0\x07\0\0\x40\0N\0\x01t\0\0\0\x0242";
//! assert!(matches!(decoder.decode(start)?, PgOutputMessage::StreamStart(_)));
//! let PgOutputMessage::Insert(i) = decoder.decode(insert)? else { unreachable!() };
//! assert_eq!((i.xid(), i.relation()), (Some(7), 0x4000));
//! assert!(matches!(decoder.decode(b"E")?, PgOutputMessage::StreamStop));
//! // Outside the stream, an Insert has no xid: the same bytes no longer decode.
//! assert!(decoder.decode(insert).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod change;
mod list;
mod options;
mod transaction;
mod tuple;

use bytes::BytesMut;

pub use change::{
    Delete, Insert, LogicalMessage, OldTuple, Origin, Relation, RelationColumn, ReplicaIdentity,
    Truncate, Type, Update,
};
pub use list::Iter;
pub use options::{OriginFilter, PgOutputOptions, Streaming};
pub use transaction::{
    Begin, Commit, Prepared, RollbackPrepared, StreamAbort, StreamCommit, StreamStart,
};
pub use tuple::{TupleData, TupleValue};

use crate::codec::reader::SliceReader;
use crate::error::{DecodeError, Tag};
use crate::replication::Payload;

/// What decoding a message's fields depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Inside a streamed transaction: changes carry an xid.
    pub(crate) in_stream: bool,
    /// Binary values may come.
    pub(crate) binary: bool,
}

/// A pgoutput message.
///
/// Decode one with [`PgOutputDecoder::decode`] (which tracks streamed transactions) or
/// [`PgOutputMessage::decode`]; encode one with [`Payload`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgOutputMessage<'a> {
    /// Begin (`B`).
    Begin(Begin),
    /// Message (`M`): a logical decoding message.
    Message(LogicalMessage<'a>),
    /// Commit (`C`).
    Commit(Commit),
    /// Origin (`O`).
    Origin(Origin<'a>),
    /// Relation (`R`).
    Relation(Relation<'a>),
    /// Type (`Y`).
    Type(Type<'a>),
    /// Insert (`I`).
    Insert(Insert<'a>),
    /// Update (`U`).
    Update(Update<'a>),
    /// Delete (`D`).
    Delete(Delete<'a>),
    /// Truncate (`T`).
    Truncate(Truncate<'a>),
    /// Stream Start (`S`).
    StreamStart(StreamStart),
    /// Stream Stop (`E`).
    StreamStop,
    /// Stream Commit (`c`).
    StreamCommit(StreamCommit),
    /// Stream Abort (`A`).
    StreamAbort(StreamAbort),
    /// Begin Prepare (`b`): the LSN and end LSN of the prepare, the prepare time.
    BeginPrepare(Prepared<'a>),
    /// Prepare (`P`): the LSN and end LSN of the prepare, the prepare time.
    Prepare(Prepared<'a>),
    /// Commit Prepared (`K`): the LSN and end LSN of the commit, the commit time.
    CommitPrepared(Prepared<'a>),
    /// Rollback Prepared (`r`).
    RollbackPrepared(RollbackPrepared<'a>),
    /// Stream Prepare (`p`): the LSN and end LSN of the prepare, the prepare time.
    StreamPrepare(Prepared<'a>),
}

/// Why a message is refused in a context.
fn not_allowed(message: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::NotAllowed { message, reason }
}

impl<'a> PgOutputMessage<'a> {
    /// Decodes one pgoutput message (the data of an XLogData) sent under `options`; `in_stream`
    /// says whether a streamed transaction is open (between Stream Start and Stream Stop).
    ///
    /// Fails with [`DecodeError::UnknownSubmessage`] for a type byte pgoutput does not send,
    /// [`DecodeError::NotAllowed`] for a message the options or the stream state rule out, or
    /// the error naming the message and field that does not decode.
    pub fn decode(
        payload: &'a [u8],
        options: &PgOutputOptions,
        in_stream: bool,
    ) -> Result<Self, DecodeError> {
        let Some((&tag, body)) = payload.split_first() else {
            return Err(DecodeError::Truncated {
                message: "pgoutput message",
                field: "type",
            });
        };
        let name = name_of(tag).ok_or(DecodeError::UnknownSubmessage {
            kind: "pgoutput",
            tag: Tag(tag),
        })?;
        let r = SliceReader::new(body, name);
        let ctx = Context {
            in_stream,
            binary: options.binary(),
        };
        let streaming = options.streaming() != Streaming::Off;
        let two_phase = options.two_phase();
        // Messages that only come outside a streamed transaction, and what they need.
        let framing = |needs: bool, reason: &'static str| {
            if !needs {
                Err(not_allowed(name, reason))
            } else if in_stream {
                Err(not_allowed(name, "inside a streamed transaction"))
            } else {
                Ok(())
            }
        };
        Ok(match tag {
            b'B' => {
                framing(true, "")?;
                Self::Begin(Begin::read(r)?)
            }
            b'C' => {
                framing(true, "")?;
                Self::Commit(Commit::read(r)?)
            }
            b'M' => {
                if !options.messages() {
                    return Err(not_allowed(name, "the messages option is off"));
                }
                Self::Message(LogicalMessage::read(r, ctx)?)
            }
            b'O' => Self::Origin(Origin::read(r)?),
            b'R' => Self::Relation(Relation::read(r, ctx)?),
            b'Y' => Self::Type(Type::read(r, ctx)?),
            b'I' => Self::Insert(Insert::read(r, ctx)?),
            b'U' => Self::Update(Update::read(r, ctx)?),
            b'D' => Self::Delete(Delete::read(r, ctx)?),
            b'T' => Self::Truncate(Truncate::read(r, ctx)?),
            b'S' => {
                framing(streaming, "streaming is off")?;
                Self::StreamStart(StreamStart::read(r)?)
            }
            b'E' => {
                if !streaming {
                    return Err(not_allowed(name, "streaming is off"));
                }
                if !in_stream {
                    return Err(not_allowed(name, "outside a streamed transaction"));
                }
                r.finish()?;
                Self::StreamStop
            }
            b'c' => {
                framing(streaming, "streaming is off")?;
                Self::StreamCommit(StreamCommit::read(r)?)
            }
            b'A' => {
                framing(streaming, "streaming is off")?;
                Self::StreamAbort(StreamAbort::read(r, options.abort_info())?)
            }
            b'b' => {
                framing(two_phase, "two_phase is off")?;
                Self::BeginPrepare(Prepared::read(r, false)?)
            }
            b'P' => {
                framing(two_phase, "two_phase is off")?;
                Self::Prepare(Prepared::read(r, true)?)
            }
            b'K' => {
                framing(two_phase, "two_phase is off")?;
                Self::CommitPrepared(Prepared::read(r, true)?)
            }
            b'r' => {
                framing(two_phase, "two_phase is off")?;
                Self::RollbackPrepared(RollbackPrepared::read(r)?)
            }
            b'p' => {
                framing(two_phase && streaming, "two_phase or streaming is off")?;
                Self::StreamPrepare(Prepared::read(r, true)?)
            }
            // INVARIANT: `name_of` knows exactly the bytes above.
            _ => {
                return Err(DecodeError::UnknownSubmessage {
                    kind: "pgoutput",
                    tag: Tag(tag),
                })
            }
        })
    }

    /// The message's name as in the documentation, without spaces: `Begin`, `Message`,
    /// `Commit`, `Origin`, `Relation`, `Type`, `Insert`, `Update`, `Delete`, `Truncate`,
    /// `StreamStart`, `StreamStop`, `StreamCommit`, `StreamAbort`, `BeginPrepare`, `Prepare`,
    /// `CommitPrepared`, `RollbackPrepared`, `StreamPrepare`.
    pub fn name(&self) -> &'static str {
        name_of(self.tag()).unwrap_or("pgoutput message")
    }

    /// The type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Begin(_) => Begin::TAG,
            Self::Message(_) => LogicalMessage::TAG,
            Self::Commit(_) => Commit::TAG,
            Self::Origin(_) => Origin::TAG,
            Self::Relation(_) => Relation::TAG,
            Self::Type(_) => Type::TAG,
            Self::Insert(_) => Insert::TAG,
            Self::Update(_) => Update::TAG,
            Self::Delete(_) => Delete::TAG,
            Self::Truncate(_) => Truncate::TAG,
            Self::StreamStart(_) => StreamStart::TAG,
            Self::StreamStop => b'E',
            Self::StreamCommit(_) => StreamCommit::TAG,
            Self::StreamAbort(_) => StreamAbort::TAG,
            Self::BeginPrepare(_) => b'b',
            Self::Prepare(_) => b'P',
            Self::CommitPrepared(_) => b'K',
            Self::RollbackPrepared(_) => RollbackPrepared::TAG,
            Self::StreamPrepare(_) => b'p',
        }
    }

    /// The xid the message carries, if any: a transaction's (Begin, the stream and two-phase
    /// messages) or, inside a streamed transaction, the (sub)transaction's a change belongs to.
    pub fn xid(&self) -> Option<u32> {
        match self {
            Self::Begin(m) => Some(m.xid()),
            Self::Message(m) => m.xid(),
            Self::Relation(m) => m.xid(),
            Self::Type(m) => m.xid(),
            Self::Insert(m) => m.xid(),
            Self::Update(m) => m.xid(),
            Self::Delete(m) => m.xid(),
            Self::Truncate(m) => m.xid(),
            Self::StreamStart(m) => Some(m.xid()),
            Self::StreamCommit(m) => Some(m.xid()),
            Self::StreamAbort(m) => Some(m.xid()),
            Self::BeginPrepare(m)
            | Self::Prepare(m)
            | Self::CommitPrepared(m)
            | Self::StreamPrepare(m) => Some(m.xid()),
            Self::RollbackPrepared(m) => Some(m.xid()),
            Self::Commit(_) | Self::Origin(_) | Self::StreamStop => None,
        }
    }
}

/// The name of the message a pgoutput type byte starts.
fn name_of(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'B' => "Begin",
        b'M' => "Message",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'S' => "StreamStart",
        b'E' => "StreamStop",
        b'c' => "StreamCommit",
        b'A' => "StreamAbort",
        b'b' => "BeginPrepare",
        b'P' => "Prepare",
        b'K' => "CommitPrepared",
        b'r' => "RollbackPrepared",
        b'p' => "StreamPrepare",
        _ => return None,
    })
}

impl Payload for PgOutputMessage<'_> {
    fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::Begin(m) => m.encode_payload(out),
            Self::Message(m) => m.put(out),
            Self::Commit(m) => m.encode_payload(out),
            Self::Origin(m) => m.put(out),
            Self::Relation(m) => m.put(out),
            Self::Type(m) => m.put(out),
            Self::Insert(m) => m.put(out),
            Self::Update(m) => m.put(out),
            Self::Delete(m) => m.put(out),
            Self::Truncate(m) => m.put(out),
            Self::StreamStart(m) => m.encode_payload(out),
            Self::StreamStop => bytes::BufMut::put_u8(out, b'E'),
            Self::StreamCommit(m) => m.put(out),
            Self::StreamAbort(m) => m.put(out),
            Self::BeginPrepare(m) => m.put(out, b'b', false),
            Self::Prepare(m) => m.put(out, b'P', true),
            Self::CommitPrepared(m) => m.put(out, b'K', true),
            Self::RollbackPrepared(m) => m.put(out),
            Self::StreamPrepare(m) => m.put(out, b'p', true),
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::Begin(m) => m.payload_len(),
            Self::Message(m) => m.payload_len(),
            Self::Commit(m) => m.payload_len(),
            Self::Origin(m) => m.payload_len(),
            Self::Relation(m) => m.payload_len(),
            Self::Type(m) => m.payload_len(),
            Self::Insert(m) => m.payload_len(),
            Self::Update(m) => m.payload_len(),
            Self::Delete(m) => m.payload_len(),
            Self::Truncate(m) => m.payload_len(),
            Self::StreamStart(m) => m.payload_len(),
            Self::StreamStop => 1,
            Self::StreamCommit(_) => StreamCommit::LEN,
            Self::StreamAbort(m) => m.payload_len(),
            Self::BeginPrepare(m) => m.payload_len(false),
            Self::Prepare(m) | Self::CommitPrepared(m) | Self::StreamPrepare(m) => {
                m.payload_len(true)
            }
            Self::RollbackPrepared(m) => m.payload_len(),
        }
    }
}

/// Decodes the pgoutput messages of one replication session in order, keeping track of
/// streamed transactions: between Stream Start and Stream Stop the changes carry an xid, and
/// messages that frame transactions are refused; outside, Stream Stop is refused.
///
/// See the [module documentation](self) for an example.
#[derive(Debug, Clone)]
pub struct PgOutputDecoder {
    options: PgOutputOptions,
    stream: Option<u32>,
}

impl PgOutputDecoder {
    /// A decoder for a session started with `options`.
    pub fn new(options: &PgOutputOptions) -> Self {
        Self {
            options: options.clone(),
            stream: None,
        }
    }

    /// The options the session was started with.
    pub fn options(&self) -> &PgOutputOptions {
        &self.options
    }

    /// The xid of the streamed transaction open now (between Stream Start and Stream Stop).
    pub fn open_stream(&self) -> Option<u32> {
        self.stream
    }

    /// Decodes the next message (the data of the next XLogData), as
    /// [`PgOutputMessage::decode`] does in the current stream state, and moves that state on.
    /// After an error the state is unchanged.
    pub fn decode<'a>(&mut self, payload: &'a [u8]) -> Result<PgOutputMessage<'a>, DecodeError> {
        let m = PgOutputMessage::decode(payload, &self.options, self.stream.is_some())?;
        match &m {
            PgOutputMessage::StreamStart(s) => self.stream = Some(s.xid()),
            PgOutputMessage::StreamStop => self.stream = None,
            _ => {}
        }
        Ok(m)
    }
}
