//! Matching backend responses to the requests that caused them.
//!
//! Every command that the backend answers is queued here in the order it was sent. The backend
//! answers strictly in order, so the request at the front of the queue owns each response. Two
//! rules of PostgreSQL's `postgres.c` shape the bookkeeping:
//!
//! - After an error in an extended-query message, the backend discards every message until the
//!   next Sync (`ignore_till_sync`). The requests it discards are reported as skipped.
//! - A simple Query, a FunctionCall and a Sync each end with ReadyForQuery.
//! - During COPY FROM STDIN the backend ignores Sync: the Syncs queued behind the COPY are sent
//!   again when it ends ([`Pipeline::resend_ignored_syncs`]).

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::codec::Encode;
use crate::message::frontend::FrontendMessage;

/// Identifies a request sent through [`Client`](crate::Client). Every response event names the
/// request it answers. Ids increase by one per request, starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

pub(crate) use crate::protocol::Request as Kind;

/// A request waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) id: RequestId,
    pub(crate) kind: Kind,
    /// An Execute sent right after a Describe of the same portal: that Describe's answer
    /// announces its rows (see `columns.rs`).
    pub(crate) described: bool,
}

/// The queue of requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    next_id: u64,
    queue: VecDeque<Pending>,
    /// The backend is discarding messages until Sync, and no Sync has been sent since.
    discarding: bool,
}

impl Pipeline {
    /// Allocates an id for a new request.
    pub(crate) fn allocate(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Records a request just sent. Returns `false` when the backend is known to discard it
    /// (an extended-query error is pending and no Sync has been sent since): the caller reports
    /// it as skipped at once.
    pub(crate) fn push(&mut self, p: Pending) -> bool {
        if self.discarding && p.kind.skipped_after_error() {
            return false;
        }
        if p.kind == Kind::Sync {
            self.discarding = false;
        }
        self.queue.push_back(p);
        true
    }

    /// The request the next response belongs to.
    pub(crate) fn front(&self) -> Option<Pending> {
        self.queue.front().copied()
    }

    /// Removes the front request: it has been answered.
    pub(crate) fn pop(&mut self) -> Option<Pending> {
        self.queue.pop_front()
    }

    /// After an error in an extended-query request (already popped): removes every request the
    /// backend will now discard, up to the next Sync, and returns their ids.
    pub(crate) fn discard_until_sync(&mut self, out: &mut Vec<RequestId>) {
        while let Some(p) = self.queue.front() {
            if p.kind == Kind::Sync {
                return;
            }
            out.push(p.id);
            self.queue.pop_front();
        }
        self.discarding = true;
    }

    /// The number of Syncs queued right behind the front request (before any other request).
    pub(crate) fn syncs_behind_front(&self) -> usize {
        self.queue
            .iter()
            .skip(1)
            .take_while(|p| p.kind == Kind::Sync)
            .count()
    }

    /// Sends again the Syncs that the backend ignored during COPY FROM STDIN, once the client's
    /// data stream is over (CopyDone or CopyFail sent, or the backend's error received).
    ///
    /// Drivers send Parse/Bind/Execute/Sync before they know that the statement is a COPY, and
    /// the backend ignores Sync (and Flush) during COPY FROM STDIN, so every Sync queued right
    /// behind the request that started the COPY was swallowed; without them the backend would
    /// never send the ReadyForQuery they wait for. Sent again after the copy, each is answered
    /// as the application expects. libpq does the same for its one Sync: it sends a Sync after
    /// CopyDone or CopyFail when the COPY came from an extended-query Execute.
    pub(crate) fn resend_ignored_syncs(&self, out: &mut BytesMut) {
        for _ in 0..self.syncs_behind_front() {
            FrontendMessage::Sync.encode(out);
        }
    }

    /// The number of requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The number of requests in flight that end with ReadyForQuery.
    pub(crate) fn sync_points(&self) -> usize {
        self.queue
            .iter()
            .filter(|p| p.kind.ends_with_ready())
            .count()
    }

    /// Releases the queue's memory when it is empty (an idle connection keeps no buffer).
    pub(crate) fn shrink(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: RequestId, kind: Kind) -> Pending {
        Pending {
            id,
            kind,
            described: false,
        }
    }

    #[test]
    fn error_discards_until_sync_and_later_requests() {
        let mut p = Pipeline::default();
        let ids: Vec<_> = [
            Kind::Parse,
            Kind::Bind,
            Kind::Execute,
            Kind::Sync,
            Kind::Parse,
        ]
        .into_iter()
        .map(|k| {
            let id = p.allocate();
            assert!(p.push(pending(id, k)));
            id
        })
        .collect();
        assert_eq!(p.pop().unwrap().id, ids[0]);
        let mut skipped = Vec::new();
        p.discard_until_sync(&mut skipped);
        assert_eq!(skipped, [ids[1], ids[2]]);
        assert_eq!(p.front().unwrap().id, ids[3]);
        assert_eq!(p.sync_points(), 1);

        // An error with no Sync behind it: later requests are discarded until one is sent.
        let mut p = Pipeline::default();
        let a = p.allocate();
        p.push(pending(a, Kind::Parse));
        p.pop();
        p.discard_until_sync(&mut skipped);
        let b = p.allocate();
        assert!(!p.push(pending(b, Kind::Bind)));
        let c = p.allocate();
        assert!(p.push(pending(c, Kind::Sync)));
        let d = p.allocate();
        assert!(p.push(pending(d, Kind::Parse)));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn syncs_right_behind_the_front_are_sent_again() {
        let mut p = Pipeline::default();
        for k in [
            Kind::Execute,
            Kind::Sync,
            Kind::Sync,
            Kind::Query,
            Kind::Sync,
        ] {
            let id = p.allocate();
            p.push(pending(id, k));
        }
        assert_eq!(p.syncs_behind_front(), 2);
        let mut out = BytesMut::new();
        p.resend_ignored_syncs(&mut out);
        assert_eq!(&out[..], b"S\0\0\0\x04S\0\0\0\x04");
        p.pop();
        assert_eq!(
            p.syncs_behind_front(),
            1,
            "the front Sync is not behind itself"
        );
        p.pop();
        p.pop();
        assert_eq!(p.syncs_behind_front(), 1);
        p.pop();
        assert_eq!(p.syncs_behind_front(), 0);
    }
}
