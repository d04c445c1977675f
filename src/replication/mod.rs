//! Replication: the messages carried inside CopyData on a replication connection.
//!
//! A connection started with `replication=true` (physical) or `replication=database` (logical)
//! takes replication commands in simple Queries. Three of them switch to a COPY whose CopyData
//! each carry one message of their own, with a type byte and no length word:
//!
//! | command | COPY | messages here |
//! | --- | --- | --- |
//! | `START_REPLICATION ... PHYSICAL` | CopyBoth | [`PrimaryMessage`] from the server (XLogData of WAL, keepalives), [`StandbyMessage`] from the client (status updates, hot standby feedback) |
//! | `START_REPLICATION ... LOGICAL` | CopyBoth | the same; each XLogData carries one output plugin message, [`pgoutput`] for the built-in plugin |
//! | `BASE_BACKUP` | CopyOut | [`BaseBackupMessage`]: new archive, manifest, data, progress |
//!
//! Every message decodes from a CopyData payload without copying (the types borrow it:
//! [`ClientEvent`](crate::ClientEvent)'s CopyData is read in place) and encodes through
//! [`Payload`], which can also write the whole CopyData frame. Encoding cannot fail;
//! constructors check what could not be sent. To keep a decoded message longer than the
//! payload it borrows, keep the payload (for example as `Bytes`) and decode it again.
//!
//! [`ReplicationCommand`] reads and writes the commands themselves, so that a tool that sees a
//! session's Queries knows what its CopyData carry; [`IdentifySystem`], [`CreatedSlot`] and
//! [`TimelinePosition`] read the rows some commands answer with; [`Lsn`] and [`Timestamp`]
//! are the protocol's locations and clock readings, with PostgreSQL's text forms.
//!
//! The state machines carry replication sessions as they carry any COPY: a
//! [`Client`](crate::Client) configured with `replication` sends the commands with
//! [`Client::query`](crate::Client::query), hands out each CopyData as a response, and sends
//! the standby's messages with [`Client::copy_payload`](crate::Client::copy_payload); a
//! [`Server`](crate::Server) answers with [`Server::copy_payload`](crate::Server::copy_payload).
//! Both accept the endings a walsender sends: the result set right after BASE_BACKUP's
//! CopyDone, and the one after the CopyBoth of a timeline switch.
//!
//! ```
//! use pgproto::replication::{Lsn, Payload, PrimaryMessage, StandbyStatusUpdate, Timestamp};
//!
//! // A keepalive from the server, asking for an answer.
//! let copy_data = b"k\0\0\0\0\x01\0\0\x28\0\0\0\0\0\0\0\x05\x01";
//! let PrimaryMessage::PrimaryKeepalive(k) = PrimaryMessage::decode(copy_data)? else {
//!     unreachable!()
//! };
//! assert_eq!(k.wal_end().to_string(), "0/1000028");
//! assert!(k.reply_requested());
//!
//! // The answer: everything up to the server's WAL end is written, flushed and applied.
//! let reply = StandbyStatusUpdate::new(k.wal_end(), k.wal_end(), k.wal_end(), Timestamp::EPOCH, false);
//! let mut out = bytes::BytesMut::new();
//! reply.encode_copy_data(&mut out); // send with the other bytes of the connection
//! assert_eq!(out[5], b'r');
//! # Ok::<(), pgproto::DecodeError>(())
//! ```

#[macro_use]
mod wire;
mod backup;
mod command;
mod lsn;
pub mod pgoutput;
mod results;
mod stream;
mod timestamp;

pub use backup::{BackupData, BaseBackupMessage, NewArchive};
pub use command::ReplicationCommand;
pub use lsn::{Lsn, ParseLsnError};
pub use results::{CreatedSlot, IdentifySystem, TimelinePosition};
pub use stream::{
    HotStandbyFeedback, PrimaryKeepalive, PrimaryMessage, PrimaryStatusRequest,
    PrimaryStatusUpdate, StandbyMessage, StandbyStatusUpdate, XLogData,
};
pub use timestamp::{ParseTimestampError, Timestamp};
pub use wire::Payload;
