//! A connection, plain or TLS, whose reading and writing can wait at the same time (a proxy
//! must read one side while the other side's writes are pending, or the two servers' buffers
//! fill and both wait forever).
//!
//! A plain socket is read and written through its readiness (`readable`, `try_read`): an idle
//! connection waits without a buffer, and nothing is allocated to split it. A TLS stream is
//! split; its writes go to a small task through a bounded channel, so that a pending write
//! never blocks the reads.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How much one read takes at most.
pub(crate) const READ_SIZE: usize = 32 * 1024;

/// Writes queued for a TLS stream's writer task at most (each up to a high-water mark).
const TLS_QUEUE: usize = 2;

/// A TLS stream of either side, boxed.
pub(crate) type TlsIo = Box<dyn AsyncReadWrite>;

/// What a TLS stream is.
pub(crate) trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}

/// A connection.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls {
        reader: ReadHalf<TlsIo>,
        writer: mpsc::Sender<Bytes>,
    },
    /// No socket (it was taken, see [`Conn::take_plain`]): reads end of file, writes fail.
    Closed,
}

/// The reading side of a [`Conn`], borrowed.
pub(crate) enum ReadSide<'a> {
    Plain(&'a TcpStream),
    Tls(&'a mut ReadHalf<TlsIo>),
    Closed,
}

/// The writing side of a [`Conn`], borrowed.
pub(crate) enum WriteSide<'a> {
    Plain(&'a TcpStream),
    Tls(&'a mpsc::Sender<Bytes>),
    Closed,
}

impl Conn {
    /// A plain socket.
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self::Plain(tcp)
    }

    /// A TLS stream; its writes go through a task that ends when the connection is dropped.
    pub(crate) fn tls(stream: TlsIo) -> Self {
        let (reader, mut w) = tokio::io::split(stream);
        let (writer, mut rx) = mpsc::channel::<Bytes>(TLS_QUEUE);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if w.write_all(&b).await.is_err() {
                    return;
                }
                if rx.is_empty() && w.flush().await.is_err() {
                    return;
                }
            }
            let _ = w.shutdown().await;
        });
        Self::Tls { reader, writer }
    }

    /// Both sides, to wait on at once.
    pub(crate) fn sides(&mut self) -> (ReadSide<'_>, WriteSide<'_>) {
        match self {
            Self::Plain(tcp) => (ReadSide::Plain(tcp), WriteSide::Plain(tcp)),
            Self::Tls { reader, writer } => (ReadSide::Tls(reader), WriteSide::Tls(writer)),
            Self::Closed => (ReadSide::Closed, WriteSide::Closed),
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
    /// (its reads wait in [`ReadSide::read`]). Reads nothing.
    pub(crate) async fn ready(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.readable().await,
            Self::Tls { .. } | Self::Closed => Ok(()),
        }
    }

    /// Reads some bytes into `buf` (0: end of file).
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.sides().0.read(buf).await
    }

    /// Writes all of `buf`.
    pub(crate) async fn write_all(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        let mut w = self.sides().1;
        while !buf.is_empty() {
            w.write(buf).await?;
        }
        Ok(())
    }

    /// Whether an idle connection is still sound: nothing to read (a server sends nothing
    /// unasked but a FATAL error before it closes), no end of file. Does not wait.
    pub(crate) fn idle_and_open(&mut self) -> bool {
        let mut probe = BytesMut::with_capacity(64);
        match self {
            Self::Plain(tcp) => matches!(
                tcp.try_read_buf(&mut probe),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
            Self::Tls { reader, .. } => {
                use futures_util::FutureExt;
                reader.read_buf(&mut probe).now_or_never().is_none()
            }
            Self::Closed => false,
        }
    }
}

impl ReadSide<'_> {
    /// Reads some bytes into `buf` (0: end of file). Cancel-safe: if the future is dropped,
    /// nothing was read.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => loop {
                tcp.readable().await?;
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
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => return Ok(got),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
            Self::Tls(r) => {
                buf.reserve(READ_SIZE);
                r.read_buf(buf).await
            }
            Self::Closed => Ok(0),
        }
    }
}

impl WriteSide<'_> {
    /// Writes some of `buf`, removing what was written. Cancel-safe: if the future is dropped,
    /// nothing was written.
    pub(crate) async fn write(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => loop {
                tcp.writable().await?;
                match tcp.try_write(buf) {
                    Ok(n) => {
                        buf.advance(n);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
            Self::Tls(tx) => {
                let permit = tx.reserve().await.map_err(|_| closed())?;
                permit.send(buf.split().freeze());
                Ok(())
            }
            Self::Closed => Err(closed()),
        }
    }
}

impl WriteSide<'_> {
    /// Writes what can be written of `buf` now, without waiting (the common case: the socket
    /// has room), removing it from `buf`; what is left waits for the run loop.
    pub(crate) fn write_now(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => {
                while !buf.is_empty() {
                    match tcp.try_write(buf) {
                        Ok(n) => buf.advance(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Self::Tls(tx) => {
                if !buf.is_empty() {
                    match tx.try_reserve() {
                        Ok(permit) => permit.send(buf.split().freeze()),
                        Err(mpsc::error::TrySendError::Full(())) => {}
                        Err(mpsc::error::TrySendError::Closed(())) => return Err(closed()),
                    }
                }
                Ok(())
            }
            Self::Closed => Err(closed()),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed")
}

/// Reads from `side` if there is one; otherwise never completes (a `select!` branch that is
/// off).
pub(crate) async fn read_opt(side: Option<ReadSide<'_>>, buf: &mut BytesMut) -> io::Result<usize> {
    match side {
        Some(mut r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Writes to `side` if there is one; otherwise never completes.
pub(crate) async fn write_opt(side: Option<WriteSide<'_>>, buf: &mut BytesMut) -> io::Result<()> {
    match side {
        Some(mut w) => w.write(buf).await,
        None => std::future::pending().await,
    }
}
