//! The `tls-server-end-point` channel-binding data (RFC 5929, section 4.1) of a certificate.
//!
//! SCRAM-SHA-256-PLUS binds the authentication to the TLS connection with the hash of the
//! server's certificate. Which hash is the certificate's business: the one its signature
//! algorithm uses, except that MD5 and SHA-1 are replaced by SHA-256. This module reads the
//! signature algorithm from the certificate's DER with a small, bounded walk (no ASN.1 library,
//! no recursion, no allocation before the hash) and hashes the whole certificate.
//!
//! It decides as the PostgreSQL server (`be_tls_get_certificate_hash` in
//! `be-secure-openssl.c`) and libpq do with OpenSSL 1.1.1 or later, where the digest comes from
//! `X509_get_signature_info`:
//!
//! (see the table on [`tls_server_end_point`]; missing or unreadable RSASSA-PSS parameters are
//! an error).
//!
//! PostgreSQL raises an error in those last cases ("could not find digest for NID ...", or
//! "could not determine server certificate signature algorithm"), so a connection cannot use
//! channel binding with such a certificate; an I/O layer that gets an error here passes `None`
//! to `tls_established` (no SCRAM-SHA-256-PLUS). One difference: OpenSSL knows SHA3 and SM3
//! signatures and PostgreSQL then hashes with them; this crate has neither digest and returns
//! [`EndPointError::NoDigest`].

use sha2::{Digest as _, Sha224, Sha256, Sha384, Sha512};

/// Why [`tls_server_end_point`] could not compute the channel-binding data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndPointError {
    /// The bytes are not a DER certificate whose signature algorithm can be read.
    #[error("not a DER certificate: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// The signature algorithm has no digest to hash the certificate with (Ed25519, Ed448,
    /// unknown algorithms), as PostgreSQL decides.
    #[error("no digest for the certificate's signature algorithm {oid}")]
    NoDigest {
        /// The algorithm's OID, dotted (`1.3.101.112` for Ed25519).
        oid: String,
    },
}

/// The `tls-server-end-point` channel-binding data of a certificate given in DER: its hash with
/// the digest of its signature algorithm (SHA-256 for MD5 and SHA-1), as RFC 5929 and
/// PostgreSQL define it:
///
/// | signature algorithm | hash |
/// |---|---|
/// | `md5WithRSAEncryption`, `sha1WithRSAEncryption`, `ecdsa-with-SHA1`, `id-dsa-with-sha1` | SHA-256 |
/// | RSA, ECDSA or DSA with SHA-224, SHA-256, SHA-384, SHA-512 | the same |
/// | RSASSA-PSS | the `hashAlgorithm` of its parameters (SHA-1, the default, gives SHA-256) |
/// | Ed25519, Ed448, anything else | an error, as in PostgreSQL (no channel binding) |
///
/// The server role passes the result for its own certificate to `Server::tls_established`, the
/// client role for the server's certificate (the first of the chain it received) to
/// `Client::tls_established`; both pass `None` when this returns an error.
///
/// ```
/// use pgproto::auth::{tls_server_end_point, EndPointError};
///
/// # let certificate_der: &[u8] = include_bytes!(concat!(
/// #     env!("CARGO_MANIFEST_DIR"),
/// #     "/src/auth/testdata/ecdsa_sha384.der"
/// # ));
/// // `certificate_der`: a certificate signed with ecdsa-with-SHA384.
/// let data = tls_server_end_point(certificate_der).unwrap();
/// assert_eq!(data.len(), 48); // SHA-384
///
/// assert!(matches!(
///     tls_server_end_point(b"not a certificate"),
///     Err(EndPointError::Malformed { .. })
/// ));
/// ```
pub fn tls_server_end_point(certificate_der: &[u8]) -> Result<Vec<u8>, EndPointError> {
    let (oid, params) = signature_algorithm(certificate_der)?;
    let Some(digest) = digest_of(oid, params)? else {
        return Err(EndPointError::NoDigest { oid: dotted(oid) });
    };
    Ok(match digest {
        Hash::Sha224 => Sha224::digest(certificate_der).to_vec(),
        Hash::Sha256 => Sha256::digest(certificate_der).to_vec(),
        Hash::Sha384 => Sha384::digest(certificate_der).to_vec(),
        Hash::Sha512 => Sha512::digest(certificate_der).to_vec(),
    })
}

/// The digests channel binding can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
/// `[0]` constructed, explicit: RSASSA-PSS-params' `hashAlgorithm`.
const CONTEXT_0: u8 = 0xa0;

/// `1.2.840.113549.1.1`: PKCS #1 signature algorithms (one more arc follows).
const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
/// `1.2.840.10045.4.3`: ECDSA with SHA-2 (one more arc follows).
const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
/// `1.2.840.10045.4.1`: ecdsa-with-SHA1.
const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
/// `1.2.840.10040.4.3`: id-dsa-with-sha1.
const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
/// `2.16.840.1.101.3.4.3`: DSA with SHA-2 (one more arc follows).
const DSA_SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
/// `2.16.840.1.101.3.4.2`: the SHA-2 hash algorithms (one more arc follows).
const SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
/// `1.3.14.3.2.26`: id-sha1.
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];

/// The digest for a signature algorithm: `Ok(None)` when it has none.
fn digest_of(oid: &[u8], params: &[u8]) -> Result<Option<Hash>, EndPointError> {
    let last = |prefix: &[u8]| match oid.strip_prefix(prefix) {
        Some([arc]) => Some(*arc),
        _ => None,
    };
    Ok(if let Some(arc) = last(PKCS1) {
        match arc {
            // md5WithRSAEncryption, sha1WithRSAEncryption: SHA-256 (RFC 5929).
            0x04 | 0x05 | 0x0b => Some(Hash::Sha256),
            0x0c => Some(Hash::Sha384),
            0x0d => Some(Hash::Sha512),
            0x0e => Some(Hash::Sha224),
            0x0a => Some(pss_digest(params)?),
            _ => None,
        }
    } else if let Some(arc) = last(ECDSA_SHA2) {
        match arc {
            0x01 => Some(Hash::Sha224),
            0x02 => Some(Hash::Sha256),
            0x03 => Some(Hash::Sha384),
            0x04 => Some(Hash::Sha512),
            _ => None,
        }
    } else if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
        Some(Hash::Sha256)
    } else if let Some(arc) = last(DSA_SHA2) {
        match arc {
            0x01 => Some(Hash::Sha224),
            0x02 => Some(Hash::Sha256),
            0x03 => Some(Hash::Sha384),
            0x04 => Some(Hash::Sha512),
            _ => None,
        }
    } else {
        None
    })
}

/// The digest named by RSASSA-PSS-params (RFC 4055): `SEQUENCE { [0] hashAlgorithm
/// AlgorithmIdentifier DEFAULT sha1, ... }`. In a signature the parameters must be present
/// (OpenSSL fails without them, and so does PostgreSQL).
fn pss_digest(params: &[u8]) -> Result<Hash, EndPointError> {
    let bad = EndPointError::Malformed {
        what: "RSASSA-PSS parameters",
    };
    let (SEQUENCE, fields, _) = tlv(params).ok_or(bad.clone())? else {
        return Err(bad);
    };
    let hash_oid = match tlv(fields) {
        None if !fields.is_empty() => return Err(bad),
        Some((CONTEXT_0, explicit, _)) => {
            let (SEQUENCE, alg, _) = tlv(explicit).ok_or(bad.clone())? else {
                return Err(bad);
            };
            let (OID, oid, _) = tlv(alg).ok_or(bad.clone())? else {
                return Err(bad);
            };
            oid
        }
        // hashAlgorithm absent (no fields, or the next one first): SHA-1.
        _ => SHA1,
    };
    if hash_oid == SHA1 {
        return Ok(Hash::Sha256);
    }
    match hash_oid.strip_prefix(SHA2) {
        Some([0x01]) => Ok(Hash::Sha256),
        Some([0x02]) => Ok(Hash::Sha384),
        Some([0x03]) => Ok(Hash::Sha512),
        Some([0x04]) => Ok(Hash::Sha224),
        _ => Err(EndPointError::NoDigest {
            oid: dotted(hash_oid),
        }),
    }
}

/// The `signatureAlgorithm` of a certificate: its OID's contents and the rest of the
/// AlgorithmIdentifier (the parameters' TLV, or nothing).
///
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm
/// AlgorithmIdentifier, signatureValue BIT STRING }`, the outer SEQUENCE spanning the input.
fn signature_algorithm(der: &[u8]) -> Result<(&[u8], &[u8]), EndPointError> {
    let malformed = |what| EndPointError::Malformed { what };
    let (SEQUENCE, cert, []) = tlv(der).ok_or(malformed("certificate"))? else {
        return Err(malformed("certificate"));
    };
    let (SEQUENCE, _tbs, rest) = tlv(cert).ok_or(malformed("tbsCertificate"))? else {
        return Err(malformed("tbsCertificate"));
    };
    let (SEQUENCE, alg, rest) = tlv(rest).ok_or(malformed("signatureAlgorithm"))? else {
        return Err(malformed("signatureAlgorithm"));
    };
    let (BIT_STRING, _, []) = tlv(rest).ok_or(malformed("signatureValue"))? else {
        return Err(malformed("signatureValue"));
    };
    let (OID, oid, params) = tlv(alg).ok_or(malformed("signatureAlgorithm"))? else {
        return Err(malformed("signatureAlgorithm"));
    };
    if oid.is_empty() {
        return Err(malformed("signatureAlgorithm"));
    }
    Ok((oid, params))
}

/// One DER TLV with a single-byte tag: `(tag, contents, rest)`. Definite lengths only, in at
/// most four length bytes; `None` when the input is shorter than it says.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| {
        let (contents, rest) = rest.split_at(len);
        (tag, contents, rest)
    })
}

/// An OID's contents in dotted form (`1.3.101.112`); arcs too large for a u64 show as `?`.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<String> = Vec::new();
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in oid {
        overflow |= value > (u64::MAX >> 7);
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if overflow {
            arcs.push("?".into());
        } else if arcs.is_empty() {
            let first = (value / 40).min(2);
            arcs.push(first.to_string());
            arcs.push((value - first * 40).to_string());
        } else {
            arcs.push(value.to_string());
        }
        value = 0;
        overflow = false;
    }
    arcs.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl req -x509 -newkey ... -outform DER` (OpenSSL 3.0): P-256 signed with
    // ecdsa-with-SHA256, P-384 with ecdsa-with-SHA384, Ed25519, and a 1,024-bit RSA-PSS key
    // signed with RSASSA-PSS over SHA-384.
    const ECDSA_SHA256: &[u8] = include_bytes!("testdata/ecdsa_sha256.der");
    const ECDSA_SHA384: &[u8] = include_bytes!("testdata/ecdsa_sha384.der");
    const ED25519: &[u8] = include_bytes!("testdata/ed25519.der");
    const RSA_PSS_SHA384: &[u8] = include_bytes!("testdata/rsa_pss_sha384.der");

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn real_certificates() {
        // Expected values from `openssl dgst -sha256` / `-sha384` on the files.
        assert_eq!(
            hex(&tls_server_end_point(ECDSA_SHA256).unwrap()),
            "9798de37ab64abea4b605375a3e7242b8006383993da8b71bf360a5b038b3fcf"
        );
        assert_eq!(
            hex(&tls_server_end_point(ECDSA_SHA384).unwrap()),
            "7a6fe4961e39c090dc928456980d19104e5dd93bfba82d8ae7e89e093c44b735\
             c6c79092425f198af181674c067b2f86"
        );
        assert_eq!(
            hex(&tls_server_end_point(RSA_PSS_SHA384).unwrap()),
            "9c76b3407c89c707af78ae4f6145e38886e6a9e80f69b6b83a4cf83eaad2b9d4\
             687b236c46a5937217deaeb9aa2c66e5"
        );
        assert_eq!(
            tls_server_end_point(ED25519),
            Err(EndPointError::NoDigest {
                oid: "1.3.101.112".into()
            })
        );
    }

    #[test]
    fn rcgen_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().as_ref();
        assert_eq!(
            tls_server_end_point(der).unwrap(),
            Sha384::digest(der).to_vec()
        );
    }

    /// `SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID, params }, BIT STRING }`.
    fn skeleton(oid: &[u8], params: &[u8]) -> Vec<u8> {
        let mut alg = vec![OID, oid.len() as u8];
        alg.extend_from_slice(oid);
        alg.extend_from_slice(params);
        let mut body = vec![SEQUENCE, 0x00, SEQUENCE, alg.len() as u8];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[BIT_STRING, 0x01, 0x00]);
        let mut c = vec![SEQUENCE, body.len() as u8];
        c.extend_from_slice(&body);
        c
    }

    fn with(prefix: &[u8], arc: u8) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.push(arc);
        v
    }

    #[test]
    fn digest_follows_the_signature_algorithm() {
        let null = [0x05, 0x00];
        for (oid, params, len) in [
            (with(PKCS1, 0x04), &null[..], 32), // md5WithRSAEncryption: SHA-256
            (with(PKCS1, 0x05), &null, 32),     // sha1WithRSAEncryption: SHA-256
            (with(PKCS1, 0x0b), &null, 32),
            (with(PKCS1, 0x0c), &null, 48),
            (with(PKCS1, 0x0d), &null, 64),
            (with(PKCS1, 0x0e), &null, 28),
            (ECDSA_SHA1.to_vec(), &[], 32),
            (with(ECDSA_SHA2, 0x02), &[], 32),
            (with(ECDSA_SHA2, 0x03), &[], 48),
            (with(ECDSA_SHA2, 0x04), &[], 64),
            (DSA_SHA1.to_vec(), &[], 32),
            (with(DSA_SHA2, 0x02), &[], 32),
            // RSASSA-PSS with every parameter defaulted: SHA-1, so SHA-256.
            (with(PKCS1, 0x0a), &[SEQUENCE, 0x00], 32),
        ] {
            let c = skeleton(&oid, params);
            let h = tls_server_end_point(&c).unwrap_or_else(|e| panic!("{oid:02x?}: {e}"));
            assert_eq!(h.len(), len, "{oid:02x?}");
            if len == 32 {
                assert_eq!(h, Sha256::digest(&c).to_vec());
            }
        }
    }

    #[test]
    fn no_digest_is_an_error() {
        // RSASSA-PSS without parameters, as OpenSSL (and so PostgreSQL) refuse it.
        assert!(matches!(
            tls_server_end_point(&skeleton(&with(PKCS1, 0x0a), &[])),
            Err(EndPointError::Malformed { .. })
        ));
        // RSASSA-PSS over SHA3-256 (2.16.840.1.101.3.4.2.8): no such digest here.
        let sha3 = [
            &[CONTEXT_0, 0x0d, SEQUENCE, 0x0b, OID, 0x09][..],
            SHA2,
            &[0x08],
        ]
        .concat();
        let mut params = vec![SEQUENCE, sha3.len() as u8];
        params.extend_from_slice(&sha3);
        assert_eq!(
            tls_server_end_point(&skeleton(&with(PKCS1, 0x0a), &params)),
            Err(EndPointError::NoDigest {
                oid: "2.16.840.1.101.3.4.2.8".into()
            })
        );
        // Ed448, md2WithRSAEncryption.
        for (oid, name) in [
            (vec![0x2b, 0x65, 0x71], "1.3.101.113"),
            (with(PKCS1, 0x02), "1.2.840.113549.1.1.2"),
        ] {
            assert_eq!(
                tls_server_end_point(&skeleton(&oid, &[])),
                Err(EndPointError::NoDigest { oid: name.into() })
            );
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x05abc",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x80\x00\x00",
            b"not a certificate",
        ] {
            assert!(matches!(
                tls_server_end_point(bad),
                Err(EndPointError::Malformed { .. })
            ));
        }
        // Every truncation and every single-byte corruption of real certificates.
        for cert in [ECDSA_SHA256, ECDSA_SHA384, ED25519, RSA_PSS_SHA384] {
            for n in 0..cert.len() {
                assert!(tls_server_end_point(&cert[..n]).is_err(), "{n}");
            }
            for i in 0..cert.len() {
                let mut c = cert.to_vec();
                c[i] ^= 0xff;
                let _ = tls_server_end_point(&c);
            }
        }
        // Trailing bytes after the certificate.
        let mut long = ECDSA_SHA256.to_vec();
        long.push(0);
        assert!(tls_server_end_point(&long).is_err());
    }

    #[test]
    fn dotted_oids() {
        assert_eq!(dotted(&[0x2b, 0x65, 0x70]), "1.3.101.112");
        assert_eq!(dotted(&with(PKCS1, 0x0b)), "1.2.840.113549.1.1.11");
        let mut huge = vec![0xff; 19];
        huge.push(0x7f);
        assert_eq!(dotted(&huge), "?");
    }
}
