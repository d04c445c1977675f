//! The two ends of a connection, plain or TLS, as a reading half and a writing half that can
//! wait at the same time (a proxy must read one side while the other side's writes are
//! pending, or the two servers' buffers fill and both wait forever).
//!
//! A plain socket is read and written through its readiness (`readable`, `try_read`): an idle
//! connection waits without a buffer. A TLS stream is split; its writes go to a small task
//! through a bounded channel, so that a pending write never blocks the reads.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

/// The reading half.
pub(crate) enum Reader {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<TlsIo>),
}

/// The writing half.
pub(crate) enum Writer {
    Plain(OwnedWriteHalf),
    Tls(mpsc::Sender<Bytes>),
}

/// Splits a plain socket.
pub(crate) fn plain(tcp: TcpStream) -> (Reader, Writer) {
    let (r, w) = tcp.into_split();
    (Reader::Plain(r), Writer::Plain(w))
}

/// Splits a TLS stream; its writes go through a task that ends when the [`Writer`] is dropped.
pub(crate) fn tls(stream: TlsIo) -> (Reader, Writer) {
    let (r, mut w) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(TLS_QUEUE);
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
    (Reader::Tls(r), Writer::Tls(tx))
}

impl Reader {
    /// Reads some bytes into `buf` (0: end of file). Cancel-safe: if the future is dropped,
    /// nothing was read.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(r) => loop {
                r.readable().await?;
                buf.reserve(READ_SIZE);
                match r.try_read_buf(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
            Self::Tls(r) => {
                buf.reserve(READ_SIZE);
                r.read_buf(buf).await
            }
        }
    }
}

impl Reader {
    /// Whether an idle connection is still sound: nothing to read (a server sends nothing
    /// unasked but a FATAL error before it closes), no end of file. Does not wait.
    pub(crate) fn idle_and_open(&mut self) -> bool {
        let mut probe = BytesMut::with_capacity(64);
        match self {
            Self::Plain(r) => matches!(
                r.try_read_buf(&mut probe),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
            Self::Tls(r) => {
                use futures_util::FutureExt;
                r.read_buf(&mut probe).now_or_never().is_none()
            }
        }
    }
}

impl Writer {
    /// Writes some of `buf`, removing what was written. Cancel-safe: if the future is dropped,
    /// nothing was written.
    pub(crate) async fn write(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Plain(w) => loop {
                w.writable().await?;
                match w.try_write(buf) {
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
        }
    }

    /// Writes all of `buf`.
    pub(crate) async fn write_all(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        while !buf.is_empty() {
            self.write(buf).await?;
        }
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed")
}

/// Reads from `reader` if there is one; otherwise never completes (a `select!` branch that is
/// off).
pub(crate) async fn read_opt(reader: Option<&mut Reader>, buf: &mut BytesMut) -> io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Writes to `writer` if there is one; otherwise never completes.
pub(crate) async fn write_opt(writer: Option<&mut Writer>, buf: &mut BytesMut) -> io::Result<()> {
    match writer {
        Some(w) => w.write(buf).await,
        None => std::future::pending().await,
    }
}
