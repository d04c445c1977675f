//! A `Client` and a `Server` of this crate connected in memory, through the public API only.
//!
//! The test plays the client's application (it calls `query`, `parse`, `copy_data`... between
//! steps); the server's application is an [`Answer`]: a closure or a stateful value that answers
//! each server event, so that each test decides what the "database" says. Every transfer follows
//! the run-loop contract: after each read, `poll_event` is drained until `Ok(None)` (events kept
//! owned, with `into_owned`), then `poll_transmit` is drained by the next transfer.
//!
//! ```ignore
//! mod support;
//! use support::pair::Pair;
//!
//! let mut p = Pair::new(client, server, Box::new(|s: &mut Server, e: &ServerEvent| { ... }));
//! p.drive();                        // until nothing moves (panics if it never settles)
//! p.transfer_chunked(&[1, 3]);      // one step, each transfer cut into reads of 1, 3, 1, 3... bytes
//! p.transfer_altered(|dir, frame| Altered::Keep); // one step, frame by frame through a hook
//! ```
//!
//! The pretend TLS or GSS handshake: when the server accepts SSLRequest (GSSENCRequest), the
//! client's side is completed here with [`Pair::end_point`] as the certificate hash; the server's
//! side is the answerer's business (`tls_established` after `accept_ssl(true)`).

use std::fmt;

use pgproto::{
    Client, ClientEvent, Error, Server, ServerEvent, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE,
};

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// What a [`Pair::transfer_altered`] hook does with one frame in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Altered {
    /// Deliver it as it is.
    Keep,
    /// Deliver these bytes instead (any number of frames, or part of one).
    Replace(Vec<u8>),
    /// Deliver nothing.
    Drop,
}

/// The server's application: answers each event the server hands out.
pub(crate) trait Answer {
    /// Called once per event, in order, right after `poll_event` returned it.
    fn answer(&mut self, server: &mut Server, event: &ServerEvent);
}

impl<F: FnMut(&mut Server, &ServerEvent)> Answer for F {
    fn answer(&mut self, server: &mut Server, event: &ServerEvent) {
        self(server, event)
    }
}

/// An answering closure, boxed: the default answerer of a [`Pair`].
pub(crate) type Answerer = Box<dyn FnMut(&mut Server, &ServerEvent)>;

/// How a transfer is cut into reads: given the direction and the number of bytes, the sizes of
/// the reads (they must add up to the number of bytes).
pub(crate) type Split = Box<dyn FnMut(Direction, usize) -> Vec<usize>>;

/// A hook of [`Pair::transfer_altered`].
type Alter<'a> = &'a mut dyn FnMut(Direction, &[u8]) -> Altered;

/// A step budget ran out with bytes still moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotSettled {
    /// The steps taken.
    pub(crate) steps: usize,
}

impl fmt::Display for NotSettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the pair did not settle in {} steps", self.steps)
    }
}

/// Cuts one direction's bytes into frames, for [`Pair::transfer_altered`].
#[derive(Debug, Default)]
struct Framer {
    /// Client to server: still in the start-up phase (untagged packets).
    untagged: bool,
    /// Server to client: one-byte answers owed to SSLRequest or GSSENCRequest.
    single_bytes: usize,
}

/// A `Client` and a `Server` connected in memory. `A` answers the server's events.
pub(crate) struct Pair<A = Answerer> {
    /// The client.
    pub(crate) client: Client,
    /// The server.
    pub(crate) server: Server,
    /// The server's application.
    pub(crate) answer: A,
    /// Every event the client reported, owned, in order.
    pub(crate) client_events: Vec<ClientEvent>,
    /// Every event the server reported, owned, in order.
    pub(crate) server_events: Vec<ServerEvent>,
    /// The client's error, once `poll_event` failed (checked to be sticky; no events after it).
    pub(crate) client_error: Option<Error>,
    /// The server's error, the same way.
    pub(crate) server_error: Option<Error>,
    /// How transfers are cut into reads (default: each transfer in one read).
    pub(crate) split: Split,
    /// The certificate hash the client gets from the pretend TLS handshake.
    pub(crate) end_point: Option<Vec<u8>>,
    to_server: Framer,
    to_client: Framer,
}

/// The certificate hash a pretend TLS handshake gives both sides, unless a test says otherwise.
pub(crate) const END_POINT: &[u8] = b"certificate hash";

impl<A: Answer> Pair<A> {
    /// Connects `client` and `server`; nothing moves until the first step.
    pub(crate) fn new(client: Client, server: Server, answer: A) -> Self {
        Self {
            client,
            server,
            answer,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_error: None,
            server_error: None,
            split: Box::new(|_, len| vec![len]),
            end_point: Some(END_POINT.to_vec()),
            to_server: Framer {
                untagged: true,
                single_bytes: 0,
            },
            to_client: Framer::default(),
        }
    }

    /// The client and the server, dropping everything else.
    pub(crate) fn into_parts(self) -> (Client, Server) {
        (self.client, self.server)
    }

    /// Moves what the client has to send to the server, then what the server has to send to
    /// the client, draining events after every read. Returns whether any bytes moved.
    pub(crate) fn step(&mut self) -> bool {
        let a = self.transfer(Direction::ToServer, None, None);
        let b = self.transfer(Direction::ToClient, None, None);
        a || b
    }

    /// Steps until a step moves nothing; panics after 10,000 steps.
    pub(crate) fn drive(&mut self) {
        if let Err(e) = self.drive_bounded(10_000) {
            panic!("{e}");
        }
    }

    /// Steps until a step moves nothing, at most `max` steps; returns the steps taken (the last,
    /// which moved nothing, included).
    pub(crate) fn drive_bounded(&mut self, max: usize) -> Result<usize, NotSettled> {
        for i in 0..max {
            if !self.step() {
                return Ok(i + 1);
            }
        }
        Err(NotSettled { steps: max })
    }

    /// One step, with every transfer cut into reads of `sizes[0]`, `sizes[1]`... bytes (the
    /// sizes repeat; zeros are skipped). Returns whether any bytes moved.
    pub(crate) fn transfer_chunked(&mut self, sizes: &[usize]) -> bool {
        let a = self.transfer(Direction::ToServer, Some(sizes), None);
        let b = self.transfer(Direction::ToClient, Some(sizes), None);
        a || b
    }

    /// One step, with every frame in flight (start-up packets and one-byte SSL/GSS answers
    /// included) passed to `alter` first, which keeps, replaces or drops it. Returns whether any
    /// bytes left either side.
    pub(crate) fn transfer_altered(
        &mut self,
        mut alter: impl FnMut(Direction, &[u8]) -> Altered,
    ) -> bool {
        let a = self.transfer(Direction::ToServer, None, Some(&mut alter));
        let b = self.transfer(Direction::ToClient, None, Some(&mut alter));
        a || b
    }

    /// Drains both sides' events without moving bytes (after `receive_eof`, say).
    pub(crate) fn drain(&mut self) {
        self.drain_server();
        self.drain_client();
    }

    /// The client's events so far, leaving none.
    pub(crate) fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Whether neither side has failed.
    pub(crate) fn healthy(&self) -> bool {
        self.client_error.is_none() && self.server_error.is_none()
    }

    fn transfer(
        &mut self,
        dir: Direction,
        sizes: Option<&[usize]>,
        alter: Option<Alter<'_>>,
    ) -> bool {
        let mut bytes = Vec::new();
        loop {
            let b = match dir {
                Direction::ToServer => self.client.poll_transmit(),
                Direction::ToClient => self.server.poll_transmit(),
            };
            let Some(b) = b else { break };
            assert!(!b.is_empty(), "{dir:?}: poll_transmit returned empty bytes");
            bytes.extend_from_slice(&b);
        }
        let moved = !bytes.is_empty();
        if let Some(alter) = alter {
            bytes = self.alter(dir, &bytes, alter);
        }
        let pieces = match sizes {
            Some(sizes) => cycle(sizes, bytes.len()),
            None => (self.split)(dir, bytes.len()),
        };
        assert_eq!(pieces.iter().sum::<usize>(), bytes.len(), "a bad split");
        let mut at = 0;
        for n in pieces {
            let piece = &bytes[at..at + n];
            at += n;
            match dir {
                Direction::ToServer => {
                    self.server.receive(piece);
                    self.drain_server();
                }
                Direction::ToClient => {
                    self.client.receive(piece);
                    self.drain_client();
                }
            }
        }
        match dir {
            Direction::ToServer => self.drain_server(),
            Direction::ToClient => self.drain_client(),
        }
        moved
    }

    /// Cuts `bytes` into frames and passes each to `alter`.
    fn alter(&mut self, dir: Direction, bytes: &[u8], alter: Alter<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = match dir {
                Direction::ToServer if self.to_server.untagged => {
                    let len = be32(rest, 0).map_or(rest.len(), |n| n as usize);
                    match be32(rest, 4) {
                        Some(SSL_REQUEST_CODE | GSSENC_REQUEST_CODE) => {
                            self.to_client.single_bytes += 1
                        }
                        _ => self.to_server.untagged = false,
                    }
                    len
                }
                Direction::ToClient if self.to_client.single_bytes > 0 => {
                    self.to_client.single_bytes -= 1;
                    1
                }
                _ => be32(rest, 1).map_or(rest.len(), |n| n as usize + 1),
            }
            .clamp(1, rest.len());
            let (frame, tail) = rest.split_at(len);
            match alter(dir, frame) {
                Altered::Keep => out.extend_from_slice(frame),
                Altered::Replace(b) => out.extend_from_slice(&b),
                Altered::Drop => {}
            }
            rest = tail;
        }
        out
    }

    fn drain_server(&mut self) {
        if self.server_error.is_some() {
            return;
        }
        loop {
            match self.server.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    self.answer.answer(&mut self.server, &e);
                    self.server_events.push(e);
                }
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(
                        self.server
                            .poll_event()
                            .map(|e| e.map(ServerEvent::into_owned)),
                        Err(e.clone()),
                        "sticky server error"
                    );
                    self.server_error = Some(e);
                    return;
                }
            }
        }
    }

    fn drain_client(&mut self) {
        if self.client_error.is_some() {
            return;
        }
        loop {
            match self.client.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    match e {
                        ClientEvent::SslResponse { accepted: true } => {
                            self.client
                                .tls_established(self.end_point.clone())
                                .expect("the client takes the TLS handshake");
                        }
                        ClientEvent::GssEncResponse { accepted: true } => {
                            self.client
                                .gss_established()
                                .expect("the client takes the GSS handshake");
                        }
                        _ => {}
                    }
                    self.client_events.push(e);
                }
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(
                        self.client
                            .poll_event()
                            .map(|e| e.map(ClientEvent::into_owned)),
                        Err(e.clone()),
                        "sticky client error"
                    );
                    self.client_error = Some(e);
                    return;
                }
            }
        }
    }
}

/// The big-endian 32-bit word at `at`, if there are four bytes there.
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// `len` bytes cut into pieces of the sizes in `sizes`, in turn (zeros skipped).
fn cycle(sizes: &[usize], len: usize) -> Vec<usize> {
    let sizes: Vec<usize> = sizes.iter().copied().filter(|&n| n > 0).collect();
    if sizes.is_empty() {
        return vec![len];
    }
    let mut out = Vec::new();
    let mut left = len;
    for &n in sizes.iter().cycle() {
        if left == 0 {
            break;
        }
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}
