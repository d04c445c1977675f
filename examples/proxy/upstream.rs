//! One connection to the upstream server: its start-up through `pgproto::Client` (TLS as
//! `sslmode` says, authentication, the server's parameters and cancel key), then what the
//! query phase needs: the halves of the socket, a `Relay` for what the server sends, the
//! `Correlator` of requests in flight and the statements prepared on it.

use std::sync::Arc;
use std::time::Duration;

use pgproto::pooler::{cancel_packet, Correlator, StatementNote, UpstreamStatements};
use pgproto::{BackendKeyData, Client, ClientEvent, Limits, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client_tls::TlsSetup;
use crate::conninfo::ConnInfo;
use crate::io::Conn;
use crate::quick::Batches;

/// A connection to the upstream server, past its start-up.
pub(crate) struct Upstream {
    pub(crate) conn: Conn,
    /// What the server sends, cut into frames.
    pub(crate) relay: Relay,
    /// The requests in flight on it, sent through the `Server` and the statement rewriting.
    pub(crate) correlator: Correlator<StatementNote>,
    /// The requests of the quick path in flight on it (see [`crate::quick`]).
    pub(crate) batches: Batches,
    /// The transaction status of its last ReadyForQuery (`I` once connected).
    pub(crate) status: u8,
    /// The statements prepared on it.
    pub(crate) statements: UpstreamStatements,
    /// Its cancel key (shared with the cancel routes while it serves a client: handing it over
    /// each time a connection serves a client costs no allocation).
    pub(crate) key: Option<Arc<BackendKeyData>>,
    /// The parameters it reported, in order.
    pub(crate) params: Vec<(String, String)>,
    /// Set when it failed or was left in an unknown state: it is closed rather than reused.
    pub(crate) broken: bool,
}

/// Where upstream connections go, and how.
pub(crate) struct Target {
    pub(crate) info: ConnInfo,
    pub(crate) tls: Option<TlsSetup>,
    /// The most statements one connection keeps prepared.
    pub(crate) max_prepared: usize,
}

impl Target {
    async fn tcp(&self) -> Result<TcpStream, String> {
        let addr = (self.info.host.as_str(), self.info.port);
        let tcp = crate::timer::timeout(self.info.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                format!(
                    "timeout connecting to {}:{}",
                    self.info.host, self.info.port
                )
            })?
            .map_err(|e| {
                format!(
                    "cannot connect to {}:{}: {e}",
                    self.info.host, self.info.port
                )
            })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>), String> {
        let setup = self
            .tls
            .as_ref()
            .ok_or("the server asked for TLS without a TLS setup")?;
        let connector = TlsConnector::from(setup.rustls_config());
        let tls = connector
            .connect(setup.server_name(), tcp)
            .await
            .map_err(|e| format!("TLS handshake with the upstream server failed: {e}"))?;
        let end_point = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| pgproto::auth::tls_server_end_point(c).ok());
        Ok((tls, end_point))
    }

    /// Opens a connection and runs its start-up to ReadyForQuery.
    pub(crate) async fn connect(&self) -> Result<Upstream, String> {
        crate::timer::timeout(self.info.connect_timeout, self.connect_inner())
            .await
            .map_err(|_| "timeout during the upstream server's start-up".to_string())?
    }

    async fn connect_inner(&self) -> Result<Upstream, String> {
        let mut client =
            Client::new(self.info.client_config()).map_err(|e| format!("upstream: {e}"))?;
        let tcp = self.tcp().await?;
        let mut stream = Stream::Plain(tcp);
        if self.info.direct_tls {
            let Stream::Plain(tcp) = stream else {
                unreachable!()
            };
            let (tls, end_point) = self.handshake(tcp).await?;
            stream = Stream::Tls(Box::new(tls));
            client
                .tls_established(end_point)
                .map_err(|e| e.to_string())?;
        }
        let mut params = Vec::new();
        let mut key = None;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(b) = client.poll_transmit() {
                stream.write_all(&b).await.map_err(upstream_io)?;
            }
            stream.flush().await.map_err(upstream_io)?;
            let n = stream.read(&mut buf).await.map_err(upstream_io)?;
            if n == 0 {
                client.receive_eof();
            } else {
                client.receive(&buf[..n]);
            }
            let mut tls_now = false;
            let mut connected = false;
            while let Some(event) = client
                .poll_event()
                .map_err(|e| format!("upstream server: {e}"))?
            {
                match event {
                    ClientEvent::SslResponse { accepted: true } => tls_now = true,
                    ClientEvent::ParameterStatus(p) => {
                        let name = String::from_utf8_lossy(p.name()).into_owned();
                        let value = String::from_utf8_lossy(p.value()).into_owned();
                        params.retain(|(n, _)| *n != name);
                        params.push((name, value));
                    }
                    ClientEvent::BackendKeyData(k) => key = Some(Arc::new(k)),
                    ClientEvent::AuthenticationRequest(a) => {
                        return Err(format!("unsupported upstream authentication {a:?}"))
                    }
                    ClientEvent::Connected { .. } => connected = true,
                    _ => {}
                }
            }
            if tls_now {
                let Stream::Plain(tcp) = stream else {
                    return Err("TLS requested twice".into());
                };
                let (tls, end_point) = self.handshake(tcp).await?;
                stream = Stream::Tls(Box::new(tls));
                client
                    .tls_established(end_point)
                    .map_err(|e| e.to_string())?;
            }
            if connected {
                break;
            }
            if n == 0 {
                return Err("the upstream server closed the connection during start-up".into());
            }
        }
        crate::params::tracked_first(&mut params);
        let conn = match stream {
            Stream::Plain(tcp) => Conn::plain(tcp),
            Stream::Tls(tls) => Conn::tls(tls),
        };
        Ok(Upstream {
            conn,
            relay: Relay::backend(Limits::default()),
            correlator: Correlator::new(),
            batches: Batches::default(),
            status: b'I',
            statements: UpstreamStatements::new(self.max_prepared),
            key,
            params,
            broken: false,
        })
    }

    /// Sends a CancelRequest for `key` on a new connection (in TLS if `sslmode` wants it) and
    /// waits for the server to close it: by then the server has passed the cancel on.
    pub(crate) async fn cancel(&self, key: &BackendKeyData) -> Result<(), String> {
        let packet = cancel_packet(key);
        let tcp = self.tcp().await?;
        let mut stream = if self.info.direct_tls {
            Stream::Tls(Box::new(self.handshake(tcp).await?.0))
        } else if self.tls.is_some() {
            // SSLRequest first, as libpq sends a cancel.
            let mut tcp = tcp;
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .await
                .map_err(upstream_io)?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer).await.map_err(upstream_io)?;
            if answer[0] == b'S' {
                Stream::Tls(Box::new(self.handshake(tcp).await?.0))
            } else if self.info.tls_required() {
                return Err("the upstream server refused TLS for a cancel".into());
            } else {
                Stream::Plain(tcp)
            }
        } else {
            Stream::Plain(tcp)
        };
        stream.write_all(&packet).await.map_err(upstream_io)?;
        stream.flush().await.map_err(upstream_io)?;
        let mut rest = [0u8; 64];
        let _ = crate::timer::timeout(Duration::from_secs(5), stream.read(&mut rest)).await;
        Ok(())
    }
}

fn upstream_io(e: std::io::Error) -> String {
    format!("upstream server: {e}")
}

/// The socket during start-up.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(b).await,
            Self::Tls(s) => s.write_all(b).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush().await,
            Self::Tls(s) => s.flush().await,
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(b).await,
            Self::Tls(s) => s.read(b).await,
        }
    }
}

impl Upstream {
    /// Whether another session may use it: sound, nothing in flight, no transaction open, no
    /// answer that may still come unaccounted for (see `Batches::is_uncertain`).
    pub(crate) fn reusable(&self) -> bool {
        !self.broken && self.idle() && !self.batches.is_uncertain()
    }

    /// Whether nothing is in flight or half received and no transaction is open: the
    /// connection can serve another client. (After an error the `Server` forwarded, the server
    /// may skip what comes until a Sync: the session checks that itself.)
    pub(crate) fn idle(&self) -> bool {
        self.correlator.is_empty()
            && !self.correlator.in_frame()
            && self.batches.is_idle()
            && self.status == b'I'
            && !self.relay.in_frame()
            && self.relay.buffered_len() == 0
    }
}
