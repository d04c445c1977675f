//! One client connection: a tokio task that moves bytes between the socket and a backend
//! thread, and the backend thread that drives `pgproto::Server`.
//!
//! The run loop, on the backend thread: take one input (bytes, end of input, TLS ready, a
//! notification), give it to the state machine, answer every event it hands out (one request at
//! a time), then send every byte it queued to the socket task. Encryption requests are answered
//! here too: the socket task does the TLS handshake (the state machine has checked that no
//! plaintext byte is buffered) and reports the certificate hash back for SCRAM channel binding.
//!
//! Both queues between the two are bounded ([`INPUT_QUEUE`], [`OUTPUT_QUEUE`]): the socket task
//! reads from the client only while the backend's input queue has room, and the backend thread
//! blocks while the socket task's output queue is full. So a client that sends without reading
//! its results stops being read (as a PostgreSQL backend blocked in a write), instead of making
//! the server buffer without limit.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use pgproto::{FrontendMessage, Server, ServerEvent, StartupMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, OwnedPermit, Receiver, Sender};

use crate::session::Session;
use crate::tls::{Prefixed, Stream};
use crate::{CancelTarget, Shared};

/// Inputs (reads of up to 64 KiB, end of file, wake-ups) queued for a backend thread at most.
pub(crate) const INPUT_QUEUE: usize = 16;

/// Outputs (what the state machine queued after one input, TLS start) queued for a socket task
/// at most.
pub(crate) const OUTPUT_QUEUE: usize = 16;

/// A NOTIFY on its way to a listening backend.
#[derive(Debug, Clone)]
pub(crate) struct Notification {
    /// The notifying backend.
    pub(crate) pid: i32,
    /// The channel.
    pub(crate) channel: String,
    /// The payload.
    pub(crate) payload: String,
}

/// What the backend thread receives.
#[derive(Debug)]
pub(crate) enum Input {
    /// Bytes from the client.
    Bytes(Vec<u8>),
    /// The client closed its side.
    Eof,
    /// The TLS handshake finished; the tls-server-end-point data.
    Tls(Option<Vec<u8>>),
    /// A notification from another backend is queued.
    Wake,
    /// The socket is gone.
    Hangup,
}

/// What the socket task receives.
#[derive(Debug)]
pub(crate) enum Output {
    /// Bytes for the client.
    Bytes(Bytes),
    /// Send `reply` (the `S` answering SSLRequest, or nothing for direct TLS), then run the TLS
    /// handshake, reading `buffered` first.
    StartTls {
        reply: Bytes,
        buffered: Bytes,
        direct: bool,
    },
}

/// Serves one connection until either side ends it.
pub(crate) async fn serve(socket: TcpStream, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let mut server = Server::new(shared.config.clone());
    if let Some(trace) = &shared.trace {
        server.set_tracer(trace.tracer());
    }
    let backend = Backend {
        shared: shared.clone(),
        server,
        inbox: in_tx.clone(),
        out: out_tx,
        startup: None,
        session: None,
    };
    let spawned = std::thread::Builder::new()
        .name("pg-backend".into())
        .spawn(move || backend.run(in_rx));
    if spawned.is_err() {
        return;
    }
    let mut stream = Stream::Plain(Prefixed::new(Bytes::new(), socket));
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    // Room in the backend's input queue, reserved before reading: no room, no reading.
    let mut room: Option<OwnedPermit<Input>> = None;
    loop {
        tokio::select! {
            reserved = in_tx.clone().reserve_owned(), if room.is_none() && !eof => match reserved {
                Ok(permit) => room = Some(permit),
                // The backend thread is gone: stop reading, but still write out what it
                // queued before it went (a FATAL ErrorResponse, say) until its queue closes.
                Err(_) => eof = true,
            },
            read = stream.read(&mut buf), if room.is_some() && !eof => {
                let Some(permit) = room.take() else { break };
                match read {
                    Ok(n) if n > 0 => {
                        permit.send(Input::Bytes(buf[..n].to_vec()));
                    }
                    _ => {
                        eof = true;
                        permit.send(Input::Eof);
                    }
                }
            }
            out = out_rx.recv() => {
                let Some(out) = out else { break };
                if write(&mut stream, out, &mut out_rx, &shared, &in_tx).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
    // Unblock a backend waiting for room in the output queue, then tell it.
    drop(out_rx);
    drop(room);
    let _ = in_tx.send(Input::Hangup).await;
}

/// Writes `first` and whatever else is ready, then flushes.
async fn write(
    stream: &mut Stream,
    first: Output,
    rx: &mut Receiver<Output>,
    shared: &Shared,
    inbox: &Sender<Input>,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(out) = next.take() {
        match out {
            Output::Bytes(b) => stream.write_all(&b).await?,
            Output::StartTls {
                reply,
                buffered,
                direct,
            } => {
                stream.write_all(&reply).await?;
                stream.flush().await?;
                let (Some(tls), Some(plain)) = (&shared.tls, stream.take_plain(buffered)) else {
                    return Err(std::io::ErrorKind::Unsupported.into());
                };
                *stream = tls.accept(plain, direct).await?;
                let _ = inbox.send(Input::Tls(tls.end_point.clone())).await;
            }
        }
        next = rx.try_recv().ok();
    }
    stream.flush().await
}

/// The backend thread's state.
struct Backend {
    shared: Arc<Shared>,
    server: Server,
    inbox: Sender<Input>,
    out: Sender<Output>,
    startup: Option<StartupMessage>,
    session: Option<Session>,
}

impl Backend {
    /// The run loop: one input, every event it gives, every byte queued. This function and
    /// [`Backend::drain`] are the only places that deal with the state machine's events.
    fn run(mut self, mut rx: Receiver<Input>) {
        while let Some(input) = rx.blocking_recv() {
            let go = match input {
                Input::Bytes(b) => {
                    self.server.receive(&b);
                    true
                }
                Input::Eof => {
                    self.server.receive_eof();
                    true
                }
                Input::Tls(end_point) => self.server.tls_established(end_point).is_ok(),
                Input::Wake => match &mut self.session {
                    Some(s) => s.wake(&mut self.server).is_ok(),
                    None => true,
                },
                Input::Hangup => false,
            };
            let go = go && self.drain();
            self.flush();
            if !go {
                break;
            }
        }
        if let Some(s) = self.session.take() {
            s.close();
        }
    }

    /// Answers every event; `false` ends the connection.
    fn drain(&mut self) -> bool {
        loop {
            match self.server.poll_event() {
                Ok(Some(event)) => {
                    let event = event.into_owned();
                    if !self.event(event) {
                        return false;
                    }
                }
                Ok(None) => return true,
                // A FATAL ErrorResponse is queued; flush it and close.
                Err(_) => return false,
            }
        }
    }

    fn flush(&mut self) {
        while let Some(b) = self.server.poll_transmit() {
            // Blocks while the socket task has OUTPUT_QUEUE outputs unsent.
            let _ = self.out.blocking_send(Output::Bytes(b));
        }
    }

    fn take_output(&mut self) -> Bytes {
        let mut all = Vec::new();
        while let Some(b) = self.server.poll_transmit() {
            all.extend_from_slice(&b);
        }
        Bytes::from(all)
    }

    fn event(&mut self, event: ServerEvent) -> bool {
        let tls = self.shared.tls.is_some();
        match event {
            ServerEvent::SslRequest => {
                if self.server.accept_ssl(tls).is_err() {
                    return false;
                }
                // Bytes that came with the SSLRequest were not encrypted: the state machine has
                // then failed the connection (CVE-2021-23214). Send the `S` and close, without a
                // handshake, as PostgreSQL (whose handshake fails on those bytes) does.
                if tls && self.server.poll_event().is_err() {
                    return false;
                }
                if tls {
                    let reply = self.take_output();
                    let start = Output::StartTls {
                        reply,
                        buffered: Bytes::new(),
                        direct: false,
                    };
                    return self.out.blocking_send(start).is_ok();
                }
                true
            }
            ServerEvent::DirectTls => {
                if !tls {
                    return false;
                }
                let buffered = self.server.take_buffered();
                let start = Output::StartTls {
                    reply: Bytes::new(),
                    buffered,
                    direct: true,
                };
                self.out.blocking_send(start).is_ok()
            }
            ServerEvent::GssEncRequest => self.server.accept_gssenc(false).is_ok(),
            ServerEvent::CancelRequest(c) => {
                self.shared.cancel(c.process_id(), c.secret_key());
                false
            }
            ServerEvent::Startup { message, .. } => {
                let auth = self.shared.auth_for(self.server.user());
                self.startup = Some(message);
                self.server.authenticate(auth).is_ok()
            }
            ServerEvent::Authenticated => self.start_session(),
            ServerEvent::Message(m) => self.message(m),
            ServerEvent::AuthResponse(_) | ServerEvent::Terminate | ServerEvent::Closed => false,
            _ => false,
        }
    }

    fn start_session(&mut self) -> bool {
        let Some(key) = self.server.backend_key().cloned() else {
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
                let _ = self.server.fatal(&f);
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
        let user = self.server.user().to_string();
        match Session::new(
            db,
            pid,
            self.shared.clone(),
            self.inbox.clone(),
            flag,
            &user,
            self.startup.take(),
        ) {
            Ok(s) => {
                self.session = Some(s);
                true
            }
            Err(e) => {
                let f = crate::values::fields(
                    "FATAL",
                    "58000",
                    &format!("cannot set up the session: {e}"),
                );
                let _ = self.server.fatal(&f);
                false
            }
        }
    }

    fn message(&mut self, m: FrontendMessage) -> bool {
        let Some(session) = &mut self.session else {
            return false;
        };
        match session.message(&mut self.server, m) {
            Ok(()) => true,
            Err(e) => {
                // A bug in this example, not the client's fault: say so and close.
                eprintln!("server: backend {}: {e}", session.pid);
                let f = crate::values::fields("FATAL", "XX000", &format!("internal error: {e}"));
                let _ = self.server.fatal(&f);
                false
            }
        }
    }
}
