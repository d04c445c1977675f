//! How long plain sessions have waited idle on the runtime, so that [`crate::park`] can take
//! those idle for [`PARK_AFTER`]: one sweeper task for all of them, rather than a timer per
//! wait.
//!
//! A session of transaction mode goes idle after every transaction (its connection goes back
//! to the pool, and it waits for its client). A timer per wait cost, measured, about a tenth of
//! the proxy's own instructions per transaction (the timer wheel, the clock) and most of the time
//! a write to the driver's eventfd (a new timer earlier than the driver's next wake-up). Here a
//! wait costs a slot taken and given back under a lock; the sweeper ticks every half
//! [`PARK_AFTER`] while any session waits, and wakes those that have waited two ticks, so a
//! session parks after between one and two halves of [`PARK_AFTER`] idle (or a little more on a
//! busy runtime).
//!
//! Bounded: a slot per session waiting at once, reused; the slots never outnumber the clients.

use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::park::PARK_AFTER;

/// The sessions waiting idle.
#[derive(Default)]
pub(crate) struct IdleWatch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots [`Slot::Waiting`].
    waiting: usize,
    /// Sweeps so far.
    tick: u64,
    /// The sweeper, while nobody waits.
    sweeper: Option<Waker>,
}

#[derive(Default)]
enum Slot {
    #[default]
    Free,
    /// A session waiting since sweep `since`, to be woken with `waker` once it has waited long
    /// enough.
    Waiting { waker: Waker, since: u64 },
    /// It has waited long enough: it is to park.
    Expired,
}

impl IdleWatch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session's wait (nothing is taken until it is polled).
    pub(crate) fn ticket(&self) -> Ticket<'_> {
        Ticket {
            watch: self,
            slot: None,
        }
    }

    /// The sweeper: runs as long as the runtime.
    pub(crate) async fn sweep(&self) {
        let mut due = Vec::new();
        loop {
            poll_fn(|cx| {
                let mut state = self.lock();
                if state.waiting > 0 {
                    Poll::Ready(())
                } else {
                    state.sweeper = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            tokio::time::sleep(PARK_AFTER / 2).await;
            {
                let mut state = self.lock();
                state.tick += 1;
                let tick = state.tick;
                let mut expired = 0;
                for slot in &mut state.slots {
                    if matches!(slot, Slot::Waiting { since, .. } if *since + 2 <= tick) {
                        if let Slot::Waiting { waker, .. } = std::mem::replace(slot, Slot::Expired)
                        {
                            due.push(waker);
                            expired += 1;
                        }
                    }
                }
                state.waiting -= expired;
            }
            // Woken outside the lock: a woken session may take it at once (another thread).
            for waker in due.drain(..) {
                waker.wake();
            }
        }
    }
}

/// One session's idle wait: its slot, given back when dropped.
pub(crate) struct Ticket<'a> {
    watch: &'a IdleWatch,
    slot: Option<usize>,
}

impl Ticket<'_> {
    /// Whether the session has waited idle long enough to park; if not, `cx`'s task is woken
    /// when it has.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let mut state = self.watch.lock();
        let state = &mut *state;
        match self.slot {
            None => {
                let waiting = Slot::Waiting {
                    waker: cx.waker().clone(),
                    since: state.tick,
                };
                let i = match state.free.pop() {
                    Some(i) => {
                        state.slots[i] = waiting;
                        i
                    }
                    None => {
                        state.slots.push(waiting);
                        state.slots.len() - 1
                    }
                };
                self.slot = Some(i);
                state.waiting += 1;
                if let Some(sweeper) = state.sweeper.take() {
                    sweeper.wake();
                }
                false
            }
            Some(i) => match &mut state.slots[i] {
                Slot::Waiting { waker, .. } => {
                    waker.clone_from(cx.waker());
                    false
                }
                Slot::Expired => true,
                Slot::Free => false,
            },
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let Some(i) = self.slot else {
            return;
        };
        let mut state = self.watch.lock();
        if matches!(std::mem::take(&mut state.slots[i]), Slot::Waiting { .. }) {
            state.waiting -= 1;
        }
        state.free.push(i);
    }
}
