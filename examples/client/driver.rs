//! A blocking `std::net` driver for [`pgproto::Client`], with TLS from rustls.
//!
//! Shared by the `client` example (`main.rs` beside this file) and the live tests
//! (`tests/client_live.rs`, which include it with `#[path]`). It is the I/O layer the crate
//! leaves out: it parses a libpq connection string, opens the socket, performs the TLS handshake
//! when the state machine asks for it (computing the tls-server-end-point channel-binding
//! hash), and runs the run loop of the crate's documentation: after every input and every
//! command, drain [`Client::poll_event`] until it returns `Ok(None)`, then drain
//! [`Client::poll_transmit`] and write.
//!
//! Limitations: one host (no lists), no Unix sockets, no GSSAPI, no client certificates, no
//! environment variables (`PGHOST`...), and writes are blocking, so a pipeline whose answers
//! exceed the socket buffers while requests are still being written could stall (until the
//! socket timeout); a few hundred statements are far below that.

// The example and the tests each use part of this module.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgproto::{
    AuthMethod, BackendMessage, Bind, CancelRequest, ChannelBindingPolicy, Client, ClientConfig,
    ClientEvent, Encode, Encryption, ErrorFields, FormatCodes, FrontendMessage, ProtocolVersion,
    RequestId, RequireAuth, Target, TransactionStatus, UsageError, Values,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned,
};
use sha2::Digest;

/// The default socket timeout: no read or write waits longer.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The ALPN protocol name of PostgreSQL (required by direct TLS, sent always, as libpq 17+).
const ALPN: &[u8] = b"postgresql";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An ErrorResponse or NoticeResponse, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerError {
    /// `ERROR`, `FATAL`, `NOTICE`... (the non-localized severity when the server sent it).
    pub(crate) severity: String,
    /// The SQLSTATE.
    pub(crate) code: String,
    /// The primary message.
    pub(crate) message: String,
    /// The detail, if any.
    pub(crate) detail: Option<String>,
}

impl ServerError {
    fn from_fields(f: &ErrorFields) -> Self {
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        Self {
            severity: text(f.severity_nonlocalized().or(f.severity()))
                .unwrap_or_else(|| "ERROR".into()),
            code: text(f.code()).unwrap_or_default(),
            message: text(f.message()).unwrap_or_default(),
            detail: text(f.detail()),
        }
    }

    /// Whether the server ends the session after this error.
    pub(crate) fn is_fatal(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:  {}: {}", self.severity, self.code, self.message)
    }
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// The connection string is invalid.
    #[error("invalid connection string: {0}")]
    Config(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// TLS could not be set up or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The state machine failed the connection (start-up errors, authentication, protocol
    /// violations, the server closing the connection).
    #[error("{0}")]
    Protocol(pgproto::Error),
    /// The state machine refused a command.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The server answered with an error (a query's, or the FATAL one that ended the session).
    #[error("{0}")]
    Server(ServerError),
    /// The server sent nothing for the socket timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The server asked for an authentication method this driver does not implement.
    #[error("unsupported authentication request: {0}")]
    UnsupportedAuth(String),
}

impl DriverError {
    /// The SQLSTATE, for server errors (including start-up errors from the state machine).
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Server(e) => Some(&e.code),
            Self::Protocol(pgproto::Error::Server(f)) => {
                f.code().and_then(|c| std::str::from_utf8(c).ok())
            }
            _ => None,
        }
    }
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

// ---------------------------------------------------------------------------------------------
// Connection strings
// ---------------------------------------------------------------------------------------------

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// libpq tries plaintext first; this driver only does that.
    Allow,
    /// TLS if the server accepts it, certificate not verified (unless `sslrootcert` is set).
    Prefer,
    /// TLS, certificate not verified (unless `sslrootcert` is set).
    Require,
    /// TLS, certificate chain verified against `sslrootcert`, host name not checked.
    VerifyCa,
    /// TLS, certificate chain and host name verified.
    VerifyFull,
}

/// A parsed libpq keyword/value connection string.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// `host` (default `localhost`).
    pub(crate) host: String,
    /// `port` (default 5432).
    pub(crate) port: u16,
    /// `user` (default: the `USER` environment variable).
    pub(crate) user: String,
    /// `password`.
    pub(crate) password: Option<String>,
    /// `dbname`.
    pub(crate) dbname: Option<String>,
    /// `sslmode` (default `prefer`).
    pub(crate) sslmode: SslMode,
    /// `sslrootcert`: a PEM file of trusted certificates.
    pub(crate) sslrootcert: Option<String>,
    /// `sslnegotiation=direct`.
    pub(crate) direct_tls: bool,
    /// `channel_binding` (default `prefer`).
    pub(crate) channel_binding: ChannelBindingPolicy,
    /// `require_auth`.
    pub(crate) require_auth: RequireAuth,
    /// `min_protocol_version` (default 3.0).
    pub(crate) min_protocol_version: ProtocolVersion,
    /// `max_protocol_version` (default 3.0, as libpq 18).
    pub(crate) max_protocol_version: ProtocolVersion,
    /// `application_name`.
    pub(crate) application_name: Option<String>,
    /// `options`.
    pub(crate) options: Option<String>,
    /// `replication`.
    pub(crate) replication: Option<String>,
    /// `connect_timeout` (default 30 s; 0 also means the default).
    pub(crate) connect_timeout: Duration,
}

/// Splits a libpq keyword/value string into pairs: `key = value` separated by whitespace,
/// values optionally single-quoted, `\` escaping the next character (quoted or not).
pub(crate) fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, DriverError> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DriverError::Config(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(DriverError::Config(
                            "unterminated quoted string in connection info string".into(),
                        ))
                    }
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn parse_version(key: &str, v: &str) -> Result<ProtocolVersion, DriverError> {
    match v {
        "3.0" => Ok(ProtocolVersion::V3_0),
        "3.2" | "latest" => Ok(ProtocolVersion::V3_2),
        _ => Err(DriverError::Config(format!(
            "invalid {key} value: \"{v}\" (3.0, 3.2 or latest)"
        ))),
    }
}

impl ConnInfo {
    /// Parses a libpq keyword/value connection string.
    pub(crate) fn parse(s: &str) -> Result<Self, DriverError> {
        let mut info = Self {
            host: "localhost".into(),
            port: 5432,
            user: std::env::var("USER").unwrap_or_default(),
            password: None,
            dbname: None,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            direct_tls: false,
            channel_binding: ChannelBindingPolicy::Prefer,
            require_auth: RequireAuth::any(),
            min_protocol_version: ProtocolVersion::V3_0,
            max_protocol_version: ProtocolVersion::V3_0,
            application_name: None,
            options: None,
            replication: None,
            connect_timeout: DEFAULT_TIMEOUT,
        };
        let bad = |k: &str, v: &str| DriverError::Config(format!("invalid {k} value: \"{v}\""));
        for (k, v) in parse_pairs(s)? {
            match k.as_str() {
                "host" | "hostaddr" => info.host = v,
                "port" => info.port = v.parse().map_err(|_| bad(&k, &v))?,
                "user" => info.user = v,
                "password" => info.password = Some(v),
                "dbname" => info.dbname = Some(v),
                "sslmode" => {
                    info.sslmode = match v.as_str() {
                        "disable" => SslMode::Disable,
                        "allow" => SslMode::Allow,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "sslrootcert" => info.sslrootcert = Some(v),
                "sslnegotiation" => {
                    info.direct_tls = match v.as_str() {
                        "postgres" => false,
                        "direct" => true,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "channel_binding" => {
                    info.channel_binding = match v.as_str() {
                        "disable" => ChannelBindingPolicy::Disable,
                        "prefer" => ChannelBindingPolicy::Prefer,
                        "require" => ChannelBindingPolicy::Require,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "require_auth" => {
                    info.require_auth =
                        v.parse().map_err(|e| DriverError::Config(format!("{e}")))?
                }
                "min_protocol_version" => info.min_protocol_version = parse_version(&k, &v)?,
                "max_protocol_version" => info.max_protocol_version = parse_version(&k, &v)?,
                "application_name" => info.application_name = Some(v),
                "options" => info.options = Some(v),
                "replication" => info.replication = Some(v),
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| bad(&k, &v))?;
                    if secs > 0 {
                        info.connect_timeout = Duration::from_secs(secs.max(2));
                    }
                }
                "gssencmode" if v == "disable" => {}
                _ => {
                    return Err(DriverError::Config(format!(
                        "invalid connection option \"{k}\""
                    )))
                }
            }
        }
        if info.user.is_empty() {
            return Err(DriverError::Config("no user given".into()));
        }
        if info.direct_tls && !info.tls_required() {
            return Err(DriverError::Config(
                "sslnegotiation=direct needs sslmode=require, verify-ca or verify-full".into(),
            ));
        }
        if info.min_protocol_version > info.max_protocol_version {
            return Err(DriverError::Config(
                "min_protocol_version is greater than max_protocol_version".into(),
            ));
        }
        Ok(info)
    }

    /// Whether a server refusing TLS fails the connection.
    pub(crate) fn tls_required(&self) -> bool {
        matches!(
            self.sslmode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether TLS is attempted at all.
    pub(crate) fn tls_wanted(&self) -> bool {
        !matches!(self.sslmode, SslMode::Disable | SslMode::Allow)
    }

    /// The encryption the state machine is to negotiate.
    pub(crate) fn encryption(&self) -> Encryption {
        if !self.tls_wanted() {
            Encryption::None
        } else if self.direct_tls {
            Encryption::DirectSsl
        } else {
            Encryption::Ssl {
                required: self.tls_required(),
            }
        }
    }

    /// The state machine's configuration.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.user.clone());
        c.database = self.dbname.clone();
        c.password = self.password.as_ref().map(|p| p.as_bytes().to_vec());
        c.application_name = self.application_name.clone();
        c.options = self.options.clone();
        c.replication = self.replication.clone();
        c.encryption = self.encryption();
        c.channel_binding = self.channel_binding;
        c.require_auth = self.require_auth;
        c.min_protocol_version = self.min_protocol_version;
        c.max_protocol_version = self.max_protocol_version;
        c
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

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

    /// Performs the handshake on `tcp`. With `direct`, the server must select ALPN
    /// `postgresql`.
    fn handshake(
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

/// One DER TLV: tag, contents, rest.
fn der_tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The OID (contents bytes) of a certificate's `signatureAlgorithm`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der_tlv(cert)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der_tlv(cert)? else {
        return None;
    };
    let (0x30, alg, _) = der_tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_tlv(alg)? else {
        return None;
    };
    Some(oid)
}

/// The tls-server-end-point channel-binding data (RFC 5929): the hash of the server's
/// certificate with the hash of its signature algorithm, SHA-256 for MD5 and SHA-1. `None` for
/// algorithms without a single hash (RSASSA-PSS, EdDSA), as the PostgreSQL server.
pub(crate) fn server_end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
    const DSA_SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    enum H {
        S224,
        S256,
        S384,
        S512,
    }
    let oid = signature_algorithm_oid(cert)?;
    let h = if let Some(rest) = oid.strip_prefix(RSA) {
        match rest {
            [0x04] | [0x05] | [0x0b] => H::S256, // md5, sha1, sha256 WithRSAEncryption
            [0x0c] => H::S384,
            [0x0d] => H::S512,
            [0x0e] => H::S224,
            _ => return None, // RSASSA-PSS (0x0a) and others
        }
    } else if let Some(rest) = oid.strip_prefix(ECDSA_SHA2) {
        match rest {
            [0x01] => H::S224,
            [0x02] => H::S256,
            [0x03] => H::S384,
            [0x04] => H::S512,
            _ => return None,
        }
    } else if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
        H::S256
    } else if let Some(rest) = oid.strip_prefix(DSA_SHA2) {
        match rest {
            [0x01] => H::S224,
            [0x02] => H::S256,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match h {
        H::S224 => sha2::Sha224::digest(cert).to_vec(),
        H::S256 => sha2::Sha256::digest(cert).to_vec(),
        H::S384 => sha2::Sha384::digest(cert).to_vec(),
        H::S512 => sha2::Sha512::digest(cert).to_vec(),
    })
}

// ---------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Closed,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(s) => Some(s),
            Self::Tls(s) => Some(&s.sock),
            Self::Closed => None,
        }
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

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn open_tcp(info: &ConnInfo, timeout: Duration) -> Result<(TcpStream, SocketAddr), DriverError> {
    let addrs: Vec<SocketAddr> = (info.host.as_str(), info.port)
        .to_socket_addrs()
        .map_err(io_err("cannot resolve host"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, info.connect_timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(io_err("set_nodelay"))?;
                tcp.set_read_timeout(Some(timeout))
                    .map_err(io_err("set_read_timeout"))?;
                tcp.set_write_timeout(Some(timeout))
                    .map_err(io_err("set_write_timeout"))?;
                return Ok((tcp, addr));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DriverError::Io {
        context: "cannot connect to the server",
        source: last.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
    })
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// A field value: `None` for NULL.
pub(crate) type Value = Option<Vec<u8>>;

/// The result of one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatementResult {
    /// Column names, when the statement returns rows (RowDescription).
    pub(crate) columns: Option<Vec<String>>,
    /// The rows.
    pub(crate) rows: Vec<Vec<Value>>,
    /// The command tag (`SELECT 3`, `INSERT 0 1`...); `None` after EmptyQueryResponse or
    /// PortalSuspended.
    pub(crate) tag: Option<String>,
    /// COPY TO STDOUT data, concatenated.
    pub(crate) copy_out: Vec<u8>,
    /// Whether this was COPY TO STDOUT.
    pub(crate) is_copy_out: bool,
}

impl StatementResult {
    /// The rows as text (invalid UTF-8 replaced).
    pub(crate) fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect()
            })
            .collect()
    }

    /// The row count of the command tag (`INSERT 0 5` gives 5).
    pub(crate) fn tag_rows(&self) -> Option<u64> {
        self.tag.as_deref()?.rsplit(' ').next()?.parse().ok()
    }
}

/// What a simple Query, or one Sync-terminated extended segment, gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// One result per completed statement.
    pub(crate) results: Vec<StatementResult>,
    /// The error that ended it, if any.
    pub(crate) error: Option<ServerError>,
    /// How many requests the server skipped after the error (extended protocol only).
    pub(crate) skipped: usize,
    /// The transaction status from its ReadyForQuery.
    pub(crate) status: Option<TransactionStatus>,
}

impl Outcome {
    /// The rows of every result, as text.
    pub(crate) fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        self.results.iter().flat_map(|r| r.text_rows()).collect()
    }

    /// The error as a `Result`.
    pub(crate) fn into_result(self) -> Result<Self, DriverError> {
        match self.error {
            Some(e) => Err(DriverError::Server(e)),
            None => Ok(self),
        }
    }
}

/// A statement for the extended protocol, with text parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The SQL, with `$1`, `$2`... for parameters.
    pub(crate) sql: String,
    /// Parameter values in text format; `None` for NULL.
    pub(crate) params: Vec<Option<String>>,
}

impl Statement {
    /// A statement without parameters.
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub(crate) fn param(mut self, v: Option<&str>) -> Self {
        self.params.push(v.map(str::to_string));
        self
    }
}

/// A NOTIFY received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The notifying backend's process id.
    pub(crate) process_id: i32,
    /// The channel.
    pub(crate) channel: String,
    /// The payload.
    pub(crate) payload: String,
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// A connection: the [`Client`] state machine and its socket.
pub(crate) struct Conn {
    client: Client,
    stream: Stream,
    info: ConnInfo,
    tls: Option<TlsSetup>,
    addr: SocketAddr,
    timeout: Duration,
    events: VecDeque<ClientEvent>,
    error: Option<pgproto::Error>,
    fatal: Option<ServerError>,
    eof: bool,
    write_broken: bool,
    terminated: bool,
    wbuf: Vec<u8>,
    rbuf: Box<[u8]>,
    notifications: VecDeque<Notification>,
    notices: Vec<ServerError>,
    startup_events: Vec<ClientEvent>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Connects with a libpq keyword/value connection string.
pub(crate) fn connect(conninfo: &str) -> Result<Conn, DriverError> {
    Conn::connect(ConnInfo::parse(conninfo)?)
}

impl Conn {
    /// Connects and runs the start-up to ReadyForQuery.
    pub(crate) fn connect(info: ConnInfo) -> Result<Self, DriverError> {
        let client = Client::new(info.client_config())?;
        let tls = TlsSetup::new(&info)?;
        let (tcp, addr) = open_tcp(&info, DEFAULT_TIMEOUT)?;
        let mut conn = Self {
            client,
            stream: Stream::Plain(tcp),
            tls,
            addr,
            timeout: DEFAULT_TIMEOUT,
            events: VecDeque::new(),
            error: None,
            fatal: None,
            eof: false,
            write_broken: false,
            terminated: false,
            wbuf: Vec::new(),
            rbuf: vec![0; 64 * 1024].into_boxed_slice(),
            notifications: VecDeque::new(),
            notices: Vec::new(),
            startup_events: Vec::new(),
            info,
        };
        if conn.info.direct_tls {
            conn.start_tls(true)?;
        }
        conn.pump()?;
        loop {
            let event = conn.next_event()?;
            conn.startup_events.push(event.clone());
            match event {
                ClientEvent::SslResponse { accepted: true } => conn.start_tls(false)?,
                ClientEvent::AuthenticationRequest(a) => {
                    return Err(DriverError::UnsupportedAuth(format!("{a:?}")))
                }
                ClientEvent::Notice(n) => conn.notices.push(ServerError::from_fields(&n)),
                ClientEvent::Connected { .. } => return Ok(conn),
                _ => {}
            }
        }
    }

    /// The TLS handshake, then `tls_established` with the channel-binding hash.
    fn start_tls(&mut self, direct: bool) -> Result<(), DriverError> {
        if let Some(e) = &self.error {
            return Err(DriverError::Protocol(e.clone()));
        }
        let setup = self
            .tls
            .clone()
            .ok_or_else(|| DriverError::Tls("TLS requested without a TLS setup".into()))?;
        self.flush()?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(DriverError::Tls("TLS started twice".into()));
        };
        let tls = setup.handshake(tcp, direct)?;
        let hash = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| server_end_point_hash(c));
        self.stream = Stream::Tls(Box::new(tls));
        self.client.tls_established(hash)?;
        self.pump()
    }

    // ---- access ----

    /// The state machine (for its getters).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The state machine, to send commands directly; call [`Conn::pump`] after each.
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The parsed connection string.
    pub(crate) fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every event of the start-up, in order.
    pub(crate) fn startup_events(&self) -> &[ClientEvent] {
        &self.startup_events
    }

    /// The backend's process id, from its BackendKeyData.
    pub(crate) fn backend_pid(&self) -> Option<i32> {
        self.client.backend_key().map(|k| k.process_id())
    }

    /// Takes the notices and warnings received so far.
    pub(crate) fn take_notices(&mut self) -> Vec<ServerError> {
        std::mem::take(&mut self.notices)
    }

    /// The socket timeout for reads and writes.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> Result<(), DriverError> {
        self.timeout = timeout;
        self.apply_read_timeout(timeout)?;
        if let Some(tcp) = self.stream.tcp() {
            tcp.set_write_timeout(Some(timeout))
                .map_err(io_err("set_write_timeout"))?;
        }
        Ok(())
    }

    fn apply_read_timeout(&self, timeout: Duration) -> Result<(), DriverError> {
        if let Some(tcp) = self.stream.tcp() {
            tcp.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
                .map_err(io_err("set_read_timeout"))?;
        }
        Ok(())
    }

    /// The lines `--verbose` prints once connected.
    pub(crate) fn verbose_lines(&self) -> Vec<String> {
        let auth = self.client.auth_method().unwrap_or(AuthMethod::None);
        vec![
            format!("protocol {}", self.client.protocol_version()),
            format!("auth {}", auth.name()),
            format!("tls {}", if self.client.is_tls() { "on" } else { "off" }),
            format!(
                "cancel key {} bytes",
                self.client
                    .backend_key()
                    .map_or(0, |k| k.secret_key().len())
            ),
        ]
    }

    // ---- the run loop ----

    /// Drains the state machine's events into the queue, then its bytes into the write buffer
    /// (written out when it grows large, or before the next read). Call after every command.
    pub(crate) fn pump(&mut self) -> Result<(), DriverError> {
        if self.error.is_none() {
            loop {
                match self.client.poll_event() {
                    Ok(Some(e)) => self.events.push_back(e.into_owned()),
                    Ok(None) => break,
                    Err(e) => {
                        self.error = Some(e);
                        break;
                    }
                }
            }
        }
        while let Some(b) = self.client.poll_transmit() {
            self.wbuf.extend_from_slice(&b);
        }
        if self.wbuf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered bytes. A server that went away is not an error here: its last
    /// words (a FATAL error, then end of file) are read next.
    pub(crate) fn flush(&mut self) -> Result<(), DriverError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.write_broken || self.eof {
            self.wbuf.clear();
            return Ok(());
        }
        let r = self
            .stream
            .write_all(&self.wbuf)
            .and_then(|()| self.stream.flush());
        self.wbuf.clear();
        match r {
            Ok(()) => Ok(()),
            Err(e) if is_disconnect(&e) => {
                self.write_broken = true;
                Ok(())
            }
            Err(e) if is_timeout(&e) => Err(DriverError::Timeout),
            Err(e) => Err(DriverError::Io {
                context: "write to server",
                source: e,
            }),
        }
    }

    /// Reads once from the socket and feeds the state machine.
    fn read_some(&mut self) -> Result<(), DriverError> {
        let n = match self.stream.read(&mut self.rbuf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) if is_disconnect(&e) => 0,
            Err(e) if is_timeout(&e) => return Err(DriverError::Timeout),
            Err(e) => {
                return Err(DriverError::Io {
                    context: "read from server",
                    source: e,
                })
            }
        };
        if n == 0 {
            self.eof = true;
            self.client.receive_eof();
        } else {
            self.client.receive(&self.rbuf[..n]);
        }
        self.pump()
    }

    fn fail(&self, e: &pgproto::Error) -> DriverError {
        match (e, &self.fatal) {
            (pgproto::Error::UnexpectedEof { .. }, Some(f)) => DriverError::Server(f.clone()),
            _ => DriverError::Protocol(e.clone()),
        }
    }

    /// The next event, reading from the server as needed.
    pub(crate) fn next_event(&mut self) -> Result<ClientEvent, DriverError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                if let ClientEvent::Response {
                    message: BackendMessage::ErrorResponse(f),
                    ..
                }
                | ClientEvent::UnsolicitedError(f) = &e
                {
                    let err = ServerError::from_fields(f);
                    if err.is_fatal() {
                        self.fatal = Some(err);
                    }
                }
                return Ok(e);
            }
            if let Some(e) = &self.error {
                return Err(self.fail(e));
            }
            self.pump()?;
            if !self.events.is_empty() || self.error.is_some() {
                continue;
            }
            if self.eof {
                return Err(DriverError::Closed);
            }
            self.flush()?;
            self.read_some()?;
        }
    }

    /// Keeps the asynchronous events (notifications, notices) for later.
    fn stash(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Notification(n) => self.notifications.push_back(Notification {
                process_id: n.process_id(),
                channel: String::from_utf8_lossy(n.channel()).into_owned(),
                payload: String::from_utf8_lossy(n.payload()).into_owned(),
            }),
            ClientEvent::Notice(f) => self.notices.push(ServerError::from_fields(&f)),
            ClientEvent::UnsolicitedError(f) => self.notices.push(ServerError::from_fields(&f)),
            _ => {}
        }
    }

    // ---- queries ----

    /// Sends a simple Query and collects everything up to its ReadyForQuery. A server error is
    /// in the outcome; the result is an error only when the connection failed. COPY FROM STDIN
    /// is refused with CopyFail; COPY TO STDOUT data is collected.
    pub(crate) fn query(&mut self, sql: &str) -> Result<Outcome, DriverError> {
        self.run_query(sql, None)
    }

    /// Like [`Conn::query`], feeding COPY FROM STDIN from `input`.
    pub(crate) fn query_with_input(
        &mut self,
        sql: &str,
        input: &mut dyn Read,
    ) -> Result<Outcome, DriverError> {
        self.run_query(sql, Some(input))
    }

    /// A simple Query's rows (of every statement in it) as text; a server error as
    /// [`DriverError::Server`].
    pub(crate) fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, DriverError> {
        Ok(self.query(sql)?.into_result()?.text_rows())
    }

    /// Runs COPY ... FROM STDIN with `data`; returns the number of rows copied.
    pub(crate) fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, DriverError> {
        let mut input = data;
        let out = self.run_query(sql, Some(&mut input))?.into_result()?;
        Ok(out.results.last().and_then(|r| r.tag_rows()).unwrap_or(0))
    }

    /// Runs COPY ... TO STDOUT; returns the data.
    pub(crate) fn copy_out(&mut self, sql: &str) -> Result<Vec<u8>, DriverError> {
        let out = self.run_query(sql, None)?.into_result()?;
        Ok(out.results.into_iter().flat_map(|r| r.copy_out).collect())
    }

    fn run_query(
        &mut self,
        sql: &str,
        mut input: Option<&mut dyn Read>,
    ) -> Result<Outcome, DriverError> {
        let id = self.client.query(sql)?;
        self.pump()?;
        let mut out = Outcome::default();
        let mut cur: Option<StatementResult> = None;
        loop {
            let (request, message) = match self.next_event()? {
                ClientEvent::Response { request, message } => (request, message),
                ClientEvent::Skipped { .. } => continue,
                other => {
                    self.stash(other);
                    continue;
                }
            };
            if request != id {
                continue;
            }
            if let BackendMessage::ReadyForQuery(s) = message {
                out.status = Some(s);
                return Ok(out);
            }
            self.result_message(message, &mut out, &mut cur, &mut input)?;
        }
    }

    /// Folds one response message into `out`.
    fn result_message(
        &mut self,
        message: BackendMessage,
        out: &mut Outcome,
        cur: &mut Option<StatementResult>,
        input: &mut Option<&mut dyn Read>,
    ) -> Result<(), DriverError> {
        use BackendMessage as B;
        match message {
            B::RowDescription(rd) => {
                cur.get_or_insert_with(Default::default).columns = Some(
                    rd.fields()
                        .map(|f| String::from_utf8_lossy(f.name).into_owned())
                        .collect(),
                );
            }
            B::NoData => {
                cur.get_or_insert_with(Default::default);
            }
            B::DataRow(row) => cur
                .get_or_insert_with(Default::default)
                .rows
                .push(row.columns().map(|c| c.map(<[u8]>::to_vec)).collect()),
            B::CommandComplete(c) => {
                let mut r = cur.take().unwrap_or_default();
                r.tag = Some(String::from_utf8_lossy(c.tag()).into_owned());
                out.results.push(r);
            }
            B::EmptyQueryResponse | B::PortalSuspended => {
                out.results.push(cur.take().unwrap_or_default());
            }
            B::ErrorResponse(f) => {
                *cur = None;
                out.error = Some(ServerError::from_fields(&f));
            }
            B::CopyInResponse(_) => {
                *cur = None;
                self.send_copy(input.take())?;
            }
            B::CopyOutResponse(_) | B::CopyBothResponse(_) => {
                let r = cur.get_or_insert_with(Default::default);
                r.is_copy_out = true;
            }
            B::CopyData(d) => cur
                .get_or_insert_with(Default::default)
                .copy_out
                .extend_from_slice(d.data()),
            _ => {}
        }
        Ok(())
    }

    /// Streams `input` as CopyData, then CopyDone; CopyFail without input or on a read error.
    fn send_copy(&mut self, input: Option<&mut dyn Read>) -> Result<(), DriverError> {
        let Some(input) = input else {
            self.client
                .copy_fail("COPY FROM STDIN is not supported here")?;
            return self.pump();
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.client.copy_fail(&format!("cannot read input: {e}"))?;
                    return self.pump();
                }
            };
            if self.client.copy_data(&buf[..n]).is_err() {
                // The server ended the COPY already (an error): what it said comes next.
                return self.pump();
            }
            self.pump()?;
        }
        if self.client.copy_done().is_ok() {
            self.pump()?;
        }
        Ok(())
    }

    /// Sends every statement as Parse/Bind/Describe/Execute with its own Sync, all before
    /// reading, then collects one outcome per statement.
    pub(crate) fn pipeline(
        &mut self,
        statements: &[Statement],
    ) -> Result<Vec<Outcome>, DriverError> {
        let mut owner: HashMap<RequestId, usize> = HashMap::new();
        let mut outcomes = vec![Outcome::default(); statements.len()];
        for (i, s) in statements.iter().enumerate() {
            let values = Values::new(s.params.iter().map(|p| p.as_deref().map(str::as_bytes)))
                .map_err(UsageError::from)?;
            let bind = Bind::new(
                "",
                "",
                FormatCodes::default(),
                values,
                FormatCodes::default(),
            )
            .map_err(UsageError::from)?;
            let ids = [
                self.client.parse("", &s.sql, &[])?,
                self.client.bind(&bind)?,
                self.client.describe(Target::Portal, "")?,
                self.client.execute("", 0)?,
                self.client.sync()?,
            ];
            for id in ids {
                owner.insert(id, i);
            }
            self.pump()?;
        }
        self.flush()?;
        let mut current: Vec<Option<StatementResult>> = vec![None; statements.len()];
        let mut remaining = statements.len();
        let mut no_input: Option<&mut dyn Read> = None;
        while remaining > 0 {
            match self.next_event()? {
                ClientEvent::Response { request, message } => {
                    let Some(&i) = owner.get(&request) else {
                        continue;
                    };
                    if let BackendMessage::ReadyForQuery(s) = message {
                        outcomes[i].status = Some(s);
                        remaining -= 1;
                        continue;
                    }
                    self.result_message(message, &mut outcomes[i], &mut current[i], &mut no_input)?;
                }
                ClientEvent::Skipped { request } => {
                    if let Some(&i) = owner.get(&request) {
                        outcomes[i].skipped += 1;
                    }
                }
                other => self.stash(other),
            }
        }
        Ok(outcomes)
    }

    // ---- notifications and cancellation ----

    /// Waits up to `timeout` for a NOTIFY. Must not be called with a request in flight.
    pub(crate) fn wait_for_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Notification>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                self.stash(e);
            }
            if let Some(n) = self.notifications.pop_front() {
                return Ok(Some(n));
            }
            if let Some(e) = &self.error {
                return Err(self.fail(e));
            }
            if self.eof {
                return Err(DriverError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.flush()?;
            self.apply_read_timeout(left)?;
            let r = self.read_some();
            self.apply_read_timeout(self.timeout)?;
            match r {
                Ok(()) => {}
                Err(DriverError::Timeout) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// What is needed to cancel this connection's query from elsewhere (another thread).
    pub(crate) fn canceller(&self) -> Option<Canceller> {
        Some(Canceller {
            request: self.client.cancel_request()?,
            info: self.info.clone(),
            tls: self.tls.clone(),
            addr: self.addr,
        })
    }

    /// Sends Terminate and waits (briefly) for the server to close.
    pub(crate) fn terminate(&mut self) -> Result<(), DriverError> {
        if self.terminated {
            return Ok(());
        }
        self.terminated = true;
        self.client.terminate()?;
        self.pump()?;
        self.flush()?;
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        loop {
            match self.next_event() {
                Ok(ClientEvent::Closed) | Err(DriverError::Closed) => return Ok(()),
                Ok(other) => self.stash(other),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.terminated && self.client.is_ready() {
            self.terminated = true;
            if self.client.terminate().is_ok() {
                let _ = self.pump();
                let _ = self.flush();
            }
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }
}

/// Cancels a connection's running query: sends its CancelRequest on a new connection to the
/// same server, with the same encryption (SSLRequest first unless `sslmode=disable`, direct TLS
/// with `sslnegotiation=direct`), as libpq 17's cancel API.
#[derive(Debug, Clone)]
pub(crate) struct Canceller {
    request: CancelRequest,
    info: ConnInfo,
    tls: Option<TlsSetup>,
    addr: SocketAddr,
}

impl Canceller {
    /// Sends the request and waits for the server to close the cancel connection.
    pub(crate) fn cancel(&self) -> Result<(), DriverError> {
        let mut tcp = TcpStream::connect_timeout(&self.addr, self.info.connect_timeout)
            .map_err(io_err("cannot connect to the server"))?;
        tcp.set_read_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(io_err("set_read_timeout"))?;
        tcp.set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(io_err("set_write_timeout"))?;
        let mut bytes = BytesMut::new();
        self.request.encode(&mut bytes);
        let mut stream = match (&self.tls, self.info.direct_tls) {
            (Some(tls), true) => Stream::Tls(Box::new(tls.handshake(tcp, true)?)),
            (Some(tls), false) => {
                let mut req = BytesMut::new();
                FrontendMessage::SslRequest.encode(&mut req);
                tcp.write_all(&req).map_err(io_err("send SSLRequest"))?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer)
                    .map_err(io_err("read SSLRequest answer"))?;
                match answer[0] {
                    b'S' => Stream::Tls(Box::new(tls.handshake(tcp, false)?)),
                    b'N' if !self.info.tls_required() => Stream::Plain(tcp),
                    b'N' => {
                        return Err(DriverError::Protocol(pgproto::Error::EncryptionRefused {
                            what: "SSL",
                        }))
                    }
                    _ => {
                        return Err(DriverError::Protocol(
                            pgproto::Error::EncryptionRequestRejected { what: "SSL" },
                        ))
                    }
                }
            }
            (None, _) => Stream::Plain(tcp),
        };
        stream
            .write_all(&bytes)
            .and_then(|()| stream.flush())
            .map_err(io_err("send CancelRequest"))?;
        // The server closes the connection once it has handled the request.
        let mut sink = [0u8; 256];
        loop {
            match stream.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if is_disconnect(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("wait for the server to close")(e)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

const USAGE: &str = "usage: client [--extended] [--verbose] CONNINFO SQL [SQL ...]";

/// Prints a result as `psql -At` does: rows with `|` between fields and NULL as nothing, the
/// command tag of a command without rows (and of INSERT/UPDATE/DELETE/MERGE ... RETURNING),
/// COPY TO STDOUT data as it came.
fn print_result(r: &StatementResult, out: &mut dyn Write) -> io::Result<()> {
    if r.is_copy_out {
        return out.write_all(&r.copy_out);
    }
    if r.columns.is_some() {
        for row in &r.rows {
            if row.is_empty() {
                continue;
            }
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"|")?;
                }
                if let Some(v) = v {
                    out.write_all(v)?;
                }
            }
            out.write_all(b"\n")?;
        }
        let returning = r.tag.as_deref().is_some_and(|t| {
            ["INSERT", "UPDATE", "DELETE", "MERGE"]
                .iter()
                .any(|p| t.starts_with(p))
        });
        if !returning {
            return Ok(());
        }
    }
    match r.tag.as_deref() {
        Some(tag) if !tag.is_empty() => writeln!(out, "{tag}"),
        _ => Ok(()),
    }
}

fn print_outcome(
    o: &Outcome,
    notices: Vec<ServerError>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    for n in notices {
        writeln!(err, "{}:  {}", n.severity, n.message)?;
    }
    for r in &o.results {
        print_result(r, out)?;
    }
    if let Some(e) = &o.error {
        writeln!(err, "{}:  {}: {}", e.severity, e.code, e.message)?;
    }
    Ok(())
}

/// The `client` example: `[--extended] [--verbose] CONNINFO SQL [SQL ...]`. Returns the exit
/// code: 0, 1 after a server error or a connection failure, 2 for a usage error.
pub(crate) fn run_cli(
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut extended = false;
    let mut verbose = false;
    let mut positional: Vec<&str> = Vec::new();
    let mut flags_done = false;
    for a in args {
        match a.as_str() {
            "--extended" if !flags_done => extended = true,
            "--verbose" if !flags_done => verbose = true,
            "--" if !flags_done => flags_done = true,
            f if !flags_done && f.starts_with("--") => {
                let _ = writeln!(stderr, "unknown option {f}\n{USAGE}");
                return 2;
            }
            p => {
                flags_done = true;
                positional.push(p);
            }
        }
    }
    let Some((conninfo, sqls)) = positional.split_first() else {
        let _ = writeln!(stderr, "{USAGE}");
        return 2;
    };
    if sqls.is_empty() {
        let _ = writeln!(stderr, "{USAGE}");
        return 2;
    }
    let mut conn = match connect(conninfo) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(stderr, "error: connection failed: {e}");
            return 1;
        }
    };
    if verbose {
        for line in conn.verbose_lines() {
            let _ = writeln!(stderr, "{line}");
        }
    }
    let mut failed = false;
    let mut report = |o: &Outcome, notices, out: &mut dyn Write, err: &mut dyn Write| {
        failed |= o.error.is_some();
        print_outcome(o, notices, out, err)
    };
    let result: Result<(), DriverError> = (|| {
        if extended {
            let statements: Vec<Statement> = sqls.iter().map(|s| Statement::new(*s)).collect();
            let outcomes = conn.pipeline(&statements)?;
            let mut notices = conn.take_notices();
            for o in &outcomes {
                report(o, std::mem::take(&mut notices), stdout, stderr)
                    .map_err(io_err("write output"))?;
            }
        } else {
            for sql in sqls {
                let o = conn.query_with_input(sql, stdin)?;
                let notices = conn.take_notices();
                report(&o, notices, stdout, stderr).map_err(io_err("write output"))?;
            }
        }
        conn.terminate()
    })();
    let _ = stdout.flush();
    match result {
        Err(DriverError::Server(e)) => {
            let _ = writeln!(stderr, "{e}");
            1
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
        Ok(()) if failed => 1,
        Ok(()) => 0,
    }
}
