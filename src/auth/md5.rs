//! PostgreSQL's MD5 password scheme (deprecated by PostgreSQL, still widely deployed).
//!
//! The server stores `"md5" + hex(md5(password + user))`. To answer
//! AuthenticationMD5Password, the client sends `"md5" + hex(md5(hex(md5(password + user)) +
//! salt))` in a PasswordMessage, where `salt` is the request's four random bytes. The server
//! computes the same value from the stored hash alone.

use ::md5::{Digest as _, Md5};

use super::ct_eq;

/// Length of a stored or salted hash: `md5` and 32 hex digits.
const HASH_LEN: usize = 35;

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for part in parts {
        h.update(part);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(HASH_LEN);
    out.push_str("md5");
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The hash PostgreSQL stores in `pg_authid.rolpassword` with `password_encryption = md5`:
/// `"md5" + hex(md5(password + user))`.
///
/// ```
/// use pgproto::auth::md5;
/// assert_eq!(md5::stored_hash("postgres", "postgres"), "md53175bce1d3201d16594cebf9d7eb3f9d");
/// ```
pub fn stored_hash(user: impl AsRef<[u8]>, password: impl AsRef<[u8]>) -> String {
    md5_hex(&[password.as_ref(), user.as_ref()])
}

/// The PasswordMessage content that answers AuthenticationMD5Password:
/// `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
pub fn password_hash(user: impl AsRef<[u8]>, password: impl AsRef<[u8]>, salt: [u8; 4]) -> String {
    salted(&stored_hash(user, password), salt)
}

/// Hashes a stored hash (with its `md5` prefix) with the salt.
fn salted(stored: &str, salt: [u8; 4]) -> String {
    md5_hex(&[stored.as_bytes().get(3..).unwrap_or_default(), &salt])
}

/// Whether `stored` has the form of a stored MD5 hash: `md5` and 32 lowercase hex digits, the
/// test PostgreSQL applies to `pg_authid.rolpassword`.
pub fn is_stored_hash(stored: &str) -> bool {
    stored.len() == HASH_LEN
        && stored.starts_with("md5")
        && stored.as_bytes()[3..].iter().all(|c| HEX.contains(c))
}

/// Server side: whether `received` (a PasswordMessage's content, without its NUL) answers the
/// AuthenticationMD5Password request with this `salt` for the user whose stored hash is `stored`.
/// A `stored` value that is not an MD5 hash never matches. The comparison is in constant time.
///
/// ```
/// use pgproto::auth::md5;
/// let stored = md5::stored_hash("joe", "xyzzy");
/// let sent = md5::password_hash("joe", "xyzzy", [1, 2, 3, 4]);
/// assert!(md5::verify(&stored, [1, 2, 3, 4], sent.as_bytes()));
/// assert!(!md5::verify(&stored, [4, 3, 2, 1], sent.as_bytes()));
/// ```
pub fn verify(stored: &str, salt: [u8; 4], received: &[u8]) -> bool {
    is_stored_hash(stored) && ct_eq(salted(stored, salt).as_bytes(), received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_known_value() {
        assert_eq!(
            stored_hash("postgres", "postgres"),
            "md53175bce1d3201d16594cebf9d7eb3f9d"
        );
    }

    #[test]
    fn salted_known_value() {
        // Computed independently with Python's hashlib:
        //   inner = hashlib.md5(b"postgrespostgres").hexdigest()
        //   "md5" + hashlib.md5(inner.encode() + bytes([1, 2, 3, 4])).hexdigest()
        assert_eq!(
            password_hash("postgres", "postgres", [1, 2, 3, 4]),
            "md568be9ed08db75f318087ab337aaea044"
        );
        // Same recipe for user "y", password "secret", salt 9a 00 ff 10.
        assert_eq!(
            password_hash("y", "secret", [0x9a, 0x00, 0xff, 0x10]),
            "md5599e3da75d7f67f3ebae6040452105ae"
        );
    }

    #[test]
    fn real_postgresql_15_hash() {
        // From a PostgreSQL 15.18 cluster: SET password_encryption = 'md5';
        // CREATE ROLE y LOGIN PASSWORD 'secret'; SELECT rolpassword FROM pg_authid ...
        let stored = "md5d18bf5f8eddaae3aed1d69b23a252748";
        assert_eq!(stored_hash("y", "secret"), stored);
        let sent = password_hash("y", "secret", [0x9a, 0x00, 0xff, 0x10]);
        assert!(verify(stored, [0x9a, 0x00, 0xff, 0x10], sent.as_bytes()));
    }

    #[test]
    fn verify_rejects() {
        let stored = stored_hash("joe", "xyzzy");
        let salt = [0xde, 0xad, 0xbe, 0xef];
        let good = password_hash("joe", "xyzzy", salt);
        assert!(verify(&stored, salt, good.as_bytes()));
        assert!(!verify(
            &stored,
            salt,
            password_hash("joe", "xyzzz", salt).as_bytes()
        ));
        assert!(!verify(
            &stored,
            salt,
            password_hash("jo", "xyzzy", salt).as_bytes()
        ));
        assert!(!verify(&stored, salt, &good.as_bytes()[..34]));
        assert!(!verify(&stored, salt, good.to_uppercase().as_bytes()));
        assert!(!verify(&stored, salt, b""));
        // The stored hash itself is not the answer.
        assert!(!verify(&stored, salt, stored.as_bytes()));
        // Malformed stored values never match, even against their own salted form.
        for bad in [
            "",
            "md5",
            "md5abc",
            "MD5d18bf5f8eddaae3aed1d69b23a252748",
            "md5D18BF5F8EDDAAE3AED1D69B23A252748",
            "xyzzy",
        ] {
            assert!(!is_stored_hash(bad));
            assert!(!verify(bad, salt, salted(bad, salt).as_bytes()), "{bad}");
        }
        assert!(!verify("md5é", salt, b"x"));
    }
}
