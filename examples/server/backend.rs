//! The connection's `pgproto::Server` state machine and its session, and the run loop that
//! answers the machine's events: [`Backend::startup`] on the connection's tokio task (start-up
//! needs no database), [`Backend::work`] on tokio's blocking pool while a request runs (SQLite
//! blocks), like a PostgreSQL backend process that only exists while it has work.
//!
//! Output leaves in pieces: [`Wire`] passes what the machine queued to the connection task
//! through a channel of [`OUT_CHUNKS`] chunks of about [`FLUSH_AT`] bytes, and waits when it is
//! full. So a client that does not read its results holds its request where it is (a statement
//! stops between two rows), as a PostgreSQL backend blocked in a write does, and the memory a
//! connection's unsent output takes is bounded.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use pgproto::{FrontendMessage, Server, ServerEvent, StartupMessage};
use tokio::sync::mpsc::Sender;

use crate::notify::Mailbox;
use crate::session::Session;
use crate::{CancelTarget, Shared};

/// The output queued in the state machine that is passed on to the socket at once (about).
pub(crate) const FLUSH_AT: usize = 32 * 1024;

/// Chunks of output waiting for the socket, at most, while a request runs.
pub(crate) const OUT_CHUNKS: usize = 4;

/// What a message is counted for when its size is not known.
const MESSAGE_ESTIMATE: usize = 64;

/// The state machine, and where its output goes while a request runs. Dereferences to the
/// [`Server`], so the session answers through it.
#[derive(Debug)]
pub(crate) struct Wire {
    server: Server,
    out: Option<Sender<Bytes>>,
    queued: usize,
    gone: bool,
}

impl Deref for Wire {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl DerefMut for Wire {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

impl Wire {
    /// Counts about `n` more bytes queued in the machine; passes the output on to the socket
    /// once [`FLUSH_AT`] are (waiting while [`OUT_CHUNKS`] chunks are unsent).
    pub(crate) fn queued(&mut self, n: usize) {
        self.queued += n;
        if self.queued >= FLUSH_AT {
            self.flush();
        }
    }

    /// Passes everything queued on to the socket, if a channel is attached (on the connection
    /// task, the task takes the output itself).
    pub(crate) fn flush(&mut self) {
        self.queued = 0;
        let Some(out) = &self.out else {
            return;
        };
        while let Some(b) = self.server.poll_transmit() {
            if self.gone || out.blocking_send(b).is_err() {
                self.gone = true;
            }
        }
    }

    /// Whether the socket is gone (nothing more can be sent).
    pub(crate) fn is_gone(&self) -> bool {
        self.gone
    }
}

/// What the connection task does next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send the output, then read.
    Read,
    /// Run [`Backend::work`] on the blocking pool.
    Work,
    /// Send the output (the `S` answering SSLRequest, if any), then run the TLS handshake
    /// with `buffered` in front of the socket's bytes.
    Tls { buffered: Bytes, direct: bool },
    /// Send the output, then close.
    Close,
}

/// A connection's state machine and session.
pub(crate) struct Backend {
    shared: Arc<Shared>,
    /// The state machine.
    pub(crate) wire: Wire,
    mailbox: Arc<Mailbox>,
    startup: Option<StartupMessage>,
    session: Option<Session>,
    /// Authenticated: the session starts at the next [`Backend::work`].
    authenticated: bool,
}

impl Backend {
    /// A connection waiting for the client's first packet.
    pub(crate) fn new(shared: Arc<Shared>, mailbox: Arc<Mailbox>) -> Self {
        let mut server = Server::new(shared.config.clone());
        if let Some(trace) = &shared.trace {
            server.set_tracer(trace.tracer());
        }
        Self {
            shared,
            wire: Wire {
                server,
                out: None,
                queued: 0,
                gone: false,
            },
            mailbox,
            startup: None,
            session: None,
            authenticated: false,
        }
    }

    /// Whether start-up is over.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated || self.session.is_some()
    }

    /// The session's process ID, once it runs.
    pub(crate) fn pid(&self) -> Option<i32> {
        self.session.as_ref().map(|s| s.pid)
    }

    /// Attaches (or detaches) the channel to the socket task.
    pub(crate) fn attach(&mut self, out: Option<Sender<Bytes>>) {
        self.wire.out = out;
        self.wire.gone = false;
        self.wire.queued = 0;
    }

    /// Start-up, on the connection task: answers events until the machine needs input, TLS,
    /// or the database (once authenticated, every input goes to [`Backend::work`]). This,
    /// [`Backend::drain`] and the TLS check in [`Backend::startup_event`] are the only places
    /// that poll the state machine.
    pub(crate) fn startup(&mut self) -> Next {
        loop {
            if self.is_authenticated() {
                return Next::Work;
            }
            let event = match self.wire.poll_event() {
                Ok(Some(e)) => e.into_owned(),
                Ok(None) => return Next::Read,
                // A FATAL ErrorResponse is queued: send it and close.
                Err(_) => return Next::Close,
            };
            if let Some(next) = self.startup_event(event) {
                return next;
            }
        }
    }

    /// One start-up event; `None` to go on.
    fn startup_event(&mut self, event: ServerEvent) -> Option<Next> {
        let tls = self.shared.tls.is_some();
        match event {
            ServerEvent::SslRequest => {
                if self.wire.accept_ssl(tls).is_err() {
                    return Some(Next::Close);
                }
                // Bytes that came with the SSLRequest were not encrypted: the state machine
                // has then failed the connection (CVE-2021-23214). Send the `S` and close,
                // without a handshake, as PostgreSQL (whose handshake fails on them) does.
                if tls && self.wire.poll_event().is_err() {
                    return Some(Next::Close);
                }
                tls.then_some(Next::Tls {
                    buffered: Bytes::new(),
                    direct: false,
                })
            }
            ServerEvent::DirectTls => {
                if !tls {
                    return Some(Next::Close);
                }
                let buffered = self.wire.take_buffered();
                Some(Next::Tls {
                    buffered,
                    direct: true,
                })
            }
            ServerEvent::GssEncRequest => self
                .wire
                .accept_gssenc(false)
                .is_err()
                .then_some(Next::Close),
            ServerEvent::CancelRequest(c) => {
                self.shared.cancel(c.process_id(), c.secret_key());
                Some(Next::Close)
            }
            ServerEvent::Startup { message, .. } => {
                // Connections still in start-up count: as PostgreSQL, the check comes after the
                // start-up packet, so that the client can read the answer.
                if self.shared.open() > self.shared.max_connections {
                    let f =
                        crate::values::fields("FATAL", "53300", "sorry, too many clients already");
                    let _ = self.wire.reject(&f);
                    return Some(Next::Close);
                }
                let auth = self.shared.auth_for(self.wire.user());
                self.startup = Some(message);
                self.wire.authenticate(auth).is_err().then_some(Next::Close)
            }
            ServerEvent::Authenticated => {
                self.authenticated = true;
                Some(Next::Work)
            }
            _ => Some(Next::Close),
        }
    }

    /// The session's work for the input given to the machine, on a blocking thread: starts
    /// the session first if authentication just succeeded, answers every event, and passes
    /// the output on. `false` ends the connection.
    pub(crate) fn work(&mut self) -> bool {
        if self.session.is_none() && !self.start_session() {
            self.wire.flush();
            return false;
        }
        if let Some(s) = &self.session {
            crate::functions::enter(&s.cancel);
        }
        let go = self.drain();
        self.wire.flush();
        go && !self.wire.is_gone()
    }

    /// Answers every event; `false` ends the connection.
    fn drain(&mut self) -> bool {
        loop {
            if self.wire.is_gone() {
                return false;
            }
            let event = match self.wire.poll_event() {
                Ok(Some(e)) => e.into_owned(),
                Ok(None) => return true,
                // A FATAL ErrorResponse is queued; flush it and close.
                Err(_) => return false,
            };
            self.wire.queued(MESSAGE_ESTIMATE);
            let go = match event {
                ServerEvent::Message(m) => self.message(m),
                // The machine answered a malformed message itself (ERROR 08P01): the error
                // aborts the transaction, as PostgreSQL's does.
                ServerEvent::Refused(_) => {
                    if let Some(session) = &mut self.session {
                        session.refused();
                    }
                    true
                }
                _ => false,
            };
            if !go {
                return false;
            }
        }
    }

    /// Notifications came: delivered now if the session is idle (on the connection task; no
    /// database work). `false` ends the connection.
    pub(crate) fn wake(&mut self) -> bool {
        match &mut self.session {
            Some(s) => s.wake(&mut self.wire).is_ok(),
            None => true,
        }
    }

    /// Ends the connection because its mailbox overflowed: a FATAL for the client, if it ever
    /// reads again.
    pub(crate) fn overflowed(&mut self) {
        let f = crate::values::fields(
            "FATAL",
            "54000",
            &format!(
                "too many notifications are waiting for this connection (over {} KiB): \
                 it does not read them",
                crate::notify::MAILBOX_BYTES >> 10
            ),
        );
        let _ = self.wire.fatal(&f);
    }

    /// Unregisters the session (cancel key, LISTENs) and closes its database connection.
    pub(crate) fn close(mut self) {
        if let Some(s) = self.session.take() {
            s.close();
        }
    }

    fn start_session(&mut self) -> bool {
        let Some(key) = self.wire.backend_key().cloned() else {
            return false;
        };
        let db = match self.shared.open_db() {
            Ok(db) => db,
            Err(e) => {
                let f = crate::values::fields(
                    "FATAL",
                    "58000",
                    &format!("cannot open the database: {e}"),
                );
                let _ = self.wire.fatal(&f);
                return false;
            }
        };
        let flag = Arc::new(AtomicBool::new(false));
        let pid = key.process_id();
        self.shared
            .cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                pid,
                CancelTarget {
                    key: key.secret_key().to_vec(),
                    flag: flag.clone(),
                    interrupt: db.get_interrupt_handle(),
                },
            );
        let user = self.wire.user().to_string();
        match Session::new(
            db,
            pid,
            self.shared.clone(),
            self.mailbox.clone(),
            flag,
            &user,
            self.startup.take(),
        ) {
            Ok(s) => {
                self.session = Some(s);
                true
            }
            Err(e) => {
                self.shared
                    .cancels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&pid);
                let f = crate::values::fields(
                    "FATAL",
                    "58000",
                    &format!("cannot set up the session: {e}"),
                );
                let _ = self.wire.fatal(&f);
                false
            }
        }
    }

    fn message(&mut self, m: FrontendMessage) -> bool {
        let Some(session) = &mut self.session else {
            return false;
        };
        match session.message(&mut self.wire, m) {
            Ok(()) => true,
            Err(e) => {
                // A bug in this example, not the client's fault: say so and close.
                eprintln!("server: backend {}: {e}", session.pid);
                let f = crate::values::fields("FATAL", "XX000", &format!("internal error: {e}"));
                let _ = self.wire.fatal(&f);
                false
            }
        }
    }
}

/// Interrupts what backend `pid` runs (its statement, a `pg_sleep`), as a cancel would.
pub(crate) fn interrupt(shared: &Shared, pid: i32) {
    let cancels = shared
        .cancels
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = cancels.get(&pid) {
        t.flag.store(true, Ordering::SeqCst);
        t.interrupt.interrupt();
    }
}
