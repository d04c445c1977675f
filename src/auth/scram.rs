//! The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677), as libpq
//! speaks it.

use std::fmt;

use base64::Engine as _;

use super::{
    b64_decode, b64_key, check_nonce, ct_eq, is_printable, out_of_order, random_nonce, signatures,
    xor, Attributes, Key, Keys, ScramError, ScramMechanism, BASE64,
};

/// The largest iteration count a [`ScramClient`] accepts by default: 600,000.
///
/// PostgreSQL stores 4,096 by default (its `scram_iterations` setting, PostgreSQL 16 and later,
/// can raise it). 600,000 is the OWASP password storage recommendation (2023) for
/// PBKDF2-HMAC-SHA-256, so a server configured to current guidance still works; at that count
/// an optimised build spends about 0.15 s of one core (4,096 iterations take under a
/// millisecond). The bound exists because the count comes from the server: without one, a
/// hostile or misconfigured server could make the client compute up to 2^31 - 1 iterations,
/// minutes of CPU, before it can even check the server's signature. Change it with
/// [`ScramClient::with_max_iterations`].
pub const DEFAULT_MAX_ITERATIONS: u32 = 600_000;

/// The smallest iteration count a [`ScramClient`] accepts by default: 4,096, the minimum RFC 7677
/// asks for and PostgreSQL's default.
///
/// The count comes from the server, and the client's proof is computed with it: a hostile server
/// that asks for `i=1` gets a proof it can brute-force offline for the password at almost no
/// cost. libpq accepts any count; this crate refuses counts below the bound before it sends the
/// proof. A server whose `scram_iterations` is set lower needs
/// [`ScramClient::with_min_iterations`] (or `ClientConfig::min_scram_iterations`).
pub const DEFAULT_MIN_ITERATIONS: u32 = 4_096;

/// What the client says about channel binding, chosen from what the server offered and whether
/// the connection uses TLS.
///
/// The usual choice, as libpq makes it: [`ChannelBinding::TlsServerEndPoint`] when the server
/// offered SCRAM-SHA-256-PLUS and the connection uses TLS; [`ChannelBinding::SupportedButNotUsed`]
/// when the connection uses TLS (and channel binding is not disabled) but the server offered only
/// SCRAM-SHA-256; [`ChannelBinding::None`] without TLS or when channel binding is disabled.
/// [`ChannelBinding::negotiate`] makes exactly that choice.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// gs2 header `n,,`: the client does not support channel binding. Mechanism SCRAM-SHA-256.
    None,
    /// gs2 header `y,,`: the client supports channel binding but the server did not offer it.
    /// A server that did offer SCRAM-SHA-256-PLUS then knows someone removed it from the list
    /// and refuses. Mechanism SCRAM-SHA-256.
    SupportedButNotUsed,
    /// gs2 header `p=tls-server-end-point,,`, with the `tls-server-end-point` channel binding data
    /// (RFC 5929): the hash of the server's TLS certificate, made with the certificate's
    /// signature hash algorithm (SHA-256 when that is MD5 or SHA-1). The I/O layer, which owns
    /// TLS, computes it. Mechanism SCRAM-SHA-256-PLUS.
    TlsServerEndPoint(Vec<u8>),
}

impl ChannelBinding {
    /// libpq's choice: `plus_offered` is whether AuthenticationSASL listed SCRAM-SHA-256-PLUS;
    /// `certificate_hash` is the server certificate's `tls-server-end-point` hash when the
    /// connection uses TLS and channel binding is allowed, `None` otherwise.
    pub fn negotiate(plus_offered: bool, certificate_hash: Option<Vec<u8>>) -> Self {
        match certificate_hash {
            Some(hash) if plus_offered => Self::TlsServerEndPoint(hash),
            Some(_) => Self::SupportedButNotUsed,
            None => Self::None,
        }
    }

    /// The SASL mechanism this choice goes with.
    pub fn mechanism(&self) -> ScramMechanism {
        match self {
            Self::TlsServerEndPoint(_) => ScramMechanism::ScramSha256Plus,
            Self::None | Self::SupportedButNotUsed => ScramMechanism::ScramSha256,
        }
    }

    /// The gs2 header that starts the client-first-message.
    pub(crate) fn gs2_header(&self) -> &'static str {
        match self {
            Self::None => "n,,",
            Self::SupportedButNotUsed => "y,,",
            Self::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    /// cbind-input: the gs2 header, then the binding data if any. Its base64 is `c=`.
    fn cbind_input(&self) -> Vec<u8> {
        let mut out = self.gs2_header().as_bytes().to_vec();
        if let Self::TlsServerEndPoint(hash) = self {
            out.extend_from_slice(hash);
        }
        out
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::SupportedButNotUsed => f.write_str("SupportedButNotUsed"),
            Self::TlsServerEndPoint(hash) => write!(f, "TlsServerEndPoint({} bytes)", hash.len()),
        }
    }
}

/// The client side of a SCRAM-SHA-256 exchange: three steps, each consuming the server's message
/// and producing the client's next one.
///
/// 1. [`client_first`](Self::client_first): the data of the SASLInitialResponse, sent with
///    mechanism [`mechanism`](Self::mechanism).
/// 2. [`handle_server_first`](Self::handle_server_first): takes AuthenticationSASLContinue's data,
///    returns the SASLResponse data. This step runs PBKDF2 and is the expensive one.
/// 3. [`handle_server_final`](Self::handle_server_final): takes AuthenticationSASLFinal's data and
///    checks the server's signature. Only then has the server proved it knows the password:
///    a client must not accept AuthenticationOk before [`is_complete`](Self::is_complete).
///
/// The user name in the client-first-message is empty by default, as libpq sends it:
/// PostgreSQL ignores it and uses the StartupMessage's `user`.
#[derive(Clone)]
pub struct ScramClient {
    /// The password after SASLprep; cleared once the keys are derived.
    password: Vec<u8>,
    channel_binding: ChannelBinding,
    /// Injected nonce; drawn from the operating system at the first step otherwise.
    nonce: Option<String>,
    /// The user name, already escaped as a `saslname`.
    user: String,
    min_iterations: u32,
    max_iterations: u32,
    state: State,
}

#[derive(Clone)]
enum State {
    Initial,
    FirstSent {
        client_first_bare: Vec<u8>,
        nonce: String,
    },
    FinalSent {
        server_signature: Key,
    },
    Complete,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::FirstSent { .. } => "client-first sent",
            Self::FinalSent { .. } => "client-final sent",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism())
            .field("channel_binding", &self.channel_binding)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for this password (any bytes: PostgreSQL passwords need not be UTF-8; see
    /// [`crate::auth::saslprep`] for how they are prepared) and channel binding choice. The nonce
    /// is drawn from the operating system when [`client_first`](Self::client_first) runs.
    pub fn new(password: impl AsRef<[u8]>, channel_binding: ChannelBinding) -> Self {
        Self {
            password: super::saslprep(password.as_ref()).into_owned(),
            channel_binding,
            nonce: None,
            user: String::new(),
            min_iterations: DEFAULT_MIN_ITERATIONS,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            state: State::Initial,
        }
    }

    /// Uses this client nonce instead of a random one, for deterministic tests. It must be
    /// non-empty printable ASCII without commas ([`ScramError::InvalidNonce`] otherwise).
    /// Never reuse a nonce on a real connection.
    pub fn with_nonce(mut self, nonce: &str) -> Result<Self, ScramError> {
        self.nonce = Some(check_nonce(nonce)?);
        Ok(self)
    }

    /// Sends this user name in the client-first-message (`n=`) instead of an empty one.
    /// PostgreSQL ignores it; other SCRAM servers and the RFC test vectors use it. `,` and `=`
    /// are escaped as the RFC requires.
    pub fn with_user_name(mut self, user: &str) -> Self {
        self.user = user.replace('=', "=3D").replace(',', "=2C");
        self
    }

    /// Accepts iteration counts up to `max` instead of [`DEFAULT_MAX_ITERATIONS`].
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Accepts iteration counts from `min` (at least 1) instead of [`DEFAULT_MIN_ITERATIONS`].
    pub fn with_min_iterations(mut self, min: u32) -> Self {
        self.min_iterations = min.max(1);
        self
    }

    /// The mechanism to name in the SASLInitialResponse.
    pub fn mechanism(&self) -> ScramMechanism {
        self.channel_binding.mechanism()
    }

    /// Whether the server's signature has been verified: the exchange succeeded.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Step 1: the client-first-message, `<gs2 header>n=<user>,r=<nonce>`, to send as the
    /// SASLInitialResponse data.
    ///
    /// Fails with [`ScramError::OutOfOrder`] if called twice or after a later step, or with
    /// [`ScramError::Random`] when no nonce was given and the random number generator fails.
    pub fn client_first(&mut self) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(out_of_order("client_first", self.state.name()));
        }
        let nonce = match self.nonce.take() {
            Some(n) => n,
            None => random_nonce()?,
        };
        let bare = format!("n={},r={}", self.user, nonce).into_bytes();
        let mut msg = self.channel_binding.gs2_header().as_bytes().to_vec();
        msg.extend_from_slice(&bare);
        self.state = State::FirstSent {
            client_first_bare: bare,
            nonce,
        };
        Ok(msg)
    }

    /// Step 2: checks the server-first-message and returns the client-final-message, to send
    /// as the SASLResponse data.
    ///
    /// Refuses a mandatory extension (`m=`), a nonce that does not start with the client's or
    /// adds nothing to it, a salt that is not base64, and an iteration count of 0 or above the
    /// bound; extensions after the iteration count are ignored, as the RFC requires.
    ///
    /// Fails with [`ScramError::OutOfOrder`] unless [`client_first`](Self::client_first) came
    /// just before, and otherwise with [`ScramError::UnsupportedExtension`],
    /// [`ScramError::NonceMismatch`], [`ScramError::IterationCount`] or
    /// [`ScramError::Malformed`] for the refusals above; after any of these but the first, the
    /// exchange is over.
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        // From here on, any error leaves the exchange failed.
        let (client_first_bare, nonce) = match std::mem::replace(&mut self.state, State::Failed) {
            State::FirstSent {
                client_first_bare,
                nonce,
            } => (client_first_bare, nonce),
            other => {
                let err = out_of_order("handle_server_first", other.name());
                self.state = other;
                return Err(err);
            }
        };
        const MSG: &str = "server-first-message";
        let mut attrs = Attributes::new(MSG, data);
        if attrs.peek() == Some(b'm') {
            return Err(ScramError::UnsupportedExtension { message: MSG });
        }
        let full_nonce = attrs.expect(b'r', "expected nonce (r=)")?;
        if !is_printable(full_nonce) {
            return Err(attrs.malformed("nonce has non-printable characters"));
        }
        if full_nonce.len() <= nonce.len() || !full_nonce.starts_with(nonce.as_bytes()) {
            return Err(ScramError::NonceMismatch { message: MSG });
        }
        let salt = b64_decode(
            attrs.expect(b's', "expected salt (s=)")?,
            MSG,
            "invalid salt",
        )?;
        if salt.is_empty() {
            return Err(attrs.malformed("empty salt"));
        }
        let count = attrs.expect(b'i', "expected iteration count (i=)")?;
        let iterations =
            parse_count(count).ok_or_else(|| attrs.malformed("invalid iteration count"))?;
        // Checked before anything is derived or sent: a count below the bound would make the
        // proof cheap to brute-force, one above it would make the client spin.
        if iterations < u64::from(self.min_iterations.max(1))
            || iterations > u64::from(self.max_iterations)
        {
            return Err(ScramError::IterationCount {
                count: iterations,
                min: self.min_iterations.max(1),
                max: self.max_iterations,
            });
        }
        attrs.skip_extensions()?;

        // The bound above keeps the count within u32.
        let iterations = u32::try_from(iterations).unwrap_or(self.max_iterations);
        let keys = Keys::derive(&self.password, &salt, iterations);
        self.password.fill(0);
        self.password.clear();

        let mut without_proof = b"c=".to_vec();
        without_proof
            .extend_from_slice(BASE64.encode(self.channel_binding.cbind_input()).as_bytes());
        without_proof.extend_from_slice(b",r=");
        without_proof.extend_from_slice(full_nonce);
        let (client_signature, server_signature) = signatures(
            &keys.stored_key,
            &keys.server_key,
            &client_first_bare,
            data,
            &without_proof,
        );
        let proof = xor(&keys.client_key, &client_signature);
        let mut msg = without_proof;
        msg.extend_from_slice(b",p=");
        msg.extend_from_slice(BASE64.encode(proof).as_bytes());
        self.state = State::FinalSent { server_signature };
        Ok(msg)
    }

    /// Step 3: checks the server-final-message. `e=` is the server's refusal
    /// ([`ScramError::Server`]); `v=` must carry the expected server signature (compared in
    /// constant time), or the server does not know the password
    /// ([`ScramError::InvalidServerSignature`]).
    pub fn handle_server_final(&mut self, data: &[u8]) -> Result<(), ScramError> {
        let State::FinalSent { server_signature } = self.state else {
            return Err(out_of_order("handle_server_final", self.state.name()));
        };
        // From here on, any error leaves the exchange failed.
        self.state = State::Failed;
        const MSG: &str = "server-final-message";
        let mut attrs = Attributes::new(MSG, data);
        match attrs.next_any()? {
            Some((b'e', reason)) => Err(ScramError::Server {
                reason: String::from_utf8_lossy(reason).into_owned(),
            }),
            Some((b'v', value)) => {
                let received = b64_key(value, MSG, "invalid server signature encoding")?;
                attrs.skip_extensions()?;
                if !ct_eq(&received, &server_signature) {
                    return Err(ScramError::InvalidServerSignature);
                }
                self.state = State::Complete;
                Ok(())
            }
            _ => Err(attrs.malformed("expected verifier (v=) or error (e=)")),
        }
    }
}

/// A run of ASCII digits as a number, saturating at `u64::MAX`; `None` if empty or not digits.
fn parse_count(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predicate over the error a case must produce.
    type Check = fn(&ScramError) -> bool;

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_client() -> ScramClient {
        ScramClient::new("pencil", ChannelBinding::None)
            .with_nonce(NONCE)
            .unwrap()
            .with_user_name("user")
    }

    /// A client that has sent its first message, with the RFC's nonce.
    fn started(cb: ChannelBinding) -> ScramClient {
        let mut c = ScramClient::new("pencil", cb).with_nonce(NONCE).unwrap();
        c.client_first().unwrap();
        c
    }

    #[test]
    fn rfc7677_exchange() {
        let mut c = rfc_client();
        assert_eq!(c.mechanism(), ScramMechanism::ScramSha256);
        assert_eq!(
            c.client_first().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        assert_eq!(c.handle_server_first(SERVER_FIRST).unwrap(), CLIENT_FINAL);
        assert!(!c.is_complete());
        c.handle_server_final(SERVER_FINAL).unwrap();
        assert!(c.is_complete());
    }

    #[test]
    fn default_user_name_is_empty_and_nonce_random() {
        let mut a = ScramClient::new("pencil", ChannelBinding::None);
        let mut b = ScramClient::new("pencil", ChannelBinding::None);
        let (fa, fb) = (a.client_first().unwrap(), b.client_first().unwrap());
        assert!(fa.starts_with(b"n,,n=,r="));
        assert_eq!(fa.len(), 8 + 24);
        assert_ne!(fa, fb);
    }

    #[test]
    fn gs2_headers_and_mechanisms() {
        let mut c = started(ChannelBinding::SupportedButNotUsed);
        assert_eq!(c.mechanism(), ScramMechanism::ScramSha256);
        let fin = c.handle_server_first(SERVER_FIRST).unwrap();
        assert!(fin.starts_with(b"c=eSws,r=")); // base64("y,,")

        let mut c = ScramClient::new("pencil", ChannelBinding::TlsServerEndPoint(vec![0xab; 32]));
        assert_eq!(c.mechanism(), ScramMechanism::ScramSha256Plus);
        let first = c.client_first().unwrap();
        assert!(first.starts_with(b"p=tls-server-end-point,,n=,r="));
        let mut c = ScramClient::new("pencil", ChannelBinding::TlsServerEndPoint(vec![0xab; 32]))
            .with_nonce(NONCE)
            .unwrap();
        c.client_first().unwrap();
        let fin = c.handle_server_first(SERVER_FIRST).unwrap();
        let mut cbind = b"p=tls-server-end-point,,".to_vec();
        cbind.extend_from_slice(&[0xab; 32]);
        let expected = format!("c={},r=", BASE64.encode(&cbind));
        assert!(fin.starts_with(expected.as_bytes()));
    }

    #[test]
    fn negotiate_follows_libpq() {
        let h = || Some(vec![1u8; 32]);
        assert_eq!(
            ChannelBinding::negotiate(true, h()),
            ChannelBinding::TlsServerEndPoint(vec![1; 32])
        );
        assert_eq!(
            ChannelBinding::negotiate(false, h()),
            ChannelBinding::SupportedButNotUsed
        );
        assert_eq!(ChannelBinding::negotiate(true, None), ChannelBinding::None);
        assert_eq!(ChannelBinding::negotiate(false, None), ChannelBinding::None);
    }

    #[test]
    fn user_name_is_escaped() {
        let mut c = ScramClient::new("x", ChannelBinding::None)
            .with_nonce("abc")
            .unwrap()
            .with_user_name("a=b,c");
        assert_eq!(c.client_first().unwrap(), b"n,,n=a=3Db=2Cc,r=abc");
    }

    #[test]
    fn invalid_injected_nonces() {
        for bad in ["", "a,b", "a b", "caf\u{e9}", "\x7f"] {
            let r = ScramClient::new("x", ChannelBinding::None).with_nonce(bad);
            assert_eq!(r.unwrap_err(), ScramError::InvalidNonce, "{bad:?}");
        }
    }

    #[test]
    fn forged_server_signature() {
        let mut c = rfc_client();
        c.client_first().unwrap();
        c.handle_server_first(SERVER_FIRST).unwrap();
        let err = c
            .handle_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert_eq!(err, ScramError::InvalidServerSignature);
        assert!(!c.is_complete());
        // The exchange is over.
        assert!(matches!(
            c.handle_server_final(SERVER_FINAL),
            Err(ScramError::OutOfOrder {
                state: "failed",
                ..
            })
        ));
    }

    #[test]
    fn server_error_and_malformed_final() {
        let cases: &[(&[u8], Check)] = &[
            (
                b"e=invalid-proof",
                |e| matches!(e, ScramError::Server { reason } if reason == "invalid-proof"),
            ),
            (b"", |e| matches!(e, ScramError::Malformed { .. })),
            (b"x=1", |e| matches!(e, ScramError::Malformed { .. })),
            (b"v=", |e| matches!(e, ScramError::Malformed { .. })),
            (b"v=!!!!", |e| matches!(e, ScramError::Malformed { .. })),
            (b"v=AAAA", |e| matches!(e, ScramError::Malformed { .. })), // 3 bytes, not 32
            (b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,", |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (b"\xff\xfe", |e| matches!(e, ScramError::Malformed { .. })),
            (b"e=\xff", |e| matches!(e, ScramError::Server { .. })),
        ];
        for (msg, check) in cases {
            let mut c = rfc_client();
            c.client_first().unwrap();
            c.handle_server_first(SERVER_FIRST).unwrap();
            let err = c.handle_server_final(msg).unwrap_err();
            assert!(check(&err), "{:?}: {err:?}", String::from_utf8_lossy(msg));
            assert!(!c.is_complete());
        }
        // Extensions after the verifier are ignored.
        let mut c = rfc_client();
        c.client_first().unwrap();
        c.handle_server_first(SERVER_FIRST).unwrap();
        c.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=y")
            .unwrap();
    }

    #[test]
    fn server_first_rejections() {
        let s = "W22ZaJ0SNY7soEsUEjb6gQ==";
        let n = "rOprNGfwEbeRWgbNEkqO";
        let cases: Vec<(String, Check)> = vec![
            // The nonce must extend ours.
            (format!("r={n},s={s},i=4096"), |e| {
                matches!(e, ScramError::NonceMismatch { .. })
            }),
            (format!("r=XOprNGfwEbeRWgbNEkqOabc,s={s},i=4096"), |e| {
                matches!(e, ScramError::NonceMismatch { .. })
            }),
            (format!("r=rOprNG,s={s},i=4096"), |e| {
                matches!(e, ScramError::NonceMismatch { .. })
            }),
            (format!("r={n}a\x01b,s={s},i=4096"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            // Iteration counts.
            (format!("r={n}x,s={s},i=0"), |e| {
                matches!(
                    e,
                    ScramError::IterationCount {
                        count: 0,
                        min: 4096,
                        max: 600_000
                    }
                )
            }),
            (format!("r={n}x,s={s},i=600001"), |e| {
                matches!(e, ScramError::IterationCount { count: 600_001, .. })
            }),
            (format!("r={n}x,s={s},i=99999999999999999999999"), |e| {
                matches!(
                    e,
                    ScramError::IterationCount {
                        count: u64::MAX,
                        ..
                    }
                )
            }),
            (format!("r={n}x,s={s},i=-1"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s={s},i= 1"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s={s},i="), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s={s}"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            // Salt.
            (format!("r={n}x,s=not base64!,i=4096"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s=,i=4096"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            // Structure.
            (format!("m=ext,r={n}x,s={s},i=4096"), |e| {
                matches!(e, ScramError::UnsupportedExtension { .. })
            }),
            (format!("s={s},r={n}x,i=4096"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,i=4096,s={s}"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s={s},i=4096,"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (format!("r={n}x,s={s},i=4096,garbage"), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
            (String::new(), |e| matches!(e, ScramError::Malformed { .. })),
            ("e=other-error".into(), |e| {
                matches!(e, ScramError::Malformed { .. })
            }),
        ];
        for (msg, check) in cases {
            let mut c = started(ChannelBinding::None);
            let err = c.handle_server_first(msg.as_bytes()).unwrap_err();
            assert!(check(&err), "{msg:?}: {err:?}");
            // A failed exchange stays failed.
            assert!(matches!(
                c.handle_server_final(SERVER_FINAL),
                Err(ScramError::OutOfOrder { .. })
            ));
        }
        // Non-UTF-8 bytes anywhere are rejected without a panic.
        let mut c = started(ChannelBinding::None);
        assert!(c
            .handle_server_first(b"r=rOprNGfwEbeRWgbNEkqO\xff,s=AA==,i=1")
            .is_err());
    }

    #[test]
    fn iteration_bound_is_configurable_and_extensions_ignored() {
        let msg = b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=ext";
        let mut c = ScramClient::new("pencil", ChannelBinding::None)
            .with_nonce(NONCE)
            .unwrap()
            .with_max_iterations(4095);
        c.client_first().unwrap();
        assert_eq!(
            c.handle_server_first(msg).unwrap_err(),
            ScramError::IterationCount {
                count: 4096,
                min: 4096,
                max: 4095
            }
        );
        let mut c = started(ChannelBinding::None);
        assert!(c.handle_server_first(msg).is_ok());

        // Below the lower bound: refused before any proof is computed or sent. RFC 7677's
        // minimum (4,096, PostgreSQL's default) is accepted by default; lower counts only when
        // allowed.
        let low = b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095";
        let mut c = started(ChannelBinding::None);
        assert_eq!(
            c.handle_server_first(low).unwrap_err(),
            ScramError::IterationCount {
                count: 4095,
                min: 4096,
                max: 600_000
            }
        );
        let mut c = ScramClient::new("pencil", ChannelBinding::None)
            .with_nonce(NONCE)
            .unwrap()
            .with_min_iterations(1);
        c.client_first().unwrap();
        assert!(c.handle_server_first(low).is_ok());
    }

    #[test]
    fn steps_out_of_order() {
        let mut c = rfc_client();
        assert!(matches!(
            c.handle_server_first(SERVER_FIRST),
            Err(ScramError::OutOfOrder {
                step: "handle_server_first",
                state: "initial"
            })
        ));
        // Calling a step too early is refused without spoiling the exchange.
        assert!(matches!(
            c.handle_server_final(SERVER_FINAL),
            Err(ScramError::OutOfOrder { .. })
        ));
        c.client_first().unwrap();
        assert!(matches!(
            c.client_first(),
            Err(ScramError::OutOfOrder { .. })
        ));
        c.handle_server_first(SERVER_FIRST).unwrap();
        assert!(matches!(
            c.handle_server_first(SERVER_FIRST),
            Err(ScramError::OutOfOrder { .. })
        ));
        c.handle_server_final(SERVER_FINAL).unwrap();
        assert!(matches!(
            c.handle_server_final(SERVER_FINAL),
            Err(ScramError::OutOfOrder {
                state: "complete",
                ..
            })
        ));
        assert!(matches!(
            c.client_first(),
            Err(ScramError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = ScramClient::new("hunter2", ChannelBinding::TlsServerEndPoint(vec![1, 2]));
        let s = format!("{c:?}");
        assert!(
            !s.contains("hunter2") && s.contains("TlsServerEndPoint(2 bytes)"),
            "{s}"
        );
    }
}
