//! TLS: a self-signed certificate made at start, the rustls configuration (ring, ALPN
//! `postgresql`), and the connection's byte stream, plain or encrypted, with bytes already read
//! put back in front (the start of a direct TLS handshake that the state machine buffered).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// What TLS connections need: the acceptor and the channel-binding data of the certificate.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    /// The certificate's tls-server-end-point data (`None`: no SCRAM-SHA-256-PLUS).
    pub(crate) end_point: Option<Vec<u8>>,
}

impl Tls {
    /// A fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub(crate) fn self_signed() -> Result<Self, Box<dyn std::error::Error>> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names)?;
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        // The digest follows the certificate's signature algorithm (RFC 5929).
        let end_point = pgproto::auth::tls_server_end_point(&cert).ok();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            end_point,
        })
    }

    /// Runs the handshake on `stream`. With `direct` (no SSLRequest came first) the client
    /// must have negotiated ALPN `postgresql`, as PostgreSQL 17 requires.
    pub(crate) async fn accept(&self, stream: Prefixed, direct: bool) -> io::Result<Stream> {
        let tls = self.acceptor.accept(stream).await?;
        let alpn = tls.get_ref().1.alpn_protocol();
        if direct && alpn != Some(b"postgresql".as_slice()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "direct TLS connection without ALPN \"postgresql\"",
            ));
        }
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// A TCP stream with bytes to hand out before the socket's own.
#[derive(Debug)]
pub(crate) struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    /// `inner`, read after `prefix`.
    pub(crate) fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection: plain until a TLS handshake, encrypted after.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(Prefixed),
    /// TLS over TCP.
    Tls(Box<TlsStream<Prefixed>>),
    /// Between the two (during the handshake), or after a failed one.
    Gone,
}

impl Stream {
    /// The plain stream, for the handshake, leaving `Gone`; `bytes` go in front of it.
    pub(crate) fn take_plain(&mut self, bytes: Bytes) -> Option<Prefixed> {
        match std::mem::replace(self, Self::Gone) {
            Self::Plain(p) => {
                let mut rest = p.prefix;
                let prefix = if rest.is_empty() {
                    bytes
                } else {
                    let mut v = bytes.to_vec();
                    v.extend_from_slice(&rest.split_off(0));
                    Bytes::from(v)
                };
                Some(Prefixed::new(prefix, p.inner))
            }
            other => {
                *self = other;
                None
            }
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(p) => Pin::new(p).poll_read(cx, buf),
            Self::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Self::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(p) => Pin::new(p).poll_write(cx, buf),
            Self::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Self::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(p) => Pin::new(p).poll_flush(cx),
            Self::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Self::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(p) => Pin::new(p).poll_shutdown(cx),
            Self::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Self::Gone => Poll::Ready(Ok(())),
        }
    }
}
