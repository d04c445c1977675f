//! The Authentication family (`R`): every request a backend can make during start-up.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_body, check_cstr, put_cstr, tagged, Encode};
use crate::error::{DecodeError, EncodeError};

/// The type byte of every Authentication message.
pub(crate) const TAG: u8 = b'R';

/// An authentication request or result (`R`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// AuthenticationOk (0): authentication succeeded.
    Ok,
    /// AuthenticationKerberosV5 (2): no longer supported by PostgreSQL.
    KerberosV5,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5), with the 4-byte salt.
    Md5Password {
        /// The salt to hash the password with.
        salt: [u8; 4],
    },
    /// AuthenticationSCMCredential (6): sent by servers before PostgreSQL 9.1, no longer
    /// documented.
    ScmCredential,
    /// AuthenticationGSS (7).
    Gss,
    /// AuthenticationGSSContinue (8): GSSAPI or SSPI data.
    GssContinue(Bytes),
    /// AuthenticationSSPI (9).
    Sspi,
    /// AuthenticationSASL (10): the mechanisms the server offers, in its order of preference.
    Sasl(SaslMechanisms),
    /// AuthenticationSASLContinue (11): a SASL challenge.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal (12): the SASL outcome's additional data.
    SaslFinal(Bytes),
}

impl Authentication {
    /// The request code carried after the length word.
    pub fn code(&self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::KerberosV5 => 2,
            Self::CleartextPassword => 3,
            Self::Md5Password { .. } => 5,
            Self::ScmCredential => 6,
            Self::Gss => 7,
            Self::GssContinue(_) => 8,
            Self::Sspi => 9,
            Self::Sasl(_) => 10,
            Self::SaslContinue(_) => 11,
            Self::SaslFinal(_) => 12,
        }
    }

    /// The message's name as in the PostgreSQL documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ok => "AuthenticationOk",
            Self::KerberosV5 => "AuthenticationKerberosV5",
            Self::CleartextPassword => "AuthenticationCleartextPassword",
            Self::Md5Password { .. } => "AuthenticationMD5Password",
            Self::ScmCredential => "AuthenticationSCMCredential",
            Self::Gss => "AuthenticationGSS",
            Self::GssContinue(_) => "AuthenticationGSSContinue",
            Self::Sspi => "AuthenticationSSPI",
            Self::Sasl(_) => "AuthenticationSASL",
            Self::SaslContinue(_) => "AuthenticationSASLContinue",
            Self::SaslFinal(_) => "AuthenticationSASLFinal",
        }
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Authentication");
        let code = r.i32("code")?;
        let m = match code {
            0 => Self::Ok,
            2 => Self::KerberosV5,
            3 => Self::CleartextPassword,
            5 => {
                let s = r.take(4, "salt")?;
                Self::Md5Password {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            6 => Self::ScmCredential,
            7 => Self::Gss,
            8 => Self::GssContinue(r.rest()),
            9 => Self::Sspi,
            10 => Self::Sasl(SaslMechanisms::decode(&mut r)?),
            11 => Self::SaslContinue(r.rest()),
            12 => Self::SaslFinal(r.rest()),
            other => {
                return Err(DecodeError::InvalidValue {
                    message: "Authentication",
                    field: "code",
                    value: other.into(),
                })
            }
        };
        r.finish()?;
        Ok(m)
    }

    fn body_len(&self) -> usize {
        4 + match self {
            Self::Md5Password { .. } => 4,
            Self::GssContinue(d) | Self::SaslContinue(d) | Self::SaslFinal(d) => d.len(),
            Self::Sasl(m) => m.raw.len() + 1,
            _ => 0,
        }
    }
}

impl Encode for Authentication {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, TAG, self.body_len(), |out| {
            out.put_i32(self.code());
            match self {
                Self::Md5Password { salt } => out.put_slice(salt),
                Self::GssContinue(d) | Self::SaslContinue(d) | Self::SaslFinal(d) => {
                    out.put_slice(d)
                }
                Self::Sasl(m) => {
                    out.put_slice(&m.raw);
                    out.put_u8(0);
                }
                _ => {}
            }
        });
    }

    fn encoded_len(&self) -> usize {
        self.body_len() + 5
    }
}

/// The SASL mechanisms offered by AuthenticationSASL: NUL-terminated names, then an empty name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslMechanisms {
    /// The names, each with its NUL, without the final terminator.
    raw: Bytes,
}

impl SaslMechanisms {
    /// A list of mechanism names; each must be non-empty and free of NUL.
    ///
    /// Fails with [`EncodeError::InteriorNul`] for a name with NUL,
    /// [`EncodeError::OutOfRange`] for an empty name, or [`EncodeError::TooLong`] when the list
    /// does not fit one message.
    ///
    /// ```
    /// use pgproto::SaslMechanisms;
    /// let m = SaslMechanisms::new(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]).unwrap();
    /// assert_eq!(m.iter().collect::<Vec<_>>(), [&b"SCRAM-SHA-256-PLUS"[..], b"SCRAM-SHA-256"]);
    /// ```
    pub fn new<I, S>(names: I) -> Result<Self, EncodeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut b = BytesMut::new();
        for n in names {
            let n = n.as_ref();
            check_cstr("mechanism", n)?;
            if n.is_empty() {
                return Err(EncodeError::OutOfRange {
                    field: "mechanism",
                    reason: "empty (an empty name ends the list)",
                });
            }
            put_cstr(&mut b, n);
        }
        check_body("AuthenticationSASL", b.len() + 5)?;
        Ok(Self { raw: b.freeze() })
    }

    /// The mechanism names, in the server's order of preference.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.raw.split(|b| *b == 0).take_while(|s| !s.is_empty())
    }

    /// Whether `name` is offered.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|m| m == name.as_bytes())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.position();
        loop {
            if r.remaining() == 0 {
                return Err(DecodeError::Truncated {
                    message: "AuthenticationSASL",
                    field: "terminator",
                });
            }
            if r.cstr_slice("mechanism")?.is_empty() {
                break;
            }
        }
        // Exclude the final terminator, which encode writes back.
        Ok(Self {
            raw: r.slice_between(start, r.position() - 1),
        })
    }
}
