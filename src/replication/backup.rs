//! The messages inside CopyData during `BASE_BACKUP` (PostgreSQL 15 and later): each archive
//! announced, then its bytes; the backup manifest; progress reports.
//!
//! Layouts: PostgreSQL 18 documentation, section 54.4, `BASE_BACKUP`
//! (<https://www.postgresql.org/docs/18/protocol-replication.html>).

use bytes::{BufMut, BytesMut};

use crate::codec::check_cstr;
use crate::codec::reader::SliceReader;
use crate::error::{DecodeError, EncodeError, Tag};
use crate::message::common::utf8;
use crate::replication::wire::{check_payload, put_cstr};
use crate::replication::Payload;

/// New archive (`n`): the bytes that follow (as [`BaseBackupMessage::Data`]) belong to this
/// tar archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewArchive<'a> {
    name: &'a [u8],
    location: &'a [u8],
}

impl<'a> NewArchive<'a> {
    /// The type byte.
    pub const TAG: u8 = b'n';

    /// A new archive called `name` (`base.tar`, `16385.tar`...); `location` is the tablespace's
    /// directory, empty for the main data directory. Fails with [`EncodeError::InteriorNul`]
    /// when either contains NUL, or [`EncodeError::TooLong`].
    pub fn new(name: &'a [u8], location: &'a [u8]) -> Result<Self, EncodeError> {
        check_cstr("archive name", name)?;
        check_cstr("tablespace location", location)?;
        check_payload("BackupNewArchive", 3 + name.len() + location.len())?;
        Ok(Self { name, location })
    }

    /// The archive's file name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The file name as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn name_str(&self) -> Result<&'a str, DecodeError> {
        utf8("archive name", self.name)
    }

    /// The tablespace's directory on the server; empty for the main data directory.
    pub fn location(&self) -> &'a [u8] {
        self.location
    }
}

/// Archive or manifest data (`d`): a piece of the current archive or of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackupData<'a> {
    data: &'a [u8],
}

impl<'a> BackupData<'a> {
    /// The type byte.
    pub const TAG: u8 = b'd';

    /// A piece of data; fails with [`EncodeError::TooLong`] when it would not fit one CopyData.
    pub fn new(data: &'a [u8]) -> Result<Self, EncodeError> {
        check_payload("BackupData", 1 + data.len())?;
        Ok(Self { data })
    }

    /// The bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// A message inside CopyData from the server during `BASE_BACKUP`.
///
/// ```
/// use pgproto::replication::{BaseBackupMessage, NewArchive, Payload};
///
/// let mut out = bytes::BytesMut::new();
/// BaseBackupMessage::NewArchive(NewArchive::new(b"base.tar", b"")?).encode_payload(&mut out);
/// let m = BaseBackupMessage::decode(&out)?;
/// assert_eq!(m.name(), "BackupNewArchive");
/// let BaseBackupMessage::NewArchive(a) = m else { unreachable!() };
/// assert_eq!(a.name(), b"base.tar");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseBackupMessage<'a> {
    /// New archive (`n`).
    NewArchive(NewArchive<'a>),
    /// Manifest (`m`): the data that follows is the backup manifest.
    Manifest,
    /// Archive or manifest data (`d`).
    Data(BackupData<'a>),
    /// Progress report (`p`): bytes of the current tablespace done so far.
    Progress(u64),
}

impl<'a> BaseBackupMessage<'a> {
    /// The type byte of [`BaseBackupMessage::Manifest`].
    pub const MANIFEST: u8 = b'm';
    /// The type byte of [`BaseBackupMessage::Progress`].
    pub const PROGRESS: u8 = b'p';

    /// Decodes a CopyData payload sent during `BASE_BACKUP`.
    ///
    /// Fails with [`DecodeError::UnknownSubmessage`] for another type byte, or with the error
    /// naming the message and field that does not decode.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((&tag, body)) = payload.split_first() else {
            return Err(DecodeError::Truncated {
                message: "BASE_BACKUP message",
                field: "type",
            });
        };
        Ok(match tag {
            NewArchive::TAG => {
                let mut r = SliceReader::new(body, "BackupNewArchive");
                let name = r.cstr("archive name")?;
                let location = r.cstr("tablespace location")?;
                r.finish()?;
                Self::NewArchive(NewArchive { name, location })
            }
            Self::MANIFEST => {
                SliceReader::new(body, "BackupManifest").finish()?;
                Self::Manifest
            }
            BackupData::TAG => Self::Data(BackupData { data: body }),
            Self::PROGRESS => {
                let mut r = SliceReader::new(body, "BackupProgress");
                let done = r.u64("bytes done")?;
                r.finish()?;
                Self::Progress(done)
            }
            other => {
                return Err(DecodeError::UnknownSubmessage {
                    kind: "BASE_BACKUP",
                    tag: Tag(other),
                })
            }
        })
    }

    /// The message's name: `BackupNewArchive`, `BackupManifest`, `BackupData` or
    /// `BackupProgress`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NewArchive(_) => "BackupNewArchive",
            Self::Manifest => "BackupManifest",
            Self::Data(_) => "BackupData",
            Self::Progress(_) => "BackupProgress",
        }
    }
}

impl Payload for BaseBackupMessage<'_> {
    fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::NewArchive(a) => {
                out.put_u8(NewArchive::TAG);
                put_cstr(out, a.name);
                put_cstr(out, a.location);
            }
            Self::Manifest => out.put_u8(Self::MANIFEST),
            Self::Data(d) => {
                out.put_u8(BackupData::TAG);
                out.put_slice(d.data);
            }
            Self::Progress(n) => {
                out.put_u8(Self::PROGRESS);
                out.put_u64(*n);
            }
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::NewArchive(a) => 3 + a.name.len() + a.location.len(),
            Self::Manifest => 1,
            Self::Data(d) => 1 + d.data.len(),
            Self::Progress(_) => 9,
        }
    }
}
