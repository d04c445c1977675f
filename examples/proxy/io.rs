//! A connection, plain or TLS, read and written through `poll_*` methods, so that one run
//! loop can wait on reading and writing both sides at once (a proxy must read one side while
//! the other side's writes are pending, or the two servers' buffers fill and both wait
//! forever) without building a future per wait.
//!
//! A plain socket is read and written through its readiness (`poll_read_ready`, `try_read`):
//! an idle connection waits without a buffer. A TLS stream is polled as one object: its
//! reading and writing register their own wakers, so neither blocks the other.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};

use bytes::{Buf, BytesMut};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// How much one read takes at most.
pub(crate) const READ_SIZE: usize = 32 * 1024;

/// A TLS stream of either side, boxed.
pub(crate) type TlsIo = Box<dyn AsyncReadWrite>;

/// What a TLS stream is.
pub(crate) trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}

/// A connection.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls {
        stream: TlsIo,
        /// Bytes were written since the last flush: rustls may hold records the socket did
        /// not take yet.
        unflushed: bool,
    },
    /// No socket (it was taken, see [`Conn::take_plain`]): reads end of file, writes fail.
    Closed,
}

impl Conn {
    /// A plain socket.
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self::Plain(tcp)
    }

    /// A TLS stream.
    pub(crate) fn tls(stream: TlsIo) -> Self {
        Self::Tls {
            stream,
            unflushed: false,
        }
    }

    /// A plain socket back from outside the runtime ([`Conn::Closed`] if it cannot be
    /// registered again).
    pub(crate) fn from_std(tcp: std::net::TcpStream) -> Self {
        TcpStream::from_std(tcp).map_or(Self::Closed, Self::Plain)
    }

    /// Takes a plain socket out of the runtime (to be parked), leaving [`Conn::Closed`];
    /// `None` for a TLS stream, which stays.
    pub(crate) fn take_plain(&mut self) -> Option<std::net::TcpStream> {
        match std::mem::replace(self, Self::Closed) {
            Self::Plain(tcp) => tcp.into_std().ok(),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Waits until a plain socket is readable (or has ended); a TLS stream returns at once
    /// (its reads wait in [`Conn::poll_read`]). Reads nothing. A `readable()` future rather
    /// than `poll_read_ready`: measured, the idle clients parked after this wait cost about
    /// 200 bytes more each with the latter (1,000 idle clients, RSS).
    pub(crate) async fn ready(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.readable().await,
            Self::Tls { .. } | Self::Closed => Ok(()),
        }
    }

    /// Reads some bytes into `buf` (0: end of file).
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(tcp) => loop {
                ready!(tcp.poll_read_ready(cx))?;
                buf.reserve(READ_SIZE);
                // A read shorter than the room given drained the socket: its readiness is
                // cleared here (as a would-block read would have cleared it), which saves the
                // next wait a read that can only fail. Tokio ignores the clearing if the socket
                // became readable again meanwhile.
                let room = buf.capacity() - buf.len();
                let mut got = 0;
                let read = tcp.try_io(Interest::READABLE, || {
                    let n = tcp.try_read_buf(buf)?;
                    got = n;
                    if n > 0 && n < room {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match read {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
                        return Poll::Ready(Ok(got))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
            Self::Tls { stream, .. } => {
                // `read_buf` fills the buffer's spare room as it is (no zeroing); its future
                // reads nothing unless it completes, so one per poll is as good as one kept.
                buf.reserve(READ_SIZE);
                std::pin::pin!(stream.read_buf(buf)).poll(cx)
            }
            Self::Closed => Poll::Ready(Ok(0)),
        }
    }

    /// Writes as much of `buf` as the connection takes now, removing it from `buf`; ready once
    /// something was written (or, for TLS, flushed), pending when nothing could be.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(tcp) => {
                let mut wrote = false;
                while !buf.is_empty() {
                    match tcp.try_write(buf) {
                        Ok(n) => {
                            buf.advance(n);
                            wrote = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if wrote {
                                break;
                            }
                            ready!(tcp.poll_write_ready(cx))?;
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Poll::Ready(Ok(()))
            }
            Self::Tls { stream, unflushed } => {
                let mut wrote = false;
                while !buf.is_empty() {
                    match Pin::new(&mut *stream).poll_write(cx, buf) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed())),
                        Poll::Ready(Ok(n)) => {
                            buf.advance(n);
                            wrote = true;
                            *unflushed = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending if wrote => break,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                if *unflushed {
                    match Pin::new(&mut *stream).poll_flush(cx) {
                        Poll::Ready(Ok(())) => *unflushed = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending if wrote => {}
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Poll::Ready(Ok(()))
            }
            Self::Closed => Poll::Ready(Err(closed())),
        }
    }

    /// Whether bytes written are still held back (a TLS stream whose socket did not take all
    /// of its records yet): [`Conn::poll_write`] with an empty buffer flushes them.
    pub(crate) fn unflushed(&self) -> bool {
        matches!(
            self,
            Self::Tls {
                unflushed: true,
                ..
            }
        )
    }

    /// Reads some bytes into `buf` (0: end of file).
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes all of `buf` (and flushes a TLS stream).
    pub(crate) async fn write_all(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        while !buf.is_empty() || self.unflushed() {
            poll_fn(|cx| self.poll_write(cx, buf)).await?;
        }
        Ok(())
    }

    /// Writes what can be written of `buf` now, without waiting (the common case: the socket
    /// has room), removing it from `buf`; what is left waits for the run loop.
    pub(crate) fn write_now(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        if buf.is_empty() && !self.unflushed() {
            return Ok(());
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_write(&mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
    }

    /// Closes the connection cleanly: a TLS stream sends close_notify (within a second).
    pub(crate) async fn shutdown(&mut self) {
        if let Self::Tls { stream, .. } = self {
            let _ =
                crate::timer::timeout(std::time::Duration::from_secs(1), stream.shutdown()).await;
        }
    }

    /// Whether an idle connection is still sound: nothing to read (a server sends nothing
    /// unasked but a FATAL error before it closes), no end of file. Does not wait. A plain
    /// socket the runtime has seen no event for is taken as sound without a system call.
    pub(crate) fn idle_and_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self {
            Self::Plain(tcp) => {
                if tcp.poll_read_ready(&mut cx).is_pending() {
                    return true;
                }
                let mut probe = [0u8; 64];
                matches!(
                    tcp.try_read(&mut probe),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock
                )
            }
            Self::Tls { stream, .. } => {
                use futures_util::FutureExt;
                let mut probe = [0u8; 64];
                stream.read(&mut probe).now_or_never().is_none()
            }
            Self::Closed => false,
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed")
}

/// The read of a session's client, for [`Wakes`].
pub(crate) const CLIENT: u8 = 1;
/// The read of a session's upstream connection, for [`Wakes`].
pub(crate) const UPSTREAM: u8 = 2;

/// A session's read wakers, one per connection, so that its run loop knows which connection
/// woke it and polls again only that one. Polling a plain socket that is not readable costs the
/// runtime a lock and a waker comparison to register the same waker again; without this, each
/// turn of the run loop paid that for the connection that did not wake it (measured: about two
/// polls in three found nothing).
///
/// A read is *armed* once a poll of it was pending with its waker: the socket holds that waker
/// until the socket becomes readable, which fires it. An armed read that has not fired is not
/// polled. Whatever else may register a waker of its own for a socket's reads (the pool's check
/// of an idle connection, an exchange of the proxy's own) must be followed by
/// [`Wakes::disarm`]; writes always register the task's own waker.
pub(crate) struct Wakes {
    state: Arc<WakeState>,
    client: Waker,
    upstream: Waker,
    armed: u8,
}

struct WakeState {
    /// The reads whose waker fired since the run loop last looked.
    fired: AtomicU8,
    /// The session's task.
    task: AtomicWaker,
}

/// The waker of one read.
struct ReadWaker {
    read: u8,
    state: Arc<WakeState>,
}

impl Wake for ReadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.state.fired.fetch_or(self.read, Ordering::AcqRel);
        self.state.task.wake();
    }
}

impl Default for Wakes {
    fn default() -> Self {
        let state = Arc::new(WakeState {
            fired: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        let waker = |read| {
            Waker::from(Arc::new(ReadWaker {
                read,
                state: state.clone(),
            }))
        };
        Self {
            client: waker(CLIENT),
            upstream: waker(UPSTREAM),
            state,
            armed: 0,
        }
    }
}

impl Wakes {
    /// At the start of a turn: the task to wake is `cx`'s, and the reads that fired are polled
    /// again.
    pub(crate) fn begin(&mut self, cx: &Context<'_>) {
        self.state.task.register(cx.waker());
        self.armed &= !self.state.fired.swap(0, Ordering::AcqRel);
    }

    /// Reads from `conn` (the connection of `read`, [`CLIENT`] or [`UPSTREAM`]) as
    /// [`Conn::poll_read`], or says pending at once if that read is armed and has not fired.
    /// A TLS stream is always polled, with the task's own waker: its reads may wait on writes.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        read: u8,
        conn: &mut Conn,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if !matches!(conn, Conn::Plain(_)) {
            return conn.poll_read(cx, buf);
        }
        if self.armed & read != 0 {
            return Poll::Pending;
        }
        let waker = if read == CLIENT {
            &self.client
        } else {
            &self.upstream
        };
        let polled = conn.poll_read(&mut Context::from_waker(waker), buf);
        if polled.is_pending() {
            self.armed |= read;
        }
        polled
    }

    /// `read`'s socket may hold another waker now (or is another socket): it is polled next
    /// turn.
    pub(crate) fn disarm(&mut self, read: u8) {
        self.armed &= !read;
    }
}
