//! LISTEN/NOTIFY between connections: every connection has a [`Mailbox`] that other connections
//! post their notifications to, and that the connection empties when it is idle or about to
//! send ReadyForQuery.
//!
//! A mailbox holds at most [`MAILBOX_BYTES`] bytes and [`MAILBOX_COUNT`] notifications. Posting
//! never waits: when a listener does not read its socket (or runs one statement for so long
//! that the notifications meant for it pile up), its mailbox overflows, what it held is dropped,
//! and the connection is ended with FATAL 54000 (see `conn.rs`): a listener either gets every
//! notification or learns, by losing its connection, that it lost some. PostgreSQL keeps one
//! queue of up to 8 GB for all listeners instead, and refuses NOTIFY once it is full.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// The bytes of notifications (payload, channel and a fixed overhead each) a mailbox holds
/// at most.
pub(crate) const MAILBOX_BYTES: usize = 1024 * 1024;

/// The notifications a mailbox holds at most.
pub(crate) const MAILBOX_COUNT: usize = 10_000;

/// The bytes of NOTIFYs one transaction may queue (published at commit), at most: beyond it,
/// NOTIFY fails with 54000 as PostgreSQL's does when its queue is full.
pub(crate) const TRANSACTION_BYTES: usize = 16 * 1024 * 1024;

/// A NOTIFY on its way to a listening connection.
#[derive(Debug, Clone)]
pub(crate) struct Notification {
    /// The notifying backend.
    pub(crate) pid: i32,
    /// The channel.
    pub(crate) channel: String,
    /// The payload.
    pub(crate) payload: String,
}

/// The memory a notification is counted for.
pub(crate) fn size(channel: &str, payload: &str) -> usize {
    64 + channel.len() + payload.len()
}

#[derive(Debug, Default)]
struct Queue {
    notes: VecDeque<Notification>,
    bytes: usize,
    overflowed: bool,
}

/// One connection's incoming notifications, bounded.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
}

impl Mailbox {
    /// Queues `n` and wakes the connection; when the mailbox is full, drops what it holds and
    /// marks it overflowed instead. Never waits for the listener.
    pub(crate) fn post(&self, n: Notification) {
        {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if q.overflowed {
                return;
            }
            let bytes = size(&n.channel, &n.payload);
            if q.bytes + bytes > MAILBOX_BYTES || q.notes.len() >= MAILBOX_COUNT {
                q.overflowed = true;
                q.notes = VecDeque::new();
                q.bytes = 0;
            } else {
                q.bytes += bytes;
                q.notes.push_back(n);
            }
        }
        self.wake.notify_one();
    }

    /// Takes every queued notification.
    pub(crate) fn take(&self) -> VecDeque<Notification> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.bytes = 0;
        std::mem::take(&mut q.notes)
    }

    /// Whether notifications were dropped because the mailbox was full.
    pub(crate) fn overflowed(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .overflowed
    }

    /// Resolves after the next [`Mailbox::post`] (at once if one came since the last wait).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(payload: &str) -> Notification {
        Notification {
            pid: 1,
            channel: "c".into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn a_full_mailbox_overflows_instead_of_growing() {
        let m = Mailbox::default();
        let payload = "x".repeat(7_900);
        let fits = MAILBOX_BYTES / size("c", &payload);
        for _ in 0..fits {
            m.post(note(&payload));
        }
        assert!(!m.overflowed());
        m.post(note(&payload));
        assert!(m.overflowed());
        assert!(m.take().is_empty(), "what it held is dropped");
        m.post(note("late"));
        assert!(
            m.take().is_empty(),
            "an overflowed mailbox takes nothing more"
        );
    }

    #[test]
    fn taking_makes_room_again() {
        let m = Mailbox::default();
        for i in 0..MAILBOX_COUNT {
            m.post(note(&i.to_string()));
        }
        assert_eq!(m.take().len(), MAILBOX_COUNT);
        m.post(note("again"));
        assert!(!m.overflowed());
        assert_eq!(m.take().len(), 1);
    }
}
