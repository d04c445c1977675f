//! Idle clients parked off the runtime.
//!
//! A client that has sent nothing for [`PARK_AFTER`] and holds nothing (no upstream
//! connection, no bytes waiting) costs the runtime a task and a socket registration, more than
//! its session itself. Such a session (plain connections only: a TLS stream keeps its writer
//! task) is handed to one thread that waits on all parked sockets with one `epoll` set (mio)
//! and gives each back to the runtime, as a new task, when its socket becomes readable (bytes
//! or end of file). A parked client costs a [`Quiet`] (its session with the `Server` suspended,
//! `pgproto::SuspendedServer`: about 200 bytes where an active session takes 550) and a slot
//! here.
//!
//! Nothing is unbounded: a session is in the hand-over list or in the slots at most once, so
//! both hold at most as many entries as there are clients.
//!
//! How long a session has been idle is told by one [`IdleClock`] for all of them, not by a
//! timer per wait: a busy client goes idle once per transaction, and a timer of its own (armed,
//! then dropped a few hundred microseconds later) cost the run loop about 3,000 instructions
//! and a system call (the runtime's wake-up) per transaction.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker as TaskWaker;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::session::{self, Quiet};

/// How long a session must be idle before it is parked, at most; at least one [`TICK`] less
/// (the resolution of the [`IdleClock`]). A busy client (its next request follows the last
/// answer at once) never waits this long; for one that does, the move (two `epoll_ctl` calls
/// and a task) costs microseconds, a small fraction of the wait. Short, so that few sessions
/// are between parked and active at any time: each holds a task until it parks.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(10);

/// The period of the [`IdleClock`].
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The clock idle sessions wait on: it ticks every [`TICK`] while some session waits, and wakes
/// each session whose wait has lasted [`PARK_AFTER`] (or one tick less: a wait is due at the
/// second tick after it began).
///
/// A session says when it goes idle ([`IdleClock::wait_from`]) and when it is active again
/// ([`IdleWait::end`]); a wait that ended before it was due is dropped at the tick that finds it
/// (no wake). The list holds one entry per wait that began within the last [`PARK_AFTER`]: at
/// most a few per client.
#[derive(Default)]
pub(crate) struct IdleClock {
    /// Ticks so far.
    now: AtomicU64,
    waits: Mutex<Vec<Due>>,
    /// The ticking task waits here while no session waits.
    started: tokio::sync::Notify,
}

/// A wait the clock will end.
struct Due {
    at: u64,
    wait: Arc<AtomicU64>,
    /// The value of `wait` while this wait lasts.
    number: u64,
    waker: TaskWaker,
}

/// One session's waits: a counter that moves on whenever a wait begins or ends (so that the
/// clock can tell whether the wait it holds still lasts).
#[derive(Default)]
pub(crate) struct IdleWait(Arc<AtomicU64>);

impl IdleWait {
    /// The wait is over (the client sent something): the clock will not wake it.
    pub(crate) fn end(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A wait under way: [`IdleClock::due`] polls it.
pub(crate) struct Waiting {
    at: u64,
    number: u64,
    registered: bool,
}

impl IdleClock {
    /// A session begins to wait now.
    pub(crate) fn wait_from(&self, wait: &IdleWait) -> Waiting {
        let ticks = PARK_AFTER.as_nanos().div_ceil(TICK.as_nanos()) as u64;
        Waiting {
            at: self.now.load(Ordering::Relaxed) + ticks,
            number: wait.0.fetch_add(1, Ordering::Relaxed) + 1,
            registered: false,
        }
    }

    /// Whether the wait has lasted [`PARK_AFTER`] (give or take a tick); if not, `waker` is
    /// woken when it has (unless the wait ends first).
    pub(crate) fn due(&self, waiting: &mut Waiting, wait: &IdleWait, waker: &TaskWaker) -> bool {
        if self.now.load(Ordering::Relaxed) >= waiting.at {
            return true;
        }
        if !waiting.registered {
            waiting.registered = true;
            let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
            if waits.is_empty() {
                self.started.notify_one();
            }
            waits.push(Due {
                at: waiting.at,
                wait: wait.0.clone(),
                number: waiting.number,
                waker: waker.clone(),
            });
        }
        false
    }

    /// Ticks while some session waits (a task for the life of the proxy).
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let idle = self
                .waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
            if idle {
                self.started.notified().await;
            }
            crate::timer::sleep(TICK).await;
            let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
            self.waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|d| {
                    if d.at > now {
                        return true;
                    }
                    if d.wait.load(Ordering::Relaxed) == d.number {
                        d.waker.wake_by_ref();
                    }
                    false
                });
        }
    }
}

/// The token of the waker; a slot `i` has token `i + 1`.
const WAKE: Token = Token(0);

/// A session waiting in the parking thread, with its socket.
struct Parked {
    session: Box<Quiet>,
    tcp: TcpStream,
}

/// The hand to the parking thread.
pub(crate) struct Parking {
    incoming: Arc<Mutex<Vec<Parked>>>,
    waker: Waker,
}

impl Parking {
    /// Starts the parking thread; parked sessions go back to the runtime of `runtime`.
    pub(crate) fn start(runtime: tokio::runtime::Handle) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        let incoming = Arc::new(Mutex::new(Vec::new()));
        let list = incoming.clone();
        std::thread::Builder::new()
            .name("park".into())
            .spawn(move || run(poll, &list, &runtime))?;
        Ok(Self { incoming, waker })
    }

    /// Parks a session whose socket has been taken from the runtime. If the parking thread
    /// cannot be woken, the session goes back to the runtime at once.
    pub(crate) fn park(&self, session: Box<Quiet>, tcp: TcpStream) {
        self.incoming
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Parked { session, tcp });
        if self.waker.wake().is_err() {
            let parked: Vec<Parked> =
                std::mem::take(&mut *self.incoming.lock().unwrap_or_else(PoisonError::into_inner));
            for p in parked {
                tokio::spawn(session::resume(p.session, p.tcp));
            }
        }
    }
}

/// The parking thread: registers what is handed over, and hands back what becomes readable.
fn run(mut poll: Poll, incoming: &Mutex<Vec<Parked>>, runtime: &tokio::runtime::Handle) {
    let mut events = Events::with_capacity(256);
    let mut slots: Vec<Option<Parked>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("proxy: parking: {e}");
            // Every parked session goes back to the runtime; none is parked again.
            for p in slots.drain(..).flatten() {
                runtime.spawn(session::resume(p.session, p.tcp));
            }
            return;
        }
        for event in &events {
            let Some(i) = event.token().0.checked_sub(1) else {
                continue;
            };
            if let Some(p) = slots.get_mut(i).and_then(Option::take) {
                let _ = poll
                    .registry()
                    .deregister(&mut SourceFd(&p.tcp.as_raw_fd()));
                free.push(i);
                runtime.spawn(session::resume(p.session, p.tcp));
            }
        }
        let arrived = std::mem::take(&mut *incoming.lock().unwrap_or_else(PoisonError::into_inner));
        for p in arrived {
            let i = free.pop().unwrap_or_else(|| {
                slots.push(None);
                slots.len() - 1
            });
            let fd = p.tcp.as_raw_fd();
            match poll
                .registry()
                .register(&mut SourceFd(&fd), Token(i + 1), Interest::READABLE)
            {
                Ok(()) => slots[i] = Some(p),
                Err(_) => {
                    free.push(i);
                    runtime.spawn(session::resume(p.session, p.tcp));
                }
            }
        }
    }
}
