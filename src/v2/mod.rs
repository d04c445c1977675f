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
//! module; the rules of its query phase are the second table of [`crate::protocol`] (its
//! [`v2`](crate::protocol::v2) module). Both keep their 3.0 API: a driver or a server
//! application works over either protocol unchanged.
//!
//! # The Client over 2.0
//!
//! With [`ClientConfig::max_protocol_version`](crate::ClientConfig) 2.0 the client sends the
//! 2.0 StartupPacket at once; with `min_protocol_version` 2.0 and a 3.x maximum it falls back
//! when the server refuses 3.x in 2.0's way ([`ClientEvent::FallbackToV2`](crate::ClientEvent)).
//! Trust, cleartext and MD5 authentication are computed (crypt, Kerberos and SCM credentials
//! are refused with [`AuthError::Unsupported`](crate::AuthError)). The server's answers are
//! handed out as the 3.0 messages that mean the same: RowDescription ([`row_description_v3`]),
//! DataRow for AsciiRow and BinaryRow, CommandComplete, ErrorResponse and NoticeResponse whose
//! fields come from the text ([`error_fields`]: severity and message, no SQLSTATE),
//! NotificationResponse with an empty payload, CopyInResponse and CopyOutResponse (text), each
//! COPY line as CopyData and `\.` as CopyDone, FunctionCallResponse, and ReadyForQuery with a
//! status derived from the command tags and errors as libpq 13 derives it. CursorResponse has
//! no counterpart and is dropped (libpq ignores it too). Extended-query commands and CopyFail
//! do not exist in 2.0 and are refused; COPY data is sent as it is and
//! [`Client::copy_done`](crate::Client::copy_done) ends it with `\.` on a line of its own.
//!
//! # The Server over 2.0
//!
//! With [`ServerConfig::min_protocol_version`](crate::ServerConfig) 2.0, a 2.0 StartupPacket
//! (read as PostgreSQL 13 reads it: a short packet zero-filled) is reported as a
//! [`ServerEvent::Startup`](crate::ServerEvent) of version 2.0 whose parameters are the packet's
//! user, database (the user's name when empty) and options. The client's messages come as their
//! 3.0 counterparts (Query; FunctionCall with binary arguments and result; each COPY line as
//! CopyData and `\.` as CopyDone; Terminate), and the application's answers go out in 2.0's
//! form, each checked against the 2.0 table:
//!
//! | the application's answer | sent over 2.0 |
//! | --- | --- |
//! | `authenticate`: trust, password, MD5 | AuthenticationOk, CleartextPassword or MD5Password; then BackendKeyData (a 4-byte key) and ReadyForQuery, no ParameterStatus. SCRAM, GSS, SSPI, SASL: FATAL "... authentication is not supported in protocol version 2", as PostgreSQL 13 |
//! | `row_description` | CursorResponse (`blank`), then RowDescription in the 2.0 layout |
//! | `data_row` | AsciiRow (BinaryRow when every field of the description is binary) |
//! | `command_complete`, `empty_query_response` | CompletedResponse, EmptyQueryResponse |
//! | `error_response`, `notice`, `fatal`, `reject` | ErrorResponse or NoticeResponse with [`error_text`]: `SEVERITY:  message\n` |
//! | `notification` | NotificationResponse without the payload |
//! | `parameter_status` | nothing: 2.0 has no ParameterStatus |
//! | `copy_in_response`, `copy_out_response` | CopyInResponse, CopyOutResponse (text only) |
//! | `copy_data`, `copy_done` (COPY TO STDOUT) | the data as it is, then `\.` on a line of its own |
//! | `function_call_response` | FunctionResultResponse, or FunctionVoidResponse for `None` |
//! | `ready_for_query` | ReadyForQuery, without the status |
//! | the extended-query answers, `copy_both_response` | refused: 2.0 has no such message |
//!
//! An error during COPY FROM STDIN before the client's `\.` is followed, as in PostgreSQL 13,
//! by FATAL "terminating connection because protocol synchronization was lost" and the end of
//! the connection. With [`ServerConfig::max_protocol_version`](crate::ServerConfig) 2.0 too, a
//! 3.x StartupMessage is answered with an error in 2.0's format, as a server older than 7.4
//! answered it, which makes libpq up to 13 reconnect with 2.0.
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
