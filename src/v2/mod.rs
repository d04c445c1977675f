//! Protocol 2.0: the codec of the frontend/backend protocol of PostgreSQL 6.4 to 7.3, which
//! servers up to PostgreSQL 13 still accept and libpq up to 13 falls back to.
//!
//! Every message of both directions, as the 2.0 documentation lays them out, with incremental
//! decoders ([`BackendDecoder`], [`FrontendDecoder`]) and exact encoding ([`crate::Encode`]):
//!
//! | direction | messages |
//! | --- | --- |
//! | frontend | StartupPacket (296 bytes), SSLRequest, CancelRequest, PasswordPacket, Query, FunctionCall, CopyDataRows, Terminate |
//! | backend | Authentication (Ok, KerberosV4, KerberosV5, CleartextPassword, CryptPassword, MD5Password, SCMCredential), BackendKeyData, CursorResponse, RowDescription, AsciiRow, BinaryRow, CompletedResponse, EmptyQueryResponse, ErrorResponse, NoticeResponse, NotificationResponse, ReadyForQuery, CopyInResponse, CopyOutResponse, CopyDataRows, FunctionResultResponse, FunctionVoidResponse |
//!
//! What differs from 3.0, and how the decoders cope:
//!
//! - **No length words.** Apart from the start-up packets and PasswordPacket, a message is a
//!   type byte and fields whose layout says where they end. The decoders scan for the end,
//!   resuming where they stopped when more bytes arrive (linear time however the bytes are
//!   split), and check every size against [`crate::Limits`] as soon as it is known: a string
//!   that has not ended fails once it passes its limit, so a stream without NULs cannot make a
//!   decoder buffer without bound.
//! - **Rows carry no field count.** AsciiRow and BinaryRow have a bitmap of non-NULL fields
//!   whose size comes from the RowDescription before them: [`BackendDecoder`] remembers it.
//! - **COPY is raw text.** After CopyInResponse or CopyOutResponse, the data is lines of text
//!   without type bytes, ended by the line `\.` ([`COPY_END`]). [`BackendDecoder`] switches
//!   by itself after CopyOutResponse; a [`FrontendDecoder`] is told by its caller
//!   ([`FrontendDecoder::expect_copy_in`]), as it is told when a PasswordPacket is due.
//! - **Errors and notices are one string**, as the server wrote it (`ERROR:  ...\n` from
//!   PostgreSQL 7.4 to 13); ReadyForQuery carries no transaction status; notifications no
//!   payload; the cancel key is 4 bytes.
//!
//! The [`Client`](crate::Client) and the [`Server`](crate::Server) speak 2.0 on top of this
//! module (see their documentation); the rules of its query phase are the second table of
//! [`crate::protocol`].
//!
//! ```
//! use bytes::BytesMut;
//! use pgproto::v2::{AsciiRow, BackendDecoder, BackendMessage, FieldDescription, RowDescription, Text};
//! use pgproto::Encode;
//!
//! // A server's answer to `SELECT 1 AS a`, as PostgreSQL 13 sends it to a 2.0 client.
//! let mut out = BytesMut::new();
//! for m in [
//!     BackendMessage::CursorResponse(Text::new("blank")?),
//!     BackendMessage::RowDescription(RowDescription::new(&[FieldDescription {
//!         name: b"a",
//!         type_oid: 23,
//!         type_size: 4,
//!         type_modifier: -1,
//!     }])?),
//!     BackendMessage::AsciiRow(AsciiRow::new(&[Some(b"1")])?),
//!     BackendMessage::CompletedResponse(Text::new("SELECT 1")?),
//!     BackendMessage::ReadyForQuery,
//! ] {
//!     m.encode(&mut out);
//! }
//! assert_eq!(
//!     &out[..],
//!     b"Pblank\0T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\0\0\0\x051CSELECT 1\0Z"
//! );
//!
//! // Decoded one byte at a time: the same five messages.
//! let mut dec = BackendDecoder::new();
//! let mut names = Vec::new();
//! for b in out.iter() {
//!     dec.receive(&[*b]);
//!     while let Some(m) = dec.next()? {
//!         names.push(m.name());
//!     }
//! }
//! assert_eq!(
//!     names,
//!     ["CursorResponse", "RowDescription", "AsciiRow", "CompletedResponse", "ReadyForQuery"]
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod common;
mod convert;
mod decoder;
mod frontend;
mod rows;
mod scan;

pub use backend::{
    tag as backend_tag, Authentication, BackendKeyData, BackendMessage, FunctionResult,
    NotificationResponse,
};
pub use common::{CopyLine, Text, COPY_END};
pub(crate) use convert::response_v3;
pub use convert::{
    error_fields, error_text, function_call_v3, row_description_v2, row_description_v3,
};
pub use decoder::{BackendDecoder, FrontendDecoder};
pub use frontend::{
    tag as frontend_tag, FrontendMessage, FunctionCall, PasswordPacket, StartupPacket,
    STARTUP_PACKET_LEN,
};
pub use rows::{AsciiRow, BinaryRow, FieldDescription, Fields, RowDescription, RowValues};
