//! A sans-IO implementation of the PostgreSQL frontend/backend protocol (versions 3.0 and 3.2,
//! and the old 2.0 of PostgreSQL 6.4 to 13: see [`v2`]) for both roles.
//!
//! Bytes in, events and bytes out: no sockets, no runtime, no clock, no TLS library. The caller
//! owns the I/O; the crate owns the protocol's rules. The same core serves:
//!
//! - **drivers**, through [`Client`] (the frontend role: start-up, encryption hand-off,
//!   authentication, simple and extended queries, pipelining, COPY, cancel keys);
//! - **servers and mock servers**, through [`Server`] (the backend role: encryption requests,
//!   version negotiation, trust, cleartext, MD5 and SCRAM-SHA-256(-PLUS) authentication, one
//!   request answered at a time with each answer checked, discard-until-Sync, COPY);
//! - **poolers and proxies**, through both at once and the [`pooler`] primitives: a start-up
//!   the application ends itself (its parameters, its cancel key, a FATAL error after
//!   authentication), requests in flight on the server side ([`ServerConfig::pipeline_depth`]),
//!   frames passed through in pieces ([`Relay`], [`Server::forward`]), the correlation queue of
//!   an upstream connection ([`pooler::Correlator`]), prepared statements renamed per pool
//!   ([`pooler::Rewrite`]) and cancel routing ([`pooler::CancelKeys`]);
//! - **tools and fuzzers**, through the decoders ([`BackendDecoder`], [`FrontendDecoder`]) and
//!   the message types, which every state machine is built on;
//! - **replication clients and servers**, through [`replication`]: the messages inside CopyData
//!   of streaming replication, BASE_BACKUP and pgoutput (versions 1 to 4), carried by the same
//!   machines on `replication=true|database` connections.
//!
//! # The run loop
//!
//! Every state machine follows one contract. After **every input** (`receive`, `receive_eof`,
//! `tls_established`) and **every command** (`query`, `parse`, ... on a [`Client`];
//! `authenticate`, `data_row`, `ready_for_query`, ... on a [`Server`]), the application MUST
//! drain `poll_event` until it returns `Ok(None)`, then drain `poll_transmit` and write those
//! bytes to the peer. The machines never block, never spawn and never read a clock: `Ok(None)`
//! means "give me more input" (or, on a server, "answer the message I handed you").
//!
//! Events borrow: a row ([`BackendMessage::DataRow`]) or a frontend message
//! ([`FrontendMessage`]) points into the machine's receive buffer and stays valid until the
//! next call that takes `&mut self`, so a result set or a pipeline streams through without an
//! allocation per message. Read what you need, then answer or poll again; `into_owned()` on an
//! event ([`ClientEvent::into_owned`], [`ServerEvent::into_owned`]) keeps it longer.
//!
//! ## A client
//!
//! ```
//! use pgproto::{BackendMessage, Client, ClientConfig, ClientEvent};
//!
//! let mut client = Client::new(ClientConfig::new("alice"))?;
//! let startup = client.poll_transmit().expect("the StartupMessage"); // write it to the socket
//! # assert_eq!(&startup[4..8], &[0, 3, 0, 0]);
//!
//! // Bytes read from the socket: AuthenticationOk, ReadyForQuery (a trusting server).
//! client.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
//! while let Some(event) = client.poll_event()? {
//!     if let ClientEvent::Connected { .. } = event {
//!         client.query("SELECT 'a'")?;
//!     }
//! }
//! while let Some(bytes) = client.poll_transmit() {
//!     // write `bytes` to the socket (here: the Query)
//! #   assert_eq!(bytes[0], b'Q');
//! }
//!
//! // The answer: RowDescription (one text column, "a"), a DataRow with that one column,
//! // CommandComplete, ReadyForQuery.
//! client.receive(b"T\0\0\0\x1a\0\x01a\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0");
//! client.receive(b"D\0\0\0\x0b\0\x01\0\0\0\x01aC\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I");
//! let mut rows = Vec::new();
//! while let Some(event) = client.poll_event()? {
//!     match event {
//!         ClientEvent::Response { message: BackendMessage::DataRow(row), .. } => {
//!             // `row` borrows the receive buffer: read it now. Each value is checked as it
//!             // is read (an error: the server sent a malformed row).
//!             for value in row.columns() {
//!                 rows.push(value?.map(<[u8]>::to_vec)); // `None`: NULL
//!             }
//!         }
//!         ClientEvent::Response {
//!             message: BackendMessage::CommandComplete(c),
//!             ..
//!         } => assert_eq!(c.tag(), b"SELECT 1"),
//!         _ => {}
//!     }
//! }
//! assert_eq!(rows, [Some(b"a".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## A server
//!
//! ```
//! use pgproto::{
//!     FieldDescription, Format, FrontendMessage, RowDescription, Server, ServerAuth,
//!     ServerConfig, ServerEvent, TransactionStatus,
//! };
//!
//! let mut server = Server::new(ServerConfig::default());
//! // Bytes read from the socket: a StartupMessage for user "alice", then a Query.
//! server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
//! server.receive(b"Q\0\0\0\x0dSELECT 1\0");
//! let mut answered = 0;
//! while let Some(event) = server.poll_event()? {
//!     match event {
//!         ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust)?,
//!         ServerEvent::Message(FrontendMessage::Query(q)) => {
//!             assert_eq!(q.sql(), b"SELECT 1"); // borrowed: read it before answering
//!             let column = FieldDescription {
//!                 name: b"?column?",
//!                 table_oid: 0,
//!                 column_id: 0,
//!                 type_oid: 23,
//!                 type_size: 4,
//!                 type_modifier: -1,
//!                 format: Format::Text,
//!             };
//!             server.row_description(&RowDescription::new(&[column])?)?;
//!             server.data_row(&[Some(b"1")])?;
//!             server.command_complete("SELECT 1")?;
//!             server.ready_for_query(TransactionStatus::Idle)?;
//!             answered += 1;
//!         }
//!         _ => {}
//!     }
//! }
//! while let Some(bytes) = server.poll_transmit() {
//!     // write `bytes` to the socket: AuthenticationOk, ParameterStatus..., BackendKeyData,
//!     // ReadyForQuery, then the answer to the Query
//! #   assert!(bytes.ends_with(b"Z\0\0\0\x05I"));
//! }
//! assert_eq!(answered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The two roles are symmetric: the messages a [`Client`] sends are the events a [`Server`]
//! reports, and the other way round, so they can be tested against each other in memory.
//!
//! # The fast paths
//!
//! Where throughput matters, each machine has one poll beside `poll_event` for its hot message:
//! [`Client::poll_row`] hands out the next DataRow of the request in flight (with its request
//! id) and [`Server::poll_message`] the next message that starts a request, each as a bare
//! borrowed value instead of an event, and each `None`, consuming nothing, whenever anything
//! else comes next. Drain them first, then `poll_event` for the rest, as the decoders'
//! [`BackendDecoder::next_data_row`] and `next_ref` are meant to be used; the contract above is
//! unchanged (the loop ends when `poll_event` returns `Ok(None)`). On the session benchmarks
//! (`benches/session.rs`) this is what makes the difference between an event of 56 or 96 bytes
//! moved through memory per message and a few words.
//!
//! # The protocol's rules
//!
//! Which response may answer which request, and which one ends it, is one table shared by both
//! roles: see [`protocol`]. A [`Client`] refuses a response the table does not allow
//! ([`Error::UnexpectedMessage`]); a [`Server`] refuses an answer the table does not allow
//! ([`UsageError::NotAllowed`]) and sends nothing.
//!
//! # Errors
//!
//! - [`Error`], from `poll_event`: the peer broke the protocol, sent a malformed message
//!   ([`DecodeError`], naming the message and the field), failed authentication
//!   ([`AuthError`]), or the connection ended early. Errors are **sticky**: every later
//!   `poll_event` returns the same error, and events decoded before it are delivered first. A
//!   [`Server`] first queues a FATAL ErrorResponse (SQLSTATE [`Error::sqlstate`], `08P01` for a
//!   protocol violation) for `poll_transmit`, so the client learns why.
//! - [`UsageError`], from a command: the application asked for something the protocol does not
//!   allow now (a query during start-up, an answer to nothing), or gave a value that cannot be
//!   sent (a NUL inside a string, more than 65,535 values). Nothing is sent and the machine
//!   stays as it was.
//! - [`EncodeError`], from a message constructor: the value cannot be encoded.
//!
//! # Limits
//!
//! Every peer input is bounded: an unknown type byte is refused as soon as it arrives, a length
//! word over the message type's limit as soon as its four bytes arrive, and no memory is ever
//! reserved from a length word. The defaults ([`Limits`]) are PostgreSQL's and libpq's own:
//!
//! | received by | message | limit (length word) |
//! | --- | --- | --- |
//! | server | start-up packets | 10,000 |
//! | server | Query, Parse, Bind, CopyData, FunctionCall | 1 GiB - 2 |
//! | server | PasswordMessage, SASL and GSS responses | 65,535 |
//! | server | every other message | 10,000 |
//! | client | RowDescription, DataRow, CopyData, FunctionCallResponse, ErrorResponse, NoticeResponse, NotificationResponse, ParameterDescription | 1 GiB - 2 |
//! | client | every other message | 30,000 |
//!
//! No input makes the crate panic (every decoder and both machines are fuzzed). An idle
//! connection's machine keeps under 1 KiB of heap after `release_buffers`.
//!
//! # The codec underneath
//!
//! The machines are built on incremental decoders and one type per message, which are public
//! for tools, proxies and tests. [`BackendDecoder`] reads what a server sends and
//! [`FrontendDecoder`] what a client sends. A message type's lifetime says whether it borrows:
//! `next_ref` lends messages that point into the decoder's buffer (`BackendMessage<'_>`, valid
//! until the next call), `next` returns owned ones (`BackendMessage<'static>`), and
//! `into_owned()` turns the first into the second. There is no separate "view" type.
//!
//! ```
//! use pgproto::{BackendDecoder, BackendMessage};
//!
//! let mut dec = BackendDecoder::new();
//! // A DataRow with two columns ("42" and NULL), split across two reads.
//! let bytes = b"D\0\0\0\x10\0\x02\0\0\0\x0242\xff\xff\xff\xff";
//! for chunk in bytes.chunks(7) {
//!     dec.receive(chunk);
//!     while let Some(msg) = dec.next_ref().unwrap() {
//!         let BackendMessage::DataRow(row) = msg else { panic!() };
//!         let values = row.columns().collect::<Result<Vec<_>, _>>().unwrap();
//!         assert_eq!(values, [Some(&b"42"[..]), None]);
//!     }
//! }
//! ```
//!
//! Every message type implements [`Encode`], which appends whole messages to a `BytesMut` and
//! cannot fail: constructors check the values. A decoded message keeps its body as received,
//! so encoding it again writes the same bytes. The hot messages are written straight from
//! values, with the same checks and nothing built (the constructors use these too):
//! [`Bind::encode_values`],
//! [`Parse::encode_values`], [`Execute::encode_values`], [`Describe::encode_values`],
//! [`Close::encode_values`], [`Query::encode_str`] and [`DataRow::encode_values`].
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
//! # Protocol traces
//!
//! Both machines can write every message they send and receive in libpq's `PQtrace` format
//! ([`Client::set_tracer`], [`Server::set_tracer`]), including the start-up exchange libpq
//! cannot show; [`trace`] has the format, the tracer for recorded connections and a
//! per-message formatter.
//!
//! The [`auth`] module holds the password computations both roles use (SCRAM-SHA-256 with and
//! without channel binding, MD5, cleartext, SASLprep, and the tls-server-end-point hash of a
//! certificate). [`conninfo`] reads libpq connection strings (keyword/value pairs and
//! `postgresql://` URIs) exactly as libpq 18 does, and makes a [`ClientConfig`] of them.
//!
//! # Not here
//!
//! Sockets, TLS itself, a runtime, and value types beyond raw bytes are the application's.
//! GSSAPI, SSPI and OAUTHBEARER tokens pass through as events for the application to compute.

pub mod auth;
mod client;
mod codec;
mod columns;
mod conn;
pub mod conninfo;
mod decoder;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod message;
pub mod pooler;
pub mod protocol;
mod relay;
pub mod replication;
mod server;
pub mod trace;
pub mod v2;

pub use client::{
    AuthMethod, ChannelBindingPolicy, Client, ClientConfig, ClientEvent, Encryption, RequestId,
    RequireAuth, RequireAuthParseError,
};
pub use codec::Encode;
pub use decoder::{BackendDecoder, Frame, FrontendDecoder};
pub use error::{AuthError, DecodeError, EncodeError, Error, Tag, UsageError};
pub use limits::{Limits, LARGE_MESSAGE_LIMIT};
pub use message::auth::{Authentication, SaslMechanisms};
pub use message::backend::{
    tag as backend_tag, BackendKeyData, BackendMessage, CommandComplete, CopyResponse,
    NegotiateProtocolVersion, NotificationResponse, ParameterStatus,
};
pub use message::common::{
    Format, FormatCodes, FormatIter, ProtocolVersion, Target, TransactionStatus, Values, ValuesIter,
};
pub use message::fields::{ErrorField, ErrorFields, ErrorFieldsIter, FieldCode};
pub use message::frontend::{
    tag as frontend_tag, AuthResponseKind, Bind, Close, CopyData, CopyFail, Describe, Execute,
    FrontendMessage, FunctionCall, GssResponse, Parse, PasswordMessage, Query, SaslInitialResponse,
    SaslResponse, UntypedAuthResponse,
};
pub use message::rows::{
    Columns, DataRow, FieldDescription, Fields, ParameterDescription, RowDescription,
};
pub use message::startup::{
    CancelRequest, StartupMessage, UnsupportedStartup, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE,
    MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN, SSL_REQUEST_CODE,
};
pub use relay::{FrameHeader, FramePiece, Relay};
pub use server::{
    os_random, Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd, SuspendedServer,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
