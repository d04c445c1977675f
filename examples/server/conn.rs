//! One client connection: a tokio task that owns the socket and, between requests, the
//! connection's [`Backend`] (no thread of its own: an idle or starting connection is a task
//! waiting for its socket).
//!
//! The loop, like a PostgreSQL backend's: send every byte of output first, then read one
//! buffer of input and give it to the state machine; during start-up the task answers the
//! events itself, after it the backend goes to tokio's blocking pool with the input
//! ([`Backend::work`]) and the task writes what it sends back as it comes. Nothing is read
//! while output waits or a request runs, so a client that sends without reading its results
//! stops being read, and the kernel's socket buffers push back on it; the connection stays
//! open. What one connection holds is bounded: one read buffer ([`STARTUP_READ`], then
//! [`SESSION_READ`] bytes), the output chunks in flight (see `backend.rs`), its mailbox (see
//! `notify.rs`) and what the state machine buffers of one message.
//!
//! A connection that has not finished start-up (TLS handshake and authentication included)
//! within `--startup-timeout` is closed without a word, as PostgreSQL does after its
//! `authentication_timeout`; unless it was accepted beyond `--max-connections` (it never
//! sent its start-up packet, which would have been refused): it gets FATAL 53300 first, so
//! that no connection over the cap is dropped without being told why. A connection whose mailbox
//! overflows is ended with FATAL 54000.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{interrupt, Backend, Next, OUT_CHUNKS};
use crate::notify::Mailbox;
use crate::tls::{Prefixed, Stream};
use crate::Shared;

/// The read buffer during start-up (start-up packets are at most 10,000 bytes).
pub(crate) const STARTUP_READ: usize = 8 * 1024;

/// The read buffer once authenticated.
pub(crate) const SESSION_READ: usize = 32 * 1024;

/// How long a connection being ended gets to send its last words.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Counts a connection from accept to close (see `Shared::open`).
pub(crate) struct Slot {
    shared: Arc<Shared>,
    /// Accepted while `--max-connections` were open already.
    beyond: bool,
}

impl Slot {
    /// Counts a connection just accepted.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        let beyond = open > shared.max_connections;
        Self { shared, beyond }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection ends before its state machine says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The socket failed or the client went away.
    Io,
    /// Start-up took longer than `--startup-timeout`.
    Timeout,
    /// The mailbox overflowed.
    Overflow,
}

enum Input {
    Bytes(usize),
    Eof,
    Wake,
}

struct Conn {
    shared: Arc<Shared>,
    stream: Stream,
    /// Away on the blocking pool while a request runs.
    backend: Option<Box<Backend>>,
    mailbox: Arc<Mailbox>,
    pending: VecDeque<Bytes>,
    buf: Vec<u8>,
    /// The end of start-up, until authenticated.
    deadline: Option<Instant>,
    /// Notifications to deliver when idle.
    woken: bool,
    eof: bool,
    pid: Option<i32>,
}

/// Waits until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until either side ends it.
pub(crate) async fn serve(socket: TcpStream, shared: Arc<Shared>, slot: Slot) {
    let _ = socket.set_nodelay(true);
    let mailbox = Arc::new(Mailbox::default());
    let mut c = Conn {
        backend: Some(Box::new(Backend::new(shared.clone(), mailbox.clone()))),
        stream: Stream::Plain(Prefixed::new(Bytes::new(), socket)),
        deadline: Some(Instant::now() + shared.startup_timeout),
        shared,
        mailbox,
        pending: VecDeque::new(),
        buf: vec![0; STARTUP_READ],
        woken: false,
        eof: false,
        pid: None,
    };
    let end = c.run().await;
    match end {
        Err(End::Overflow) => c.last_words().await,
        // Accepted beyond the cap, and no start-up packet came (that would have been
        // refused): say why, rather than drop it without a word.
        Err(End::Timeout) if slot.beyond => {
            c.pending.push_back(crate::too_many_clients());
            c.write_bounded().await;
        }
        _ => {}
    }
    if end != Err(End::Timeout) {
        let _ = tokio::time::timeout(LAST_WORDS, c.stream.shutdown()).await;
    }
    if let Some(b) = c.backend.take() {
        let _ = tokio::task::spawn_blocking(move || b.close()).await;
    }
    drop(slot);
}

impl Conn {
    fn backend(&mut self) -> Result<&mut Backend, End> {
        self.backend.as_deref_mut().ok_or(End::Io)
    }

    /// The connection's life; `Ok` when the state machine ended it.
    async fn run(&mut self) -> Result<(), End> {
        let mut next = Next::Read;
        loop {
            next = match next {
                Next::Close => {
                    self.send().await?;
                    return Ok(());
                }
                Next::Tls { buffered, direct } => {
                    self.send().await?;
                    self.start_tls(buffered, direct).await?
                }
                Next::Work => {
                    if self.job().await? {
                        Next::Read
                    } else {
                        Next::Close
                    }
                }
                Next::Read => {
                    self.send().await?;
                    self.read().await?
                }
            };
        }
    }

    /// Delivers notifications if woken, else reads once and gives the bytes to the machine.
    async fn read(&mut self) -> Result<Next, End> {
        if self.woken {
            self.woken = false;
            return Ok(if self.backend()?.wake() {
                Next::Read
            } else {
                Next::Close
            });
        }
        if self.eof {
            return Ok(Next::Close);
        }
        match self.input().await? {
            Input::Bytes(n) => {
                let data = &self.buf[..n];
                if let Some(b) = self.backend.as_deref_mut() {
                    b.wire.receive(data);
                }
            }
            Input::Eof => {
                self.eof = true;
                self.backend()?.wire.receive_eof();
            }
            Input::Wake => {
                self.woken = true;
                return Ok(Next::Read);
            }
        }
        self.step()
    }

    /// What the state machine needs after an input.
    fn step(&mut self) -> Result<Next, End> {
        let b = self.backend()?;
        let next = b.startup();
        let authenticated = b.is_authenticated();
        if authenticated && self.deadline.is_some() {
            self.deadline = None;
            self.buf = vec![0; SESSION_READ];
        }
        Ok(next)
    }

    /// Reads once, or wakes up for notifications.
    async fn input(&mut self) -> Result<Input, End> {
        tokio::select! {
            r = self.stream.read(&mut self.buf) => Ok(match r {
                Ok(n) if n > 0 => Input::Bytes(n),
                _ => Input::Eof,
            }),
            () = until(self.deadline) => Err(End::Timeout),
            () = self.mailbox.woken() => {
                if self.mailbox.overflowed() {
                    Err(End::Overflow)
                } else {
                    Ok(Input::Wake)
                }
            }
        }
    }

    /// Sends every byte the state machine queued (the backend is here).
    async fn send(&mut self) -> Result<(), End> {
        if let Some(b) = self.backend.as_deref_mut() {
            while let Some(bytes) = b.wire.poll_transmit() {
                self.pending.push_back(bytes);
            }
        }
        self.write_pending().await
    }

    /// Writes the pending output, watching the deadline and the mailbox.
    async fn write_pending(&mut self) -> Result<(), End> {
        while let Some(front) = self.pending.front_mut() {
            tokio::select! {
                r = self.stream.write(&front[..]) => match r {
                    Ok(n) if n > 0 => {
                        front.advance(n);
                        if front.is_empty() {
                            self.pending.pop_front();
                        }
                    }
                    _ => return Err(End::Io),
                },
                () = until(self.deadline) => return Err(End::Timeout),
                () = self.mailbox.woken() => {
                    if self.mailbox.overflowed() {
                        return Err(End::Overflow);
                    }
                    self.woken = true;
                }
            }
        }
        tokio::select! {
            r = self.stream.flush() => r.map_err(|_| End::Io),
            () = until(self.deadline) => Err(End::Timeout),
        }
    }

    /// The TLS handshake, within the start-up deadline.
    async fn start_tls(&mut self, buffered: Bytes, direct: bool) -> Result<Next, End> {
        let (Some(tls), Some(plain)) = (&self.shared.tls, self.stream.take_plain(buffered)) else {
            return Err(End::Io);
        };
        self.stream = tokio::select! {
            r = tls.accept(plain, direct) => r.map_err(|_| End::Io)?,
            () = until(self.deadline) => return Err(End::Timeout),
        };
        let end_point = tls.end_point.clone();
        if self.backend()?.wire.tls_established(end_point).is_err() {
            return Ok(Next::Close);
        }
        self.step()
    }

    /// Runs [`Backend::work`] on the blocking pool, writing its output as it comes; `false`
    /// when the backend ends the connection.
    async fn job(&mut self) -> Result<bool, End> {
        let mut backend = self.backend.take().ok_or(End::Io)?;
        let (tx, mut rx) = mpsc::channel(OUT_CHUNKS);
        backend.attach(Some(tx));
        let job = tokio::task::spawn_blocking(move || {
            let go = backend.work();
            backend.attach(None);
            (backend, go)
        });
        let mut failed = None;
        loop {
            tokio::select! {
                chunk = rx.recv() => {
                    let Some(chunk) = chunk else { break };
                    if failed.is_some() {
                        continue;
                    }
                    self.pending.push_back(chunk);
                    if let Err(e) = self.write_pending().await {
                        failed = Some(e);
                        // The backend stops at its next output; a statement that sends
                        // nothing is interrupted.
                        rx.close();
                        if let Some(pid) = self.pid {
                            interrupt(&self.shared, pid);
                        }
                    }
                }
                () = self.mailbox.woken(), if failed.is_none() => {
                    if self.mailbox.overflowed() {
                        failed = Some(End::Overflow);
                        rx.close();
                        if let Some(pid) = self.pid {
                            interrupt(&self.shared, pid);
                        }
                    } else {
                        self.woken = true;
                    }
                }
            }
        }
        let (mut backend, go) = job.await.map_err(|_| End::Io)?;
        self.pid = backend.pid();
        // Idle now: the machine's empty buffers go until the next request.
        backend.wire.release_buffers();
        self.backend = Some(backend);
        match failed {
            Some(e) => Err(e),
            None => Ok(go),
        }
    }

    /// After an overflow: the FATAL, if the client takes it within [`LAST_WORDS`].
    async fn last_words(&mut self) {
        let Some(b) = self.backend.as_deref_mut() else {
            return;
        };
        b.overflowed();
        while let Some(bytes) = b.wire.poll_transmit() {
            self.pending.push_back(bytes);
        }
        self.write_bounded().await;
    }

    /// Writes the pending output if the client takes it within [`LAST_WORDS`].
    async fn write_bounded(&mut self) {
        let stream = &mut self.stream;
        let pending = &mut self.pending;
        let _ = tokio::time::timeout(LAST_WORDS, async move {
            for bytes in pending.iter() {
                stream.write_all(bytes).await?;
            }
            stream.flush().await
        })
        .await;
    }
}
