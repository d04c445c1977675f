//! Pooler primitives: what a program that plays both roles at once (a connection pooler, a
//! proxy) needs beyond a [`Client`](crate::Client) and a [`Server`](crate::Server).
//!
//! A transaction pooler in front of PostgreSQL is built from these pieces (the `proxy` example
//! is one, on tokio):
//!
//! - **The client side** is a [`Server`](crate::Server) with
//!   [`StartupEnd::Application`](crate::StartupEnd::Application): after authentication the
//!   pooler sends the upstream server's ParameterStatus values (or a FATAL error, say 3D000 for
//!   a database it does not serve), then ends the start-up with a cancel key of its own
//!   choosing ([`Server::finish_startup`](crate::Server::finish_startup), keys from
//!   [`CancelKeys`]). With a [`pipeline_depth`](crate::ServerConfig::pipeline_depth) above 1
//!   the machine hands out the client's pipeline as it arrives, and checks every answer the
//!   pooler forwards ([`Server::forward`](crate::Server::forward)) against the queue of
//!   requests in flight.
//! - **The upstream side** is a [`Client`](crate::Client) for the start-up (TLS,
//!   authentication, the server's parameters and key); after it, the pooler moves frames:
//!   a [`Relay`](crate::Relay) cuts what the server sends into frames (large ones in pieces,
//!   so that memory stays bounded), and a [`Correlator`] says which request each answers and
//!   whether it goes to the client ([`Action`]: forward, skip, or answered by the pooler).
//!   [`Correlator::is_idle`] says when the connection can serve another client (ReadyForQuery
//!   `I`, nothing in flight).
//! - **Prepared statements**: [`Rewrite`] renames each client's named statements to the
//!   pool's ([`StatementRegistry`]), prepares them on the upstream connection that serves the
//!   client when it lacks them, and answers for the upstream connection when it does not need
//!   to be asked ([`ClientStatements`], [`UpstreamStatements`]).
//! - **Cancel**: a CancelRequest from a client
//!   ([`ServerEvent::CancelRequest`](crate::ServerEvent::CancelRequest) on a new connection) is
//!   matched to the session its key was issued for in constant time ([`CancelKeys`],
//!   [`keys_equal`]), and the pooler sends the upstream connection's key on a new connection
//!   of its own ([`cancel_packet`]).
//!
//! # The run loop of one client
//!
//! 1. Bytes from the client: `Server::receive`, then for every `ServerEvent::Message`,
//!    [`Rewrite::message`] (which writes what goes upstream and pushes into the correlator),
//!    then the correlator's events (synthesized answers go to `Server::forward`,
//!    finished requests to [`Rewrite::finished`]); write the upstream bytes.
//! 2. Bytes from upstream: `Relay::receive`, then for every piece, [`Correlator::route`]:
//!    forwarded pieces go to `Server::forward`; then the correlator's events as above; write
//!    `Server::poll_transmit` to the client. Once [`Correlator::is_idle`], release the upstream
//!    connection.
//!
//! ```
//! use bytes::BytesMut;
//! use pgproto::pooler::{
//!     ClientStatements, Correlator, CorrelatorEvent, Rewrite, Route, StatementRegistry,
//!     UpstreamStatements,
//! };
//! use pgproto::{
//!     FramePiece, Limits, Relay, Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd,
//! };
//!
//! let mut config = ServerConfig::default();
//! config.startup_end = StartupEnd::Application;
//! config.pipeline_depth = 64;
//! let mut server = Server::new(config);
//! let registry = StatementRegistry::new("pool_");
//! let (mut client, mut upstream) = (ClientStatements::default(), UpstreamStatements::new(100));
//! let mut correlator = Correlator::new();
//! let mut to_upstream = BytesMut::new();
//!
//! // The client logs in and sends a pipeline: Parse "P_0", Bind, Execute, Sync.
//! server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
//! server.receive(b"P\0\0\0\x13P_0\0SELECT 1\0\0\0B\0\0\0\x0f\0P_0\0\0\0\0\0\0\0");
//! server.receive(b"E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04");
//! while let Some(event) = server.poll_event()? {
//!     match event {
//!         ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust)?,
//!         ServerEvent::Authenticated => {
//!             server.parameter_status("server_version", "18.1")?; // the upstream's
//!             server.finish_startup(None)?;
//!         }
//!         ServerEvent::Message(m) => {
//!             let mut rw = Rewrite { registry: &registry, client: &mut client, upstream: &mut upstream };
//!             rw.message(&m, &mut to_upstream, &mut correlator)?;
//!         }
//!         _ => {}
//!     }
//! }
//! assert_eq!(server.in_flight(), 4); // all four handed out before any answer
//! assert!(to_upstream.starts_with(b"P\0\0\0\x16pool_1\0"));
//!
//! // What the upstream server answers, cut into frames and routed.
//! let mut relay = Relay::backend(Limits::default());
//! relay.receive(b"1\0\0\0\x042\0\0\0\x04D\0\0\0\x0b\0\x01\0\0\0\x011C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I");
//! while let Some(piece) = relay.next_piece()? {
//!     if correlator.route(&piece)? == Route::Forward {
//!         server.forward(&piece)?;
//!     }
//!     while let Some(event) = correlator.poll_event() {
//!         match event {
//!             CorrelatorEvent::Synthesized(bytes) => server.forward(&FramePiece::whole(&bytes)?)?,
//!             CorrelatorEvent::Finished { data, outcome, .. } => {
//!                 Rewrite { registry: &registry, client: &mut client, upstream: &mut upstream }
//!                     .finished(data, outcome)
//!             }
//!         }
//!     }
//! }
//! assert!(correlator.is_idle()); // the upstream connection can serve another client
//! assert_eq!(server.in_flight(), 0);
//! let to_client = server.poll_transmit().unwrap();
//! assert!(to_client.ends_with(b"1\0\0\0\x042\0\0\0\x04D\0\0\0\x0b\0\x01\0\0\0\x011C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cancel;
mod correlator;
mod rewrite;
mod statements;

pub use cancel::{cancel_packet, keys_equal, CancelKeys};
pub use correlator::{Action, Correlator, CorrelatorEvent, Outcome, Route};
pub use rewrite::{Rewrite, RewriteError, StatementNote};
pub use statements::{
    ClientStatements, Statement, StatementRegistry, TooManyStatements, UpstreamStatements,
};
