//! A client's log-in: encryption (TLS as asked, or direct TLS), the StartupMessage,
//! authentication, then the upstream server's parameters and a cancel key of the proxy's own.

use std::sync::Arc;

use pgproto::{ErrorFields, Server, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::io::Conn;
use crate::params;
use crate::server_tls::Prefixed;
use crate::session::Session;
use crate::Shared;

/// The socket during log-in.
enum LoginStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
    Gone,
}

impl LoginStream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(b).await,
            Self::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Self::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(b).await,
            Self::Tls(s) => s.read(b).await,
            Self::Gone => Ok(0),
        }
    }

    /// Closes the connection cleanly (in TLS, with close_notify, which libpq waits for after
    /// a cancel request).
    async fn shutdown(&mut self) {
        let _ = match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
            Self::Gone => Ok(()),
        };
    }

    /// The TLS handshake, reading `prefix` first (the start of a direct TLS handshake that the
    /// state machine received).
    async fn start_tls(
        &mut self,
        tls: &crate::server_tls::Tls,
        prefix: bytes::Bytes,
        direct: bool,
    ) -> Option<()> {
        let Self::Plain(tcp) = std::mem::replace(self, Self::Gone) else {
            return None;
        };
        match tls.accept(Prefixed::new(prefix, tcp), direct).await {
            Ok(crate::server_tls::Stream::Tls(t)) => {
                *self = Self::Tls(t);
                Some(())
            }
            _ => None,
        }
    }
}

/// Writes what the state machine queued.
async fn flush(server: &mut Server, stream: &mut LoginStream) -> Option<()> {
    while let Some(b) = server.poll_transmit() {
        stream.write_all(&b).await.ok()?;
    }
    Some(())
}

/// The log-in: encryption, the StartupMessage, authentication, the upstream server's parameters
/// and the cancel key. `None` when the connection ended there (a cancel request, a failed
/// log-in, a client that left).
pub(crate) async fn login(tcp: TcpStream, shared: &Arc<Shared>) -> Option<Session> {
    let mut server = Server::new(shared.config.clone());
    let mut stream = LoginStream::Plain(tcp);
    let mut buf = vec![0u8; 8192];
    let mut database = String::new();
    let mut wanted = Vec::new();
    loop {
        flush(&mut server, &mut stream).await?;
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            server.receive_eof();
        } else {
            server.receive(&buf[..n]);
        }
        loop {
            let event = match server.poll_event() {
                Ok(Some(e)) => e.into_owned(),
                Ok(None) => break,
                Err(_) => {
                    // A FATAL error is queued (unless the client must get nothing).
                    let _ = flush(&mut server, &mut stream).await;
                    return None;
                }
            };
            match event {
                ServerEvent::SslRequest => {
                    let accept = shared.tls.is_some();
                    server.accept_ssl(accept).ok()?;
                    flush(&mut server, &mut stream).await?;
                    if let Some(tls) = &shared.tls {
                        stream.start_tls(tls, bytes::Bytes::new(), false).await?;
                        server.tls_established(tls.end_point.clone()).ok()?;
                    }
                }
                ServerEvent::DirectTls => {
                    let tls = shared.tls.as_ref()?;
                    let prefix = server.take_buffered();
                    stream.start_tls(tls, prefix, true).await?;
                    server.tls_established(tls.end_point.clone()).ok()?;
                }
                ServerEvent::GssEncRequest => server.accept_gssenc(false).ok()?,
                ServerEvent::CancelRequest(c) => {
                    shared.cancel(&c).await;
                    stream.shutdown().await;
                    return None;
                }
                ServerEvent::Startup { message, .. } => {
                    let user = String::from_utf8_lossy(message.param("user").unwrap_or_default());
                    database = message
                        .param("database")
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| user.clone().into_owned());
                    for (name, value) in message.params() {
                        if let Some(name) = params::tracked(name) {
                            params::record(&mut wanted, name, &String::from_utf8_lossy(value));
                        }
                    }
                    server.authenticate(shared.auth_for(&user)).ok()?;
                }
                ServerEvent::Authenticated => {
                    return finish_login(server, stream, shared, &database, wanted).await;
                }
                _ => return None,
            }
        }
        if n == 0 {
            return None;
        }
    }
}

/// After AuthenticationOk: the database check (FATAL 3D000 as PostgreSQL), the upstream
/// server's parameters, the cancel key, ReadyForQuery.
async fn finish_login(
    mut server: Server,
    mut stream: LoginStream,
    shared: &Arc<Shared>,
    database: &str,
    wanted: Vec<(String, String)>,
) -> Option<Session> {
    if database != shared.database {
        let text = format!("database \"{database}\" does not exist");
        server
            .reject(&ErrorFields::simple("FATAL", "3D000", &text))
            .ok()?;
        let _ = flush(&mut server, &mut stream).await;
        return None;
    }
    let params = match shared.pool.params().await {
        Ok(p) => p,
        Err(e) => {
            let text = format!("could not connect to the upstream server: {e}");
            server
                .reject(&ErrorFields::simple("FATAL", "08006", &text))
                .ok()?;
            let _ = flush(&mut server, &mut stream).await;
            return None;
        }
    };
    for (name, value) in &params {
        // The upstream user's own session values are the proxy's business, not the client's;
        // the tracked parameters the client asked for are reported with its values, which its
        // upstream connections will be given.
        if name == "session_authorization" || name == "is_superuser" {
            continue;
        }
        let value = wanted
            .iter()
            .find(|(n, _)| n == name)
            .map_or(value.as_str(), |(_, v)| v.as_str());
        server.parameter_status(name, value).ok()?;
    }
    server
        .parameter_status("session_authorization", server.user().to_string().as_str())
        .ok()?;
    let Some(key) = shared.issue_key(server.protocol_version()) else {
        let _ = server.reject(&ErrorFields::simple("FATAL", "XX000", "no cancel key"));
        let _ = flush(&mut server, &mut stream).await;
        return None;
    };
    server.finish_startup(Some(key)).ok()?;
    flush(&mut server, &mut stream).await?;
    // An idle session keeps no buffer.
    server.release_buffers();
    let conn = match stream {
        LoginStream::Plain(tcp) => Conn::plain(tcp),
        LoginStream::Tls(tls) => Conn::tls(tls),
        LoginStream::Gone => return None,
    };
    Some(Session::new(shared.clone(), server, conn, wanted))
}
