//! The stored SCRAM-SHA-256 secret (`pg_authid.rolpassword`): parsing, printing and making one.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use super::{ct_eq, hmac, random_bytes, Key, Keys, ScramError, BASE64};

/// The iteration count of new verifiers: 4,096, PostgreSQL's default (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The salt length of new verifiers: 16 bytes, as PostgreSQL makes them.
pub const DEFAULT_SALT_LEN: usize = 16;

/// The largest iteration count PostgreSQL can store (its setting is a 32-bit signed integer).
pub(super) const MAX_ITERATIONS: u32 = i32::MAX as u32;

const PREFIX: &str = "SCRAM-SHA-256$";

/// A stored SCRAM-SHA-256 secret, in PostgreSQL's (and RFC 5803's) text form
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, with base64 salt and keys.
///
/// It does not contain the password, but it lets whoever holds it pose as the server, and it
/// can be attacked offline: keep it as secret as PostgreSQL keeps `pg_authid`. `Debug` shows
/// only the iteration count and salt length.
///
/// ```
/// use pgproto::auth::ScramVerifier;
/// let v = ScramVerifier::new("secret", b"0123456789abcdef", 4096).unwrap();
/// let text = v.to_string();
/// assert!(text.starts_with("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"));
/// assert_eq!(ScramVerifier::parse(&text).unwrap(), v);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Key,
    server_key: Key,
}

impl ScramVerifier {
    /// The verifier for `password` with this salt and iteration count: what PostgreSQL stores
    /// for `CREATE ROLE ... PASSWORD` with `password_encryption = scram-sha-256`, given the same
    /// salt. The password goes through [`crate::auth::saslprep`] first, as on the client side.
    ///
    /// The salt must not be empty and the count must be between 1 and 2^31 - 1: fails with
    /// [`ScramError::InvalidVerifier`] otherwise.
    pub fn new(
        password: impl AsRef<[u8]>,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramError> {
        if salt.is_empty() {
            return Err(invalid("the salt is empty"));
        }
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(invalid(
                "the iteration count is not between 1 and 2147483647",
            ));
        }
        let keys = Keys::derive(password.as_ref(), salt, iterations);
        Ok(Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        })
    }

    /// A verifier with a random 16-byte salt and [`DEFAULT_ITERATIONS`], as PostgreSQL makes
    /// one by default. Fails only if the operating system's random number generator does.
    pub fn generate(password: impl AsRef<[u8]>) -> Result<Self, ScramError> {
        let mut salt = [0u8; DEFAULT_SALT_LEN];
        random_bytes(&mut salt)?;
        Self::new(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Parses the stored form. Base64 must be strict (standard alphabet, with padding, as
    /// PostgreSQL writes it), the keys 32 bytes, the salt non-empty and the count between 1 and
    /// 2^31 - 1; anything else is [`ScramError::InvalidVerifier`]. PostgreSQL treats a stored
    /// secret it cannot parse like an unknown user: see [`crate::auth::ScramServer::doomed`].
    pub fn parse(s: &str) -> Result<Self, ScramError> {
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(invalid("it does not start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(invalid("the keys are missing"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or(invalid("the salt is missing"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(invalid("the server key is missing"))?;
        let iterations = iterations
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| iterations.parse::<u32>().ok())
            .flatten()
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))
            .ok_or(invalid(
                "the iteration count is not between 1 and 2147483647",
            ))?;
        let salt = BASE64
            .decode(salt)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or(invalid("the salt is not non-empty base64"))?;
        let key = |k: &str, what| {
            BASE64
                .decode(k)
                .ok()
                .and_then(|k| Key::try_from(k.as_slice()).ok())
                .ok_or(invalid(what))
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored_key, "the stored key is not 32 bytes of base64")?,
            server_key: key(server_key, "the server key is not 32 bytes of base64")?,
        })
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// StoredKey: H(HMAC(SaltedPassword, "Client Key")).
    pub fn stored_key(&self) -> &[u8; 32] {
        &self.stored_key
    }

    /// ServerKey: HMAC(SaltedPassword, "Server Key").
    pub fn server_key(&self) -> &[u8; 32] {
        &self.server_key
    }

    /// Whether `password` is the password this verifier was made from, for cleartext password
    /// authentication. Costs one PBKDF2 run; compares in constant time.
    pub fn verify_password(&self, password: impl AsRef<[u8]>) -> bool {
        let keys = Keys::derive(password.as_ref(), &self.salt, self.iterations);
        let stored = ct_eq(&keys.stored_key, &self.stored_key);
        let server = ct_eq(&keys.server_key, &self.server_key);
        stored & server
    }

    /// A fake verifier for a user that does not exist, derived from a server secret and the
    /// user name so that the same user always gets the same salt.
    pub(super) fn mock(user: &[u8], secret: &[u8], iterations: u32) -> Self {
        let derive = |label: &[u8]| hmac(secret, &[b"pgproto mock SCRAM ", label, b"\0", user]);
        Self {
            iterations: iterations.clamp(1, MAX_ITERATIONS),
            salt: derive(b"salt")[..DEFAULT_SALT_LEN].to_vec(),
            stored_key: derive(b"stored key"),
            server_key: derive(b"server key"),
        }
    }
}

fn invalid(reason: &'static str) -> ScramError {
    ScramError::InvalidVerifier { reason }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl FromStr for ScramVerifier {
    type Err = ScramError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From a PostgreSQL 15.18 cluster (password_encryption = scram-sha-256):
    // CREATE ROLE x LOGIN PASSWORD 'secret'; SELECT rolpassword FROM pg_authid WHERE rolname = 'x';
    const PG15_SECRET: &str = "SCRAM-SHA-256$4096:SMzuUE3t+Tq8P9tn1uxPzQ==$\
        AIgTCHe8kIvan+CXeaG7kzMIOVGC32AhUjovDi09qD4=:ttkebnBa89Hbk01eDeKAL71VIzrswKRJwVB5EGtcWWY=";

    #[test]
    fn verifier_round_trip_and_accessors() {
        let v = ScramVerifier::parse(PG15_SECRET).unwrap();
        assert_eq!(v.to_string(), PG15_SECRET);
        assert_eq!(PG15_SECRET.parse::<ScramVerifier>().unwrap(), v);
        assert_eq!(v.iterations(), 4096);
        assert_eq!(v.salt().len(), 16);
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let rfc = ScramVerifier::new("pencil", &salt, 4096).unwrap();
        assert_eq!(ScramVerifier::parse(&rfc.to_string()).unwrap(), rfc);
        assert_eq!(rfc.salt(), salt);
        // Non-canonical base64 (trailing bits set) is refused, so printing gives back the input.
        let s = PG15_SECRET.replacen("zQ==", "zR==", 1);
        assert!(ScramVerifier::parse(&s).is_err());
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("ttkeb") && dbg.contains("4096"), "{dbg}");
    }

    #[test]
    fn malformed_verifiers() {
        let k = "AIgTCHe8kIvan+CXeaG7kzMIOVGC32AhUjovDi09qD4=";
        let s = "SMzuUE3t+Tq8P9tn1uxPzQ==";
        for bad in [
            String::new(),
            "md5d18bf5f8eddaae3aed1d69b23a252748".into(),
            format!("SCRAM-SHA-1$4096:{s}${k}:{k}"),
            format!("scram-sha-256$4096:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$4096:{s}${k}"),
            format!("SCRAM-SHA-256$4096:{s}"),
            format!("SCRAM-SHA-256$4096${k}:{k}"),
            format!("SCRAM-SHA-256$0:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$-1:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$+1:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$2147483648:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$99999999999999999999:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$4096:${k}:{k}"),
            format!("SCRAM-SHA-256$4096:not*base64${k}:{k}"),
            format!("SCRAM-SHA-256$4096:{s}$AAAA:{k}"),
            format!("SCRAM-SHA-256$4096:{s}${k}:{k}x"),
            format!("SCRAM-SHA-256$4096:{s}${k}:{k}$"),
            format!("SCRAM-SHA-256$4096:{s}${k}:{k}:{k}"),
            format!(" SCRAM-SHA-256$4096:{s}${k}:{k}"),
            format!("SCRAM-SHA-256$4096:{s}${k}:{k}\n"),
        ] {
            assert!(
                matches!(
                    ScramVerifier::parse(&bad),
                    Err(ScramError::InvalidVerifier { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(ScramVerifier::new("x", b"", 4096).is_err());
        assert!(ScramVerifier::new("x", b"s", 0).is_err());
        assert!(ScramVerifier::new("x", b"s", 1 << 31).is_err());
    }

    #[test]
    fn generated_verifiers() {
        let a = ScramVerifier::generate("pw").unwrap();
        let b = ScramVerifier::generate("pw").unwrap();
        assert_eq!(
            (a.iterations(), a.salt().len()),
            (DEFAULT_ITERATIONS, DEFAULT_SALT_LEN)
        );
        assert_ne!(a.salt(), b.salt());
        assert!(a.verify_password("pw") && b.verify_password("pw") && !a.verify_password("pW"));
    }

    #[test]
    fn real_postgresql_15_verifier_is_reproduced() {
        let v = ScramVerifier::parse(PG15_SECRET).unwrap();
        let made = ScramVerifier::new("secret", v.salt(), 4096).unwrap();
        assert_eq!(made.to_string(), PG15_SECRET);
        assert!(v.verify_password("secret") && !v.verify_password("Secret"));
    }
}
