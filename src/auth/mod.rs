//! Password authentication computations: SCRAM-SHA-256(-PLUS), MD5 and cleartext.
//!
//! These are small sans-IO sub-machines shared by the client and server roles: each step takes
//! the bytes of one received authentication message and returns the bytes of the next one to
//! send (the data of a SASLInitialResponse, SASLResponse, AuthenticationSASLContinue or
//! AuthenticationSASLFinal). Framing those bytes into messages is the caller's job.
//!
//! | role | SCRAM | MD5 | cleartext |
//! |---|---|---|---|
//! | client | [`ScramClient`] | [`md5::password_hash`] | send the password |
//! | server | [`ScramServer`] with a [`ScramVerifier`] | [`md5::verify`] | [`verify_cleartext`] |
//!
//! Every byte a peer sends is hostile input: malformed attributes, bad base64, non-UTF-8 text,
//! huge iteration counts or empty messages give a [`ScramError`], never a panic. Secrets are
//! compared in constant time. Randomness (nonces, salts) comes from the operating system through
//! `getrandom` unless the caller injects it ([`ScramClient::with_nonce`],
//! [`ScramServer::with_nonce`], [`ScramVerifier::new`]), which is what deterministic tests do.
//!
//! A SCRAM exchange end to end, both roles in memory:
//!
//! ```
//! use pgproto::auth::{ChannelBinding, ScramClient, ScramMechanism, ScramServer, ScramVerifier};
//!
//! // Stored once, when the password is set (what pg_authid.rolpassword holds).
//! let verifier = ScramVerifier::new("secret", b"0123456789abcdef", 4096).unwrap();
//!
//! let mut client = ScramClient::new("secret", ChannelBinding::None);
//! let mut server = ScramServer::new(verifier);
//! let client_first = client.client_first().unwrap(); // SASLInitialResponse data
//! let server_first = server
//!     .handle_client_first(&client_first, client.mechanism(), None)
//!     .unwrap(); // AuthenticationSASLContinue data
//! let client_final = client.handle_server_first(&server_first).unwrap(); // SASLResponse data
//! let server_final = server.handle_client_final(&client_final).unwrap(); // SASLFinal data
//! client.handle_server_final(&server_final).unwrap();
//! assert!(client.is_complete() && server.is_complete());
//! assert_eq!(client.mechanism(), ScramMechanism::ScramSha256);
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

mod end_point;
pub mod md5;
mod saslprep;
mod scram;
mod scram_server;
mod verifier;

pub use end_point::{tls_server_end_point, EndPointError};
pub use saslprep::saslprep;
pub use scram::{ChannelBinding, ScramClient, DEFAULT_MAX_ITERATIONS, DEFAULT_MIN_ITERATIONS};
pub use scram_server::ScramServer;
pub use verifier::{ScramVerifier, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN};

/// The channel binding type PostgreSQL uses (RFC 5929), the only one this crate supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Length of the random part of a nonce before base64 encoding: 18 bytes, as libpq and the
/// PostgreSQL server use, which encode to 24 characters.
const RAW_NONCE_LEN: usize = 18;

/// Length of SHA-256 output, and so of every SCRAM key, signature and proof.
const KEY_LEN: usize = 32;

type Key = [u8; KEY_LEN];

/// The SASL mechanisms this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256`: no channel binding.
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS`: channel binding of type `tls-server-end-point`.
    ScramSha256Plus,
}

impl ScramMechanism {
    /// The mechanism's name as it appears in AuthenticationSASL and SASLInitialResponse.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    /// The mechanism with this exact name, or `None` for any other mechanism.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"SCRAM-SHA-256" => Some(Self::ScramSha256),
            b"SCRAM-SHA-256-PLUS" => Some(Self::ScramSha256Plus),
            _ => None,
        }
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed SCRAM step, on either side, or an invalid stored verifier.
///
/// Once a step has rejected the peer's message, the exchange is over and every later step
/// returns [`ScramError::OutOfOrder`]. A step called out of order is refused with that error and
/// changes nothing. On the server side, [`ScramError::sqlstate`] gives the SQLSTATE
/// PostgreSQL would report for the same failure.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message does not follow the RFC 5802 grammar.
    #[error("malformed SCRAM {message}: {reason}")]
    Malformed {
        /// The SCRAM message, such as `server-first-message`.
        message: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer requires a mandatory extension (`m=`); none is supported.
    #[error("SCRAM {message} requires an unsupported mandatory extension")]
    UnsupportedExtension {
        /// The SCRAM message that carried `m=`.
        message: &'static str,
    },
    /// The nonce does not extend the client's (server-first-message) or is not the combined
    /// nonce (client-final-message).
    #[error("SCRAM nonce mismatch in {message}")]
    NonceMismatch {
        /// The SCRAM message with the wrong nonce.
        message: &'static str,
    },
    /// The server asked for an iteration count outside the client's bounds.
    #[error("SCRAM iteration count {count} is outside the accepted range {min} to {max}")]
    IterationCount {
        /// The count the server sent (saturated at `u64::MAX`).
        count: u64,
        /// The smallest count the client accepts.
        min: u32,
        /// The largest count the client accepts.
        max: u32,
    },
    /// The server ended the exchange with `e=`.
    #[error("error received from server in SCRAM exchange: {reason}")]
    Server {
        /// The server's error value, with bytes that are not UTF-8 replaced.
        reason: String,
    },
    /// The server's `v=` does not prove it knows the password: it may be an impostor.
    #[error("invalid SCRAM server signature")]
    InvalidServerSignature,
    /// The client's proof is wrong (a wrong password), or the user does not exist
    /// ([`ScramServer::doomed`]). PostgreSQL reports both as SQLSTATE 28P01.
    #[error("password authentication failed")]
    AuthenticationFailed,
    /// The client chose SCRAM-SHA-256-PLUS but the server did not offer it.
    #[error("client selected {mechanism}, which the server did not offer")]
    MechanismNotOffered {
        /// The mechanism the client chose.
        mechanism: ScramMechanism,
    },
    /// The client sent flag `y` (it supports channel binding but thinks the server does not)
    /// while the server offered SCRAM-SHA-256-PLUS: a downgrade attack may be under way.
    #[error(
        "SCRAM channel binding negotiation error: the client supports channel binding but \
         thinks the server does not, while this server does"
    )]
    ChannelBindingDowngrade,
    /// The client chose SCRAM-SHA-256-PLUS but its gs2 header has flag `n` or `y`.
    #[error(
        "client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel \
         binding data"
    )]
    ChannelBindingMissing,
    /// The client chose SCRAM-SHA-256 but its gs2 header has flag `p`.
    #[error(
        "client selected SCRAM-SHA-256 without channel binding, but the SCRAM message \
         includes channel binding data"
    )]
    ChannelBindingUnexpected,
    /// The client asked for a channel binding type other than `tls-server-end-point`.
    #[error("unsupported SCRAM channel binding type")]
    UnsupportedChannelBindingType,
    /// The client-final-message's `c=` is not the gs2 header plus the expected binding data.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    /// The client sent an authorization identity (`a=`); PostgreSQL supports none.
    #[error("client uses authorization identity, but it is not supported")]
    AuthzidNotSupported,
    /// A stored verifier is not `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
    /// or a verifier cannot be made from these arguments.
    #[error("invalid SCRAM verifier: {reason}")]
    InvalidVerifier {
        /// What was wrong.
        reason: &'static str,
    },
    /// An injected nonce is empty or has a character outside printable ASCII or a comma.
    #[error("invalid SCRAM nonce: it must be non-empty printable ASCII without commas")]
    InvalidNonce,
    /// A step was called in the wrong order, or after the exchange ended.
    #[error("SCRAM step {step} called in state {state}")]
    OutOfOrder {
        /// The method called.
        step: &'static str,
        /// The state the exchange was in.
        state: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("could not generate random bytes: {reason}")]
    Random {
        /// The generator's error message.
        reason: String,
    },
}

impl ScramError {
    /// The SQLSTATE PostgreSQL reports when its server detects this failure, for the server role's
    /// ErrorResponse; `None` for errors that only the client side or local misuse produce.
    ///
    /// `28P01` (invalid_password) for [`ScramError::AuthenticationFailed`]; `28000`
    /// (invalid_authorization_specification) for the channel binding downgrade and check
    /// failures; `0A000` (feature_not_supported) for authzid and mandatory extensions; `08P01`
    /// (protocol_violation) for every other malformed client message.
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            Self::AuthenticationFailed => Some("28P01"),
            Self::ChannelBindingDowngrade | Self::ChannelBindingMismatch => Some("28000"),
            Self::AuthzidNotSupported | Self::UnsupportedExtension { .. } => Some("0A000"),
            Self::Malformed { .. }
            | Self::NonceMismatch { .. }
            | Self::MechanismNotOffered { .. }
            | Self::ChannelBindingMissing
            | Self::ChannelBindingUnexpected
            | Self::UnsupportedChannelBindingType => Some("08P01"),
            _ => None,
        }
    }
}

/// Checks a stored password against one received in cleartext (AuthenticationCleartextPassword),
/// as PostgreSQL does: `stored` is a `pg_authid.rolpassword` value, either a SCRAM-SHA-256
/// verifier or an MD5 hash (`md5` and 32 lowercase hex digits). Anything else, including a
/// malformed verifier, never matches. The comparison of the final secrets is in constant time.
///
/// ```
/// use pgproto::auth::{md5, verify_cleartext, ScramVerifier};
/// let scram = ScramVerifier::new("pw", b"salt", 4096).unwrap().to_string();
/// assert!(verify_cleartext(&scram, b"joe", b"pw"));
/// assert!(verify_cleartext(&md5::stored_hash("joe", "pw"), b"joe", b"pw"));
/// assert!(!verify_cleartext(&scram, b"joe", b"wrong"));
/// ```
pub fn verify_cleartext(stored: &str, user: &[u8], password: &[u8]) -> bool {
    if let Ok(verifier) = ScramVerifier::parse(stored) {
        verifier.verify_password(password)
    } else if md5::is_stored_hash(stored) {
        ct_eq(
            md5::stored_hash(user, password).as_bytes(),
            stored.as_bytes(),
        )
    } else {
        false
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA-256 over the concatenation of `parts`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    // HMAC accepts keys of any length (longer ones are hashed, shorter ones padded), so this
    // constructor cannot fail.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256.
fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// The keys derived from a password: SaltedPassword feeds ClientKey and ServerKey, and
/// StoredKey = H(ClientKey).
struct Keys {
    client_key: Key,
    stored_key: Key,
    server_key: Key,
}

impl Keys {
    /// Hi(SASLprep(password), salt, i) and the keys derived from it (RFC 5802 section 3).
    fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let prepared = saslprep(password);
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(&prepared, salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Self {
            client_key,
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }
}

/// AuthMessage = client-first-message-bare "," server-first-message ","
/// client-final-message-without-proof; returns (ClientSignature, ServerSignature).
fn signatures(
    stored_key: &Key,
    server_key: &Key,
    client_first_bare: &[u8],
    server_first: &[u8],
    client_final_without_proof: &[u8],
) -> (Key, Key) {
    let auth_message: [&[u8]; 5] = [
        client_first_bare,
        b",",
        server_first,
        b",",
        client_final_without_proof,
    ];
    (
        hmac(stored_key, &auth_message),
        hmac(server_key, &auth_message),
    )
}

fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E`, printable ASCII except the comma.
fn is_printable(s: &[u8]) -> bool {
    s.iter().all(|&c| (0x21..=0x7e).contains(&c) && c != b',')
}

/// Validates an injected nonce.
fn check_nonce(nonce: &str) -> Result<String, ScramError> {
    if nonce.is_empty() || !is_printable(nonce.as_bytes()) {
        return Err(ScramError::InvalidNonce);
    }
    Ok(nonce.to_owned())
}

/// Fills `buf` from the operating system's random number generator.
fn random_bytes(buf: &mut [u8]) -> Result<(), ScramError> {
    getrandom::fill(buf).map_err(|e| ScramError::Random {
        reason: e.to_string(),
    })
}

/// A fresh nonce: 18 random bytes, base64-encoded, as libpq and PostgreSQL make them.
fn random_nonce() -> Result<String, ScramError> {
    let mut raw = [0u8; RAW_NONCE_LEN];
    random_bytes(&mut raw)?;
    Ok(BASE64.encode(raw))
}

/// Strict base64 (standard alphabet, padding required), the form every peer sends.
fn b64_decode(
    value: &[u8],
    message: &'static str,
    what: &'static str,
) -> Result<Vec<u8>, ScramError> {
    BASE64.decode(value).map_err(|_| ScramError::Malformed {
        message,
        reason: what,
    })
}

/// Decodes a base64 value that must hold exactly one key.
fn b64_key(value: &[u8], message: &'static str, what: &'static str) -> Result<Key, ScramError> {
    let bytes = b64_decode(value, message, what)?;
    Key::try_from(bytes.as_slice()).map_err(|_| ScramError::Malformed {
        message,
        reason: what,
    })
}

/// The `attr=value` pairs of a SCRAM message, separated by commas.
struct Attributes<'a> {
    message: &'static str,
    data: &'a [u8],
    /// Offset of the next attribute in `data`, or `None` once everything was read.
    pos: Option<usize>,
}

impl<'a> Attributes<'a> {
    fn new(message: &'static str, data: &'a [u8]) -> Self {
        Self {
            message,
            data,
            pos: Some(0),
        }
    }

    fn malformed(&self, reason: &'static str) -> ScramError {
        ScramError::Malformed {
            message: self.message,
            reason,
        }
    }

    /// The offset where the next attribute starts, if any is left.
    fn offset(&self) -> Option<usize> {
        self.pos
    }

    /// The next attribute's name without consuming it.
    fn peek(&self) -> Option<u8> {
        self.pos.and_then(|p| self.data.get(p).copied())
    }

    /// The next attribute as (name, value); `None` at the end of the message.
    fn next_any(&mut self) -> Result<Option<(u8, &'a [u8])>, ScramError> {
        let Some(start) = self.pos else {
            return Ok(None);
        };
        let rest = &self.data[start..];
        let (item, next) = match memchr::memchr(b',', rest) {
            Some(i) => (&rest[..i], Some(start + i + 1)),
            None => (rest, None),
        };
        match item {
            [name, b'=', value @ ..] if name.is_ascii_alphabetic() => {
                self.pos = next;
                Ok(Some((*name, value)))
            }
            [] => Err(self.malformed("empty attribute")),
            _ => Err(self.malformed("attribute is not of the form x=value")),
        }
    }

    /// The next attribute, which must be `name`.
    fn expect(&mut self, name: u8, missing: &'static str) -> Result<&'a [u8], ScramError> {
        match self.next_any()? {
            Some((n, value)) if n == name => Ok(value),
            _ => Err(self.malformed(missing)),
        }
    }

    /// Skips optional extensions (well-formed attributes) up to the end of the message.
    fn skip_extensions(&mut self) -> Result<(), ScramError> {
        while self.next_any()?.is_some() {}
        Ok(())
    }
}

/// The state name used in [`ScramError::OutOfOrder`].
fn out_of_order(step: &'static str, state: &'static str) -> ScramError {
    ScramError::OutOfOrder { step, state }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn mechanism_names_round_trip() {
        for m in [ScramMechanism::ScramSha256, ScramMechanism::ScramSha256Plus] {
            assert_eq!(ScramMechanism::from_name(m.name().as_bytes()), Some(m));
        }
        assert_eq!(ScramMechanism::from_name(b"SCRAM-SHA-1"), None);
        assert_eq!(ScramMechanism::from_name(b"scram-sha-256"), None);
    }

    #[test]
    fn attributes_parse_and_reject() {
        let mut a = Attributes::new("m", b"r=abc,s=,x=1");
        assert_eq!(a.expect(b'r', "r").unwrap(), b"abc");
        assert_eq!(a.next_any().unwrap(), Some((b's', &b""[..])));
        assert_eq!(a.next_any().unwrap(), Some((b'x', &b"1"[..])));
        assert_eq!(a.next_any().unwrap(), None);
        for bad in [&b""[..], b"r", b"=x", b"1=x", b"r=a,", b"r=a,,s=b", b"rr=a"] {
            let mut a = Attributes::new("m", bad);
            let res = (|| {
                while a.next_any()?.is_some() {}
                Ok::<_, ScramError>(())
            })();
            assert!(res.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cleartext_verification() {
        let v = ScramVerifier::new("pencil", b"salt", 4096)
            .unwrap()
            .to_string();
        assert!(verify_cleartext(&v, b"user", b"pencil"));
        assert!(!verify_cleartext(&v, b"user", b"pencil "));
        let m = md5::stored_hash("user", "pencil");
        assert!(verify_cleartext(&m, b"user", b"pencil"));
        assert!(!verify_cleartext(&m, b"other", b"pencil"));
        assert!(!verify_cleartext("pencil", b"user", b"pencil"));
        assert!(!verify_cleartext("", b"user", b""));
    }

    proptest::proptest! {
        /// Hostile bytes at every step, alone and spliced into valid messages: errors, never
        /// panics. Iteration counts are kept tiny so that accepted messages stay cheap.
        #[test]
        fn no_panic_on_any_input(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            at in 0usize..200,
        ) {
            let splice = |valid: &[u8]| {
                let mut v = valid.to_vec();
                let at = at.min(v.len());
                v.splice(at..(at + junk.len() / 4).min(v.len()), junk.iter().copied());
                v
            };
            let _ = ScramVerifier::parse(&String::from_utf8_lossy(&junk));
            let _ = saslprep(&junk);
            let _ = md5::verify(&String::from_utf8_lossy(&junk), [0; 4], &junk);
            let verifier = ScramVerifier::new("pw", b"salt", 2).unwrap();
            let hash: &[u8] = &[1; 32];
            for (cb, hash) in [
                (ChannelBinding::None, None),
                (ChannelBinding::SupportedButNotUsed, None),
                (ChannelBinding::TlsServerEndPoint(hash.to_vec()), Some(hash)),
            ] {
                let mut c = ScramClient::new("pw", cb.clone())
                    .with_min_iterations(1)
                    .with_max_iterations(16);
                let mut s = ScramServer::new(verifier.clone());
                let first = c.client_first().unwrap();
                let _ = s.handle_client_first(&junk, c.mechanism(), hash);
                let mut s = ScramServer::new(verifier.clone());
                let sf = s.handle_client_first(&first, c.mechanism(), hash).unwrap();
                let _ = c.clone().handle_server_first(&junk);
                let _ = c.clone().handle_server_first(&splice(&sf));
                let cf = c.handle_server_first(&sf).unwrap();
                let _ = ScramServer::new(verifier.clone()).handle_client_final(&junk);
                let mut s2 = ScramServer::new(verifier.clone()).with_nonce("n").unwrap();
                let _ = s2.handle_client_first(&splice(&first), c.mechanism(), hash);
                let _ = s2.handle_client_final(&splice(&cf));
                let _ = s.clone().handle_client_final(&splice(&cf));
                let fin = s.handle_client_final(&cf).unwrap();
                let _ = c.clone().handle_server_final(&junk);
                let _ = c.clone().handle_server_final(&splice(&fin));
                c.handle_server_final(&fin).unwrap();
            }
        }
    }

    #[test]
    fn sqlstates() {
        assert_eq!(ScramError::AuthenticationFailed.sqlstate(), Some("28P01"));
        assert_eq!(
            ScramError::ChannelBindingDowngrade.sqlstate(),
            Some("28000")
        );
        assert_eq!(ScramError::AuthzidNotSupported.sqlstate(), Some("0A000"));
        assert_eq!(ScramError::InvalidServerSignature.sqlstate(), None);
    }
}
