//! TLS with rustls (ring): the client configuration with libpq's `sslmode` semantics for the
//! server's certificate, the handshake, and the byte stream, plain or encrypted.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned,
};

use super::conninfo::{ConnInfo, SslMode};
use super::results::DriverError;

/// The ALPN protocol name of PostgreSQL (required by direct TLS, sent always, as libpq 17+).
const ALPN: &[u8] = b"postgresql";

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Not at all (`prefer` and `require` without `sslrootcert`); handshake signatures still are.
    Nothing,
    /// The chain against the roots, not the host name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// A certificate verifier with libpq's `sslmode` semantics.
#[derive(Debug)]
struct PgVerifier {
    verify: Verify,
    roots: RootCertStore,
    /// The DER of every root, to accept a pinned self-signed server certificate (which webpki
    /// refuses as an end entity when it is marked as a CA, as `openssl req -x509` does).
    root_ders: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.verify == Verify::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let pinned = self
            .root_ders
            .iter()
            .any(|r| r.as_ref() == end_entity.as_ref());
        if !pinned {
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        if self.verify == Verify::Full {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a TLS handshake with the server needs.
#[derive(Debug, Clone)]
pub(crate) struct TlsSetup {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsSetup {
    /// The rustls configuration for `info`, or `None` when TLS is not wanted.
    pub(crate) fn new(info: &ConnInfo) -> Result<Option<Self>, DriverError> {
        if !info.tls_wanted() {
            return Ok(None);
        }
        let verify = match (info.sslmode, &info.sslrootcert) {
            (SslMode::VerifyFull, _) => Verify::Full,
            // As libpq: with a root certificate file, require (and prefer) verify the chain.
            (SslMode::VerifyCa, _) | (_, Some(_)) => Verify::Chain,
            _ => Verify::Nothing,
        };
        let mut roots = RootCertStore::empty();
        let mut root_ders = Vec::new();
        if verify != Verify::Nothing {
            let path = info.sslrootcert.as_deref().ok_or_else(|| {
                DriverError::Config(
                    "sslmode=verify-ca and verify-full need sslrootcert (a PEM file)".into(),
                )
            })?;
            if path == "system" {
                return Err(DriverError::Config(
                    "sslrootcert=system is not supported".into(),
                ));
            }
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| DriverError::Tls(format!("cannot read sslrootcert {path}: {e}")))?
            {
                let cert =
                    cert.map_err(|e| DriverError::Tls(format!("invalid sslrootcert {path}: {e}")))?;
                roots
                    .add(cert.clone())
                    .map_err(|e| DriverError::Tls(format!("invalid root certificate: {e}")))?;
                root_ders.push(cert);
            }
            if root_ders.is_empty() {
                return Err(DriverError::Tls(format!("no certificate in {path}")));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PgVerifier {
            verify,
            roots,
            root_ders,
            provider: provider.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DriverError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN.to_vec()];
        let server_name = ServerName::try_from(info.host.clone())
            .map_err(|e| DriverError::Config(format!("invalid host for TLS: {e}")))?;
        Ok(Some(Self {
            config: Arc::new(config),
            server_name,
        }))
    }

    /// The rustls configuration, for an asynchronous connector (the proxy example).
    #[allow(dead_code)] // used by the proxy example, which includes this file
    pub(crate) fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// The name the certificate is checked against (the proxy example).
    #[allow(dead_code)] // used by the proxy example, which includes this file
    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// Performs the handshake on `tcp`. With `direct`, the server must select ALPN
    /// `postgresql`.
    pub(crate) fn handshake(
        &self,
        mut tcp: TcpStream,
        direct: bool,
    ) -> Result<StreamOwned<ClientConnection, TcpStream>, DriverError> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| DriverError::Tls(e.to_string()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => DriverError::Timeout,
                _ => DriverError::Tls(format!("handshake failed: {e}")),
            })?;
        }
        if direct && conn.alpn_protocol() != Some(ALPN) {
            return Err(DriverError::Tls(
                "the server did not select ALPN \"postgresql\" for direct TLS".into(),
            ));
        }
        Ok(StreamOwned::new(conn, tcp))
    }
}

/// The connection to the server: plain TCP, or TLS over it.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// During the handshake, or after a failed one.
    Closed,
}

impl Stream {
    /// Sets the socket's read timeout (a failure leaves the old one).
    pub(crate) fn set_read_timeout(&self, timeout: std::time::Duration) {
        let _ = match self {
            Self::Plain(s) => s.set_read_timeout(Some(timeout)),
            Self::Tls(s) => s.sock.set_read_timeout(Some(timeout)),
            Self::Closed => Ok(()),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
            Self::Closed => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
            Self::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
            Self::Closed => Ok(()),
        }
    }
}

/// Whether `e` means the server went away.
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

/// Whether `e` is a socket timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
