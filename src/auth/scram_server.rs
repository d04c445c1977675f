//! The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS.

use std::fmt;

use base64::Engine as _;

use super::verifier::ScramVerifier;
use super::{
    b64_decode, b64_key, check_nonce, ct_eq, is_printable, out_of_order, random_nonce, sha256,
    signatures, xor, Attributes, ScramError, ScramMechanism, BASE64, TLS_SERVER_END_POINT,
};

/// The server side of a SCRAM-SHA-256 exchange, checking a client against a stored
/// [`ScramVerifier`].
///
/// 1. [`handle_client_first`](Self::handle_client_first): takes the SASLInitialResponse's
///    mechanism and data, returns the AuthenticationSASLContinue data.
/// 2. [`handle_client_final`](Self::handle_client_final): takes the SASLResponse data, checks the
///    channel binding, nonce and proof, and returns the AuthenticationSASLFinal data, to be
///    followed by AuthenticationOk.
///
/// On an error, the server role sends an ErrorResponse with [`ScramError::sqlstate`] (28P01 for
/// a wrong password) and closes the connection. For a user that does not exist, or whose stored
/// password is not a usable SCRAM verifier, run a [`ScramServer::doomed`] exchange instead of
/// refusing at once: the client cannot tell the difference from a wrong password.
#[derive(Clone)]
pub struct ScramServer {
    verifier: ScramVerifier,
    doomed: bool,
    /// Injected server nonce; drawn from the operating system at the first step otherwise.
    nonce: Option<String>,
    state: State,
}

#[derive(Clone)]
enum State {
    Initial,
    FirstSent {
        client_first_bare: Vec<u8>,
        server_first: Vec<u8>,
        /// The client's nonce followed by the server's.
        nonce: Vec<u8>,
        /// The gs2 header followed by the channel binding data the client must echo in `c=`.
        cbind_input: Vec<u8>,
    },
    Complete,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::FirstSent { .. } => "server-first sent",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("verifier", &self.verifier)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// An exchange against this user's verifier. The server nonce is drawn from the operating
    /// system when [`handle_client_first`](Self::handle_client_first) runs.
    pub fn new(verifier: ScramVerifier) -> Self {
        Self {
            verifier,
            doomed: false,
            nonce: None,
            state: State::Initial,
        }
    }

    /// An exchange that looks like any other on the wire but always ends in
    /// [`ScramError::AuthenticationFailed`] at the final step, as a wrong password would, so that
    /// a client cannot learn which user names exist. PostgreSQL does the same ("mock
    /// authentication").
    ///
    /// The fake salt is derived from `secret` and `user` (HMAC-SHA-256), so a client that asks
    /// twice sees the same salt, as it would for a real user. `secret` should be at least 32
    /// random bytes made once per server process (or stored with the server's data) and never
    /// shown; a secret made afresh per connection would give the game away through the salt.
    /// `iterations` should be what real verifiers use, normally
    /// [`crate::auth::DEFAULT_ITERATIONS`]; it is clamped to 1 to 2^31 - 1.
    pub fn doomed(user: &[u8], secret: &[u8], iterations: u32) -> Self {
        Self {
            doomed: true,
            ..Self::new(ScramVerifier::mock(user, secret, iterations))
        }
    }

    /// Uses this server nonce (the part appended to the client's) instead of a random one, for
    /// deterministic tests. It must be non-empty printable ASCII without commas
    /// ([`ScramError::InvalidNonce`] otherwise). Never reuse a nonce on a real connection.
    pub fn with_nonce(mut self, nonce: &str) -> Result<Self, ScramError> {
        self.nonce = Some(check_nonce(nonce)?);
        Ok(self)
    }

    /// Whether this is a [`doomed`](Self::doomed) exchange, for the server's own log.
    pub fn is_doomed(&self) -> bool {
        self.doomed
    }

    /// Whether the client has proved it knows the password.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Step 1: checks the client-first-message and returns the server-first-message
    /// (`r=<client nonce><server nonce>,s=<salt>,i=<iterations>`).
    ///
    /// `mechanism` is the one the SASLInitialResponse named. `certificate_hash` is `Some` exactly
    /// when the server offered SCRAM-SHA-256-PLUS (the connection uses TLS), holding the
    /// `tls-server-end-point` hash of the server's certificate (see
    /// [`crate::auth::ChannelBinding::TlsServerEndPoint`]). The gs2 header rules, as PostgreSQL
    /// enforces them:
    ///
    /// - SCRAM-SHA-256-PLUS when it was not offered: [`ScramError::MechanismNotOffered`];
    /// - flag `n` or `y` with SCRAM-SHA-256-PLUS: [`ScramError::ChannelBindingMissing`];
    /// - flag `y` while PLUS was offered (a downgrade): [`ScramError::ChannelBindingDowngrade`];
    /// - flag `p` with SCRAM-SHA-256: [`ScramError::ChannelBindingUnexpected`];
    /// - flag `p` with a type other than `tls-server-end-point`:
    ///   [`ScramError::UnsupportedChannelBindingType`];
    /// - an authorization identity: [`ScramError::AuthzidNotSupported`];
    /// - a mandatory extension (`m=`): [`ScramError::UnsupportedExtension`].
    ///
    /// The user name (`n=`) is ignored, as PostgreSQL ignores it; the nonce must be printable.
    pub fn handle_client_first(
        &mut self,
        data: &[u8],
        mechanism: ScramMechanism,
        certificate_hash: Option<&[u8]>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(out_of_order("handle_client_first", self.state.name()));
        }
        let server_nonce = match self.nonce.take() {
            Some(n) => n,
            None => random_nonce()?,
        };
        // From here on, any error leaves the exchange failed.
        self.state = State::Failed;

        const MSG: &str = "client-first-message";
        let malformed = |reason| ScramError::Malformed {
            message: MSG,
            reason,
        };
        let plus = mechanism == ScramMechanism::ScramSha256Plus;
        let cert_hash = match (plus, certificate_hash) {
            (true, None) => return Err(ScramError::MechanismNotOffered { mechanism }),
            (true, Some(hash)) => hash,
            (false, _) => &[],
        };

        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let after_flag = match data.first() {
            Some(b'n' | b'y') if plus => return Err(ScramError::ChannelBindingMissing),
            Some(b'y') if certificate_hash.is_some() => {
                return Err(ScramError::ChannelBindingDowngrade)
            }
            Some(b'n' | b'y') => 1,
            Some(b'p') if !plus => return Err(ScramError::ChannelBindingUnexpected),
            Some(b'p') => {
                let name_end = memchr::memchr(b',', data)
                    .ok_or(malformed("unterminated channel binding flag"))?;
                match &data[1..name_end] {
                    [b'=', name @ ..] if name == TLS_SERVER_END_POINT.as_bytes() => name_end,
                    [b'=', ..] => return Err(ScramError::UnsupportedChannelBindingType),
                    _ => return Err(malformed("expected p=<channel binding type>")),
                }
            }
            Some(_) => return Err(malformed("unexpected channel binding flag")),
            None => return Err(malformed("empty message")),
        };
        if data.get(after_flag) != Some(&b',') {
            return Err(malformed("expected a comma after the channel binding flag"));
        }
        let header_len = match data.get(after_flag + 1) {
            Some(b',') => after_flag + 2,
            Some(b'a') => return Err(ScramError::AuthzidNotSupported),
            _ => return Err(malformed("expected a comma after the gs2 header")),
        };

        let bare = &data[header_len..];
        let mut attrs = Attributes::new(MSG, bare);
        if attrs.peek() == Some(b'm') {
            return Err(ScramError::UnsupportedExtension { message: MSG });
        }
        attrs.expect(b'n', "expected user name (n=)")?;
        let client_nonce = attrs.expect(b'r', "expected nonce (r=)")?;
        if client_nonce.is_empty() || !is_printable(client_nonce) {
            return Err(malformed("the nonce is empty or not printable"));
        }
        attrs.skip_extensions()?;

        let mut nonce = client_nonce.to_vec();
        nonce.extend_from_slice(server_nonce.as_bytes());
        let mut server_first = b"r=".to_vec();
        server_first.extend_from_slice(&nonce);
        server_first.extend_from_slice(
            format!(
                ",s={},i={}",
                BASE64.encode(self.verifier.salt()),
                self.verifier.iterations()
            )
            .as_bytes(),
        );
        let mut cbind_input = data[..header_len].to_vec();
        cbind_input.extend_from_slice(cert_hash);
        self.state = State::FirstSent {
            client_first_bare: bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
            cbind_input,
        };
        Ok(server_first)
    }

    /// Step 2: checks the client-final-message and returns the server-final-message
    /// (`v=<ServerSignature>`).
    ///
    /// `c=` must be the base64 of the gs2 header the client sent first plus, with
    /// SCRAM-SHA-256-PLUS, the certificate hash ([`ScramError::ChannelBindingMismatch`]); `r=`
    /// must be the combined nonce ([`ScramError::NonceMismatch`]); extensions before `p=` are
    /// ignored; `p=` must come last. The proof is checked as the RFC says, in constant time:
    /// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey, or the
    /// step fails with [`ScramError::AuthenticationFailed`] (as it always does when doomed).
    pub fn handle_client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        let (client_first_bare, server_first, nonce, cbind_input) =
            match std::mem::replace(&mut self.state, State::Failed) {
                State::FirstSent {
                    client_first_bare,
                    server_first,
                    nonce,
                    cbind_input,
                } => (client_first_bare, server_first, nonce, cbind_input),
                other => {
                    let err = out_of_order("handle_client_final", other.name());
                    self.state = other;
                    return Err(err);
                }
            };
        const MSG: &str = "client-final-message";
        let mut attrs = Attributes::new(MSG, data);
        let cbind = attrs.expect(b'c', "expected channel binding (c=)")?;
        let cbind = b64_decode(cbind, MSG, "invalid channel binding encoding")?;
        if !ct_eq(&cbind, &cbind_input) {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if attrs.expect(b'r', "expected nonce (r=)")? != nonce.as_slice() {
            return Err(ScramError::NonceMismatch { message: MSG });
        }
        let (proof_at, proof) = loop {
            let Some(at) = attrs.offset() else {
                return Err(attrs.malformed("expected proof (p=)"));
            };
            match attrs.next_any()? {
                Some((b'p', value)) => break (at, value),
                Some(_) => {} // an extension: ignored
                None => return Err(attrs.malformed("expected proof (p=)")),
            }
        };
        if attrs.offset().is_some() {
            return Err(attrs.malformed("attributes after the proof"));
        }
        let proof = b64_key(proof, MSG, "the proof is not 32 bytes of base64")?;
        // The proof is preceded by "," since "c=" and "r=" came first.
        let without_proof = &data[..proof_at.saturating_sub(1)];

        let v = &self.verifier;
        let (client_signature, server_signature) = signatures(
            v.stored_key(),
            v.server_key(),
            &client_first_bare,
            &server_first,
            without_proof,
        );
        let client_key = xor(&proof, &client_signature);
        let proof_ok = ct_eq(&sha256(&client_key), v.stored_key());
        if !proof_ok || self.doomed {
            return Err(ScramError::AuthenticationFailed);
        }
        self.state = State::Complete;
        let mut out = b"v=".to_vec();
        out.extend_from_slice(BASE64.encode(server_signature).as_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predicate over the error a case must produce.
    type Check = fn(&ScramError) -> bool;
    use crate::auth::{ChannelBinding, ScramClient, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN};

    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    // From a PostgreSQL 15.18 cluster (password_encryption = scram-sha-256):
    // CREATE ROLE x LOGIN PASSWORD 'secret'; SELECT rolpassword FROM pg_authid WHERE rolname = 'x';
    const PG15_SECRET: &str = "SCRAM-SHA-256$4096:SMzuUE3t+Tq8P9tn1uxPzQ==$\
        AIgTCHe8kIvan+CXeaG7kzMIOVGC32AhUjovDi09qD4=:ttkebnBa89Hbk01eDeKAL71VIzrswKRJwVB5EGtcWWY=";
    // Same cluster, PASSWORD E'pa\u00A0ss\u00ADw\u00F6rd' (SASLprep maps it to "pa ssw\u00f6rd").
    const PG15_MAPPED: &str = "SCRAM-SHA-256$4096:6+Z9xunL03UVeH/RL3ENSA==$\
        /OASJCCDrKBFYi4x9smd9mxZ6dgiT9Nz9FqoPDcNC6o=:vHPyGMBPwHxv/uj1ZnS7HzV54iw4Uu5zbAaWR/gTWVk=";
    // Same cluster, PASSWORD E'\uFB01x' (the ligature; NFKC makes it "fix").
    const PG15_LIGATURE: &str = "SCRAM-SHA-256$4096:PiCE7As5y5LoZhoov7Ex2g==$\
        l0GKxNvk0FOe3YrfZyhkVYHrMJoGrXsDpuTz0VeIsJY=:GW1rWetMGipKG54tH6jG9cCJ2IoFM6f3uXU1UbsVFus=";

    fn rfc_verifier() -> ScramVerifier {
        ScramVerifier::new("pencil", &BASE64.decode(SALT).unwrap(), 4096).unwrap()
    }

    fn rfc_server() -> ScramServer {
        ScramServer::new(rfc_verifier())
            .with_nonce(SERVER_NONCE)
            .unwrap()
    }

    /// Runs a whole exchange; returns the first error and which side raised it.
    fn exchange(
        client: &mut ScramClient,
        server: &mut ScramServer,
        mechanism: ScramMechanism,
        server_hash: Option<&[u8]>,
    ) -> Result<(), (&'static str, ScramError)> {
        let first = client.client_first().map_err(|e| ("client", e))?;
        let sf = server
            .handle_client_first(&first, mechanism, server_hash)
            .map_err(|e| ("server", e))?;
        let cf = client.handle_server_first(&sf).map_err(|e| ("client", e))?;
        let fin = server.handle_client_final(&cf).map_err(|e| ("server", e))?;
        client.handle_server_final(&fin).map_err(|e| ("client", e))
    }

    fn client(password: &str, cb: ChannelBinding) -> ScramClient {
        ScramClient::new(password, cb)
    }

    #[test]
    fn rfc7677_exchange() {
        let mut s = rfc_server();
        let sf = s
            .handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
            .unwrap();
        assert_eq!(sf, SERVER_FIRST);
        assert_eq!(s.handle_client_final(CLIENT_FINAL).unwrap(), SERVER_FINAL);
        assert!(s.is_complete());
    }

    #[test]
    fn exchanges_in_memory() {
        let hash = [7u8; 32];
        let plain = ScramMechanism::ScramSha256;
        let plus = ScramMechanism::ScramSha256Plus;
        let cases: Vec<(ChannelBinding, ScramMechanism, Option<&[u8]>)> = vec![
            (ChannelBinding::None, plain, None),
            (ChannelBinding::SupportedButNotUsed, plain, None),
            (ChannelBinding::None, plain, Some(&hash)), // 'n' is fine while PLUS is on offer
            (
                ChannelBinding::TlsServerEndPoint(hash.to_vec()),
                plus,
                Some(&hash),
            ),
        ];
        for (cb, mech, server_hash) in cases {
            let mut c = client("pencil", cb.clone());
            assert_eq!(c.mechanism(), mech);
            let mut s = ScramServer::new(rfc_verifier());
            exchange(&mut c, &mut s, mech, server_hash).unwrap();
            assert!(c.is_complete() && s.is_complete(), "{cb:?}");
        }
    }

    #[test]
    fn wrong_password_and_bad_proof() {
        let mut s = ScramServer::new(rfc_verifier());
        let err = exchange(
            &mut client("pencil2", ChannelBinding::None),
            &mut s,
            ScramMechanism::ScramSha256,
            None,
        );
        assert_eq!(err, Err(("server", ScramError::AuthenticationFailed)));
        assert_eq!(ScramError::AuthenticationFailed.sqlstate(), Some("28P01"));
        assert!(!s.is_complete());

        let mut s = rfc_server();
        s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
            .unwrap();
        let mut forged = CLIENT_FINAL.to_vec();
        let n = forged.len();
        forged[n - 3] = b'R'; // flip bits of the proof
        assert_eq!(
            s.handle_client_final(&forged),
            Err(ScramError::AuthenticationFailed)
        );
        assert!(matches!(
            s.handle_client_final(CLIENT_FINAL),
            Err(ScramError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn channel_binding_rules() {
        let hash = [7u8; 32];
        let plain = ScramMechanism::ScramSha256;
        let plus = ScramMechanism::ScramSha256Plus;
        let tls = || ChannelBinding::TlsServerEndPoint(hash.to_vec());
        let cases: Vec<(ChannelBinding, ScramMechanism, Option<&[u8]>, ScramError)> = vec![
            // 'y' while the server offered PLUS: a downgrade.
            (
                ChannelBinding::SupportedButNotUsed,
                plain,
                Some(&hash),
                ScramError::ChannelBindingDowngrade,
            ),
            // 'p' with the plain mechanism.
            (
                tls(),
                plain,
                Some(&hash),
                ScramError::ChannelBindingUnexpected,
            ),
            (tls(), plain, None, ScramError::ChannelBindingUnexpected),
            // PLUS without binding data, or when it was not offered.
            (
                ChannelBinding::None,
                plus,
                Some(&hash),
                ScramError::ChannelBindingMissing,
            ),
            (
                ChannelBinding::SupportedButNotUsed,
                plus,
                Some(&hash),
                ScramError::ChannelBindingMissing,
            ),
            (
                tls(),
                plus,
                None,
                ScramError::MechanismNotOffered { mechanism: plus },
            ),
            // The client saw a different certificate (a man in the middle).
            (
                ChannelBinding::TlsServerEndPoint(vec![8; 32]),
                plus,
                Some(&hash),
                ScramError::ChannelBindingMismatch,
            ),
        ];
        for (cb, mech, server_hash, want) in cases {
            let mut s = ScramServer::new(rfc_verifier());
            let got = exchange(&mut client("pencil", cb.clone()), &mut s, mech, server_hash);
            assert_eq!(got, Err(("server", want)), "{cb:?} {mech}");
        }
        assert_eq!(
            ScramError::ChannelBindingDowngrade.sqlstate(),
            Some("28000")
        );
    }

    #[test]
    fn cbind_data_must_match_the_first_header() {
        // Header 'y' first, then c= of "n,,".
        let mut s = rfc_server();
        s.handle_client_first(b"y,,n=,r=abc", ScramMechanism::ScramSha256, None)
            .unwrap();
        let fin = format!("c=biws,r=abc{SERVER_NONCE},p={}", BASE64.encode([0u8; 32]));
        assert_eq!(
            s.handle_client_final(fin.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
        // PLUS, but c= carries only the header.
        let mut s = rfc_server();
        s.handle_client_first(
            b"p=tls-server-end-point,,n=,r=abc",
            ScramMechanism::ScramSha256Plus,
            Some(&[1; 32]),
        )
        .unwrap();
        let fin = format!(
            "c={},r=abc{SERVER_NONCE},p={}",
            BASE64.encode("p=tls-server-end-point,,"),
            BASE64.encode([0u8; 32])
        );
        assert_eq!(
            s.handle_client_final(fin.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
    }

    #[test]
    fn client_first_rejections() {
        let plain = ScramMechanism::ScramSha256;
        let plus = ScramMechanism::ScramSha256Plus;
        let h: Option<&[u8]> = Some(&[1; 32]);
        let malformed = |e: &ScramError| matches!(e, ScramError::Malformed { .. });
        type Case<'a> = (&'a [u8], ScramMechanism, Option<&'a [u8]>, Check);
        let cases: &[Case] = &[
            (b"", plain, None, malformed),
            (b"x,,n=,r=abc", plain, None, malformed),
            (b"n", plain, None, malformed),
            (b"n,", plain, None, malformed),
            (b"n;,n=,r=abc", plain, None, malformed),
            (b"n,,", plain, None, malformed),
            (b"n,,n=", plain, None, malformed),
            (b"n,,n=,r=", plain, None, malformed),
            (b"n,,n=,r=a\x01b", plain, None, malformed),
            (b"n,,n=,r=caf\xc3\xa9", plain, None, malformed),
            (b"n,,r=abc", plain, None, malformed),
            (b"n,,n=,r=abc,", plain, None, malformed),
            (b"n,,n=,r=abc,junk", plain, None, malformed),
            (b"\xff\xfe\x00", plain, None, malformed),
            (b"p", plus, h, malformed),
            (b"p,,n=,r=abc", plus, h, malformed),
            (b"p=tls-unique,,n=,r=abc", plus, h, |e| {
                *e == ScramError::UnsupportedChannelBindingType
            }),
            (b"p=,,n=,r=abc", plus, h, |e| {
                *e == ScramError::UnsupportedChannelBindingType
            }),
            (b"n,a=admin,n=,r=abc", plain, None, |e| {
                *e == ScramError::AuthzidNotSupported
            }),
            (b"n,a=,n=,r=abc", plain, None, |e| {
                *e == ScramError::AuthzidNotSupported
            }),
            (b"n,,m=ext,n=,r=abc", plain, None, |e| {
                matches!(e, ScramError::UnsupportedExtension { .. })
            }),
        ];
        for (msg, mech, hash, check) in cases {
            let mut s = rfc_server();
            let err = s.handle_client_first(msg, *mech, *hash).unwrap_err();
            assert!(check(&err), "{:?}: {err:?}", String::from_utf8_lossy(msg));
            assert!(err.sqlstate().is_some());
            assert!(matches!(
                s.handle_client_final(CLIENT_FINAL),
                Err(ScramError::OutOfOrder { .. })
            ));
        }
        // Extensions after the nonce are ignored; the user name is not looked at.
        let mut s = rfc_server();
        s.handle_client_first(b"y,,n=whoever=2C,r=abc,x=1", plain, None)
            .unwrap();
    }

    #[test]
    fn client_final_rejections() {
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let n = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let nonce = |e: &ScramError| matches!(e, ScramError::NonceMismatch { .. });
        let malformed = |e: &ScramError| matches!(e, ScramError::Malformed { .. });
        let cases: Vec<(String, Check)> = vec![
            (format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,p={proof}"), nonce),
            (format!("c=biws,r={n}x,p={proof}"), nonce),
            (format!("c=biws,r=,p={proof}"), nonce),
            (format!("c=biws,p={proof}"), malformed),
            (format!("r={n},c=biws,p={proof}"), malformed),
            (format!("c=biws,r={n}"), malformed),
            (format!("c=biws,r={n},"), malformed),
            (format!("c=biws,r={n},p={proof},x=1"), malformed),
            (format!("c=biws,r={n},p={proof},"), malformed),
            (format!("c=biws,r={n},p="), malformed),
            (format!("c=biws,r={n},p=AAAA"), malformed),
            (format!("c=biws,r={n},p=not base64"), malformed),
            (format!("c=!!,r={n},p={proof}"), malformed),
            (format!("c=,r={n},p={proof}"), |e| {
                *e == ScramError::ChannelBindingMismatch
            }),
            (format!("c=eSws,r={n},p={proof}"), |e| {
                *e == ScramError::ChannelBindingMismatch
            }),
            (String::new(), malformed),
            ("\u{fffd}".into(), malformed),
        ];
        for (msg, check) in cases {
            let mut s = rfc_server();
            s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
                .unwrap();
            let err = s.handle_client_final(msg.as_bytes()).unwrap_err();
            assert!(check(&err), "{msg:?}: {err:?}");
            assert!(!s.is_complete());
        }
        // An extension before the proof is ignored, but it is part of the signed message,
        // so the RFC proof no longer matches.
        let mut s = rfc_server();
        s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
            .unwrap();
        let msg = format!("c=biws,r={n},x=1,p={proof}");
        assert_eq!(
            s.handle_client_final(msg.as_bytes()),
            Err(ScramError::AuthenticationFailed)
        );
    }

    #[test]
    fn doomed_exchange_fails_only_at_the_end() {
        let secret = [42u8; 32];
        let mut s = ScramServer::doomed(b"nobody", &secret, DEFAULT_ITERATIONS);
        assert!(s.is_doomed());
        let mut c = client("anything", ChannelBinding::None)
            .with_nonce("abc")
            .unwrap();
        let first = c.client_first().unwrap();
        let sf = s
            .handle_client_first(&first, ScramMechanism::ScramSha256, None)
            .unwrap();
        let text = String::from_utf8(sf.clone()).unwrap();
        // Same shape as a real server-first-message: 24-character nonce, 16-byte salt, 4096.
        let parts: Vec<&str> = text.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), 2 + 3 + 24);
        assert_eq!(
            BASE64.decode(&parts[1][2..]).unwrap().len(),
            DEFAULT_SALT_LEN
        );
        assert_eq!(parts[2], "i=4096");
        let cf = c.handle_server_first(&sf).unwrap();
        assert_eq!(
            s.handle_client_final(&cf),
            Err(ScramError::AuthenticationFailed)
        );

        // The salt is stable per user and secret, and differs between users and secrets.
        let salt = |user: &[u8], secret: &[u8]| {
            let mut s = ScramServer::doomed(user, secret, DEFAULT_ITERATIONS);
            let sf = s
                .handle_client_first(b"n,,n=,r=abc", ScramMechanism::ScramSha256, None)
                .unwrap();
            String::from_utf8(sf)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(salt(b"nobody", &secret), salt(b"nobody", &secret));
        assert_ne!(salt(b"nobody", &secret), salt(b"nobody2", &secret));
        assert_ne!(salt(b"nobody", &secret), salt(b"nobody", &[43; 32]));
        // A doomed exchange fails even when the proof is right.
        let mut s = ScramServer {
            doomed: true,
            ..rfc_server()
        };
        s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
            .unwrap();
        assert_eq!(
            s.handle_client_final(CLIENT_FINAL),
            Err(ScramError::AuthenticationFailed)
        );
    }

    #[test]
    fn steps_out_of_order() {
        let mut s = rfc_server();
        assert!(matches!(
            s.handle_client_final(CLIENT_FINAL),
            Err(ScramError::OutOfOrder {
                step: "handle_client_final",
                state: "initial"
            })
        ));
        s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None)
            .unwrap();
        assert!(matches!(
            s.handle_client_first(CLIENT_FIRST, ScramMechanism::ScramSha256, None),
            Err(ScramError::OutOfOrder { .. })
        ));
        s.handle_client_final(CLIENT_FINAL).unwrap();
        assert!(matches!(
            s.handle_client_final(CLIENT_FINAL),
            Err(ScramError::OutOfOrder {
                state: "complete",
                ..
            })
        ));
        assert_eq!(
            ScramServer::new(rfc_verifier())
                .with_nonce("a,b")
                .unwrap_err(),
            ScramError::InvalidNonce
        );
    }

    #[test]
    fn real_postgresql_15_verifier() {
        let v = ScramVerifier::parse(PG15_SECRET).unwrap();
        // Same password, salt and count give exactly PostgreSQL's stored form.
        assert_eq!(
            ScramVerifier::new("secret", v.salt(), 4096)
                .unwrap()
                .to_string(),
            PG15_SECRET
        );
        assert!(v.verify_password("secret") && !v.verify_password("Secret"));
        let mut s = ScramServer::new(v.clone());
        exchange(
            &mut client("secret", ChannelBinding::None),
            &mut s,
            ScramMechanism::ScramSha256,
            None,
        )
        .unwrap();
        let mut s = ScramServer::new(v);
        let err = exchange(
            &mut client("Secret", ChannelBinding::None),
            &mut s,
            ScramMechanism::ScramSha256,
            None,
        );
        assert_eq!(err, Err(("server", ScramError::AuthenticationFailed)));
    }

    #[test]
    fn real_postgresql_15_saslprep() {
        // Mapping (NBSP to space, soft hyphen removed) matches PostgreSQL.
        let v = ScramVerifier::parse(PG15_MAPPED).unwrap();
        let pw = "pa\u{a0}ss\u{ad}w\u{f6}rd";
        assert_eq!(
            ScramVerifier::new(pw, v.salt(), 4096).unwrap().to_string(),
            PG15_MAPPED
        );
        let mut s = ScramServer::new(v);
        exchange(
            &mut client(pw, ChannelBinding::None),
            &mut s,
            ScramMechanism::ScramSha256,
            None,
        )
        .unwrap();
        // NFKC: PostgreSQL stored the ligature's normalized form ("fix"); the raw ligature
        // and its normalized form both verify, and the SCRAM exchange succeeds.
        let v = ScramVerifier::parse(PG15_LIGATURE).unwrap();
        assert!(v.verify_password("fix"));
        assert!(v.verify_password("\u{fb01}x"));
        assert!(!v.verify_password("\u{fb01}y"));
        assert_eq!(
            ScramVerifier::new("\u{fb01}x", v.salt(), 4096)
                .unwrap()
                .to_string(),
            PG15_LIGATURE
        );
        exchange(
            &mut client("\u{fb01}x", ChannelBinding::None),
            &mut ScramServer::new(v),
            ScramMechanism::ScramSha256,
            None,
        )
        .unwrap();
    }
}
