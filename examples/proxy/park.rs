//! Idle clients parked off the runtime.
//!
//! A client that has sent nothing for [`PARK_AFTER`] and holds nothing (no upstream
//! connection, no bytes waiting) costs the runtime a task and a socket registration, more than
//! its session itself. Such a session (plain connections only: a TLS stream keeps its writer
//! task) is handed to one thread that waits on all parked sockets with one `epoll` set (mio)
//! and gives each back to the runtime, as a new task, when its socket becomes readable (bytes
//! or end of file). A parked client costs its boxed [`Session`] and a slot here.
//!
//! Nothing is unbounded: a session is in the hand-over list or in the slots at most once, so
//! both hold at most as many entries as there are clients.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::session::{self, Session};

/// How long a session must be idle before it is parked. A busy client (its next request
/// follows the last answer at once) never waits this long; for one that does, the move (two
/// `epoll_ctl` calls and a task) costs microseconds, a small fraction of the wait. Short, so that
/// few sessions are between parked and active at any time: each holds a task until it parks.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(10);

/// The token of the waker; a slot `i` has token `i + 1`.
const WAKE: Token = Token(0);

/// A session waiting in the parking thread, with its socket.
struct Parked {
    session: Box<Session>,
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
    pub(crate) fn park(&self, session: Box<Session>, tcp: TcpStream) {
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
