//! A sans-IO implementation of the PostgreSQL frontend/backend protocol, versions 3.0 and 3.2.
//!
//! Bytes in, messages out; messages in, bytes out. No sockets, no runtime, no clock: the caller
//! owns the I/O, and the same core serves drivers, servers, poolers, proxies and fuzzers.
//!
//! This release provides the foundation: incremental framing with per-message length limits and
//! a complete codec for every message of both directions. The [`auth`] module holds the password
//! authentication computations (SCRAM-SHA-256 with and without channel binding, MD5, cleartext)
//! for both roles.
//!
//! # Decoding
//!
//! Feed received bytes to a decoder, then drain it until it returns `Ok(None)`:
//!
//! ```
//! use pgproto::{BackendDecoder, BackendMessage};
//!
//! let mut dec = BackendDecoder::new();
//! // A DataRow with two columns ("42" and NULL), split across two reads.
//! let bytes = b"D\0\0\0\x10\0\x02\0\0\0\x0242\xff\xff\xff\xff";
//! for chunk in bytes.chunks(7) {
//!     dec.receive(chunk);
//!     while let Some(msg) = dec.next().unwrap() {
//!         let BackendMessage::DataRow(row) = msg else { panic!() };
//!         assert_eq!(row.columns().collect::<Vec<_>>(), [Some(&b"42"[..]), None]);
//!     }
//! }
//! ```
//!
//! Decoded messages hold `bytes::Bytes` slices of the received bytes: nothing is copied, and
//! text stays bytes until asked for (the `as_str`-style accessors check UTF-8 and never replace
//! characters). For hot loops, [`BackendDecoder::next_ref`] lends DataRow and CopyData straight
//! out of the buffer with no allocation and no reference count, and
//! [`BackendDecoder::next_data_row`] drains runs of rows faster still. On the server side,
//! [`FrontendDecoder::next_ref`] does the same for the extended-query pipeline (Parse, Bind,
//! Describe, Execute, Sync).
//!
//! # Encoding
//!
//! Every message type implements [`Encode`], which appends whole messages to a `BytesMut` and
//! cannot fail: constructors check the values (no NUL inside strings, counts within 16 bits,
//! lengths within 32 bits). For every valid frame, encoding its decoded message gives back the
//! same bytes.
//!
//! ```
//! use bytes::BytesMut;
//! use pgproto::{Bind, Encode, Execute, FormatCodes, FrontendMessage, Values};
//!
//! let mut out = BytesMut::new();
//! Bind::new("", "stmt", FormatCodes::default(), Values::new([Some(&b"7"[..])]).unwrap(), FormatCodes::default())
//!     .unwrap()
//!     .encode(&mut out);
//! Execute::new("", 0).unwrap().encode(&mut out);
//! FrontendMessage::Sync.encode(&mut out);
//! assert_eq!(out.len(), 22 + 10 + 5);
//! ```
//!
//! The hot messages can also be written straight from values, with the same checks and nothing
//! built or allocated: [`Bind::encode_values`], [`Parse::encode_values`],
//! [`Execute::encode_values`], [`Describe::encode_values`], [`Close::encode_values`],
//! [`Query::encode_str`] and, for a server, [`DataRow::encode_values`].
//!
//! ```
//! use bytes::BytesMut;
//! use pgproto::{Bind, Encode, Execute, FrontendMessage};
//!
//! let mut out = BytesMut::new();
//! Bind::encode_values(&mut out, "", "stmt", &[], &[Some(&b"7"[..])], &[]).unwrap();
//! Execute::encode_values(&mut out, "", 0).unwrap();
//! FrontendMessage::Sync.encode(&mut out);
//! assert_eq!(out.len(), 22 + 10 + 5);
//! ```
//!
//! # Bad input
//!
//! No input makes the crate panic or allocate without bound. An unknown type byte is refused as
//! soon as it arrives, an out-of-range length as soon as its four bytes arrive, and a malformed
//! body with a [`DecodeError`] naming the message and field. See [`Limits`] for the defaults,
//! which are PostgreSQL's own.

pub mod auth;
mod client;
mod codec;
mod conn;
mod decoder;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod message;
pub mod protocol;
mod server;

pub use client::{
    AuthMethod, ChannelBindingPolicy, Client, ClientConfig, ClientEvent, Encryption, RequestId,
    RequireAuth, RequireAuthParseError,
};
pub use codec::Encode;
pub use decoder::{BackendDecoder, BackendMessageRef, Frame, FrontendDecoder};
pub use error::{AuthError, DecodeError, EncodeError, Error, Tag, UsageError};
pub use limits::{Limits, LARGE_MESSAGE_LIMIT};
pub use message::auth::{Authentication, SaslMechanisms};
pub use message::backend::{
    tag as backend_tag, BackendKeyData, BackendMessage, CommandComplete, CopyResponse,
    NegotiateProtocolVersion, NotificationResponse, ParameterStatus,
};
pub use message::common::{
    Format, FormatCodes, FormatCodesRef, FormatIter, ProtocolVersion, Target, TransactionStatus,
    Values, ValuesIter, ValuesRef,
};
pub use message::fields::{ErrorField, ErrorFields, ErrorFieldsIter, FieldCode};
pub use message::frontend::{
    tag as frontend_tag, AuthResponseKind, Bind, Close, CopyData, CopyFail, Describe, Execute,
    FrontendMessage, FunctionCall, GssResponse, Parse, PasswordMessage, Query, SaslInitialResponse,
    SaslResponse, UntypedAuthResponse,
};
pub use message::frontend_ref::{
    BindRef, CloseRef, DescribeRef, ExecuteRef, FrontendMessageRef, ParseRef,
};
pub use message::rows::{
    DataRow, DataRowRef, FieldDescription, Fields, ParameterDescription, RowDescription,
};
pub use message::startup::{
    CancelRequest, StartupMessage, UnsupportedStartup, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE,
    MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN, SSL_REQUEST_CODE,
};
pub use server::{Server, ServerAuth, ServerConfig, ServerEvent};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
