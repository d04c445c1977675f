//! The connection core both roles share: the receive decoder, the output buffer, queued events,
//! the sticky error and end of input, with the plumbing around them (`receive`,
//! `poll_transmit`, `release_buffers`). [`Client`](crate::Client) and [`Server`](crate::Server)
//! each add only what is their own.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::decoder::{BackendDecoder, FrontendDecoder};
use crate::error::Error;
use crate::trace::{Direction, Tracer};

/// What the core needs of a decoder.
pub(crate) trait Receive {
    /// Who sends the bytes this decoder reads.
    const PEER: Direction;
    /// Appends received bytes.
    fn receive(&mut self, data: &[u8]);
    /// Frees the buffer's memory if it holds no undecoded bytes.
    fn release_buffer(&mut self);
}

impl Receive for BackendDecoder {
    const PEER: Direction = Direction::Backend;
    fn receive(&mut self, data: &[u8]) {
        Self::receive(self, data);
    }
    fn release_buffer(&mut self) {
        Self::release_buffer(self);
    }
}

impl Receive for FrontendDecoder {
    const PEER: Direction = Direction::Frontend;
    fn receive(&mut self, data: &[u8]) {
        Self::receive(self, data);
    }
    fn release_buffer(&mut self) {
        Self::release_buffer(self);
    }
}

/// The state every connection has, whatever its role.
#[derive(Debug)]
pub(crate) struct Core<D, E> {
    /// The peer's byte stream.
    pub(crate) decoder: D,
    /// Encoded messages not yet handed to the I/O layer.
    pub(crate) out: BytesMut,
    /// Events decided but not yet polled.
    pub(crate) events: VecDeque<E>,
    /// The error that ended the connection, returned by every later poll.
    pub(crate) error: Option<Box<Error>>,
    /// The peer closed the connection.
    pub(crate) eof: bool,
    /// The protocol trace, if the application asked for one: fed once per `receive` and once
    /// per `poll_transmit`, never per message, so that a connection without one pays a test of
    /// this field per call and nothing else.
    pub(crate) trace: Option<Box<Tracer>>,
}

impl<D: Receive, E> Core<D, E> {
    pub(crate) fn new(decoder: D) -> Self {
        Self {
            decoder,
            out: BytesMut::new(),
            events: VecDeque::new(),
            error: None,
            eof: false,
            trace: None,
        }
    }

    /// Buffers received bytes, unless the connection is over (`closed` or failed).
    #[inline]
    pub(crate) fn receive(&mut self, data: &[u8], closed: bool) {
        if self.error.is_none() && !closed {
            if let Some(t) = &mut self.trace {
                t.feed(D::PEER, data);
            }
            self.decoder.receive(data);
        }
    }

    /// The bytes to send, whole messages only; the buffer keeps its memory.
    #[inline]
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let bytes = self.out.split().freeze();
        if let Some(t) = &mut self.trace {
            t.feed(D::PEER.other(), &bytes);
        }
        Some(bytes)
    }

    /// Frees the memory of empty buffers and queues.
    pub(crate) fn release_buffers(&mut self) {
        self.decoder.release_buffer();
        if self.out.is_empty() {
            self.out = BytesMut::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        if let Some(t) = &mut self.trace {
            t.release_buffers();
        }
    }
}
