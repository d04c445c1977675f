//! Cancel routing: the keys a pooler hands its clients, found again in constant time when a
//! CancelRequest arrives, and the bytes of the cancel connection it opens upstream.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::codec::Encode;
use crate::message::backend::BackendKeyData;
use crate::message::common::ProtocolVersion;
use crate::message::startup::{CancelRequest, MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};

/// Whether two cancel keys are equal, in time that does not depend on where they differ (the
/// lengths, which the protocol makes public, may show).
///
/// ```
/// use pgproto::pooler::keys_equal;
/// assert!(keys_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04"));
/// assert!(!keys_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05"));
/// assert!(!keys_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03"));
/// ```
pub fn keys_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the comparison from being turned into an early exit.
    std::hint::black_box(diff) == 0
}

/// The bytes to send on a new connection to a server to cancel what `key`'s session runs: a
/// CancelRequest (sent alone, or after an SSLRequest and the TLS handshake; the server answers
/// nothing and closes).
///
/// ```
/// use pgproto::BackendKeyData;
/// use pgproto::pooler::cancel_packet;
///
/// let bytes = cancel_packet(&BackendKeyData::new(7, [9, 9, 9, 9]).unwrap());
/// assert_eq!(&bytes[..], b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x07\x09\x09\x09\x09");
/// ```
pub fn cancel_packet(key: &BackendKeyData) -> Bytes {
    let mut out = BytesMut::new();
    // INVARIANT: a BackendKeyData's key is 4 to 256 bytes, which a CancelRequest accepts.
    if let Ok(c) = CancelRequest::new(key.process_id(), key.secret_key()) {
        c.encode(&mut out);
    }
    out.freeze()
}

/// The cancel keys a pooler handed its clients, each with what a cancel must reach (for
/// example the client's session).
///
/// ```
/// use pgproto::pooler::CancelKeys;
/// use pgproto::{CancelRequest, ProtocolVersion};
///
/// let mut keys = CancelKeys::new();
/// let key = keys.issue(ProtocolVersion::V3_2, 32, pgproto::os_random, "session 1").unwrap();
/// assert_eq!(key.secret_key().len(), 32);
/// let cancel = CancelRequest::new(key.process_id(), key.secret_key()).unwrap();
/// assert_eq!(keys.find(&cancel), Some(&"session 1"));
/// let forged = CancelRequest::new(key.process_id(), [0u8; 32]).unwrap();
/// assert_eq!(keys.find(&forged), None);
/// keys.remove(key.process_id());
/// assert_eq!(keys.find(&cancel), None);
/// ```
#[derive(Debug)]
pub struct CancelKeys<T> {
    map: HashMap<i32, (Secret, T)>,
}

/// A secret key: up to 32 bytes (PostgreSQL's length, and every 3.0 key) kept inline, so that
/// an entry costs no allocation of its own.
#[derive(Debug)]
enum Secret {
    Inline { len: u8, bytes: [u8; 32] },
    Heap(Box<[u8]>),
}

impl Secret {
    fn new(key: &[u8]) -> Self {
        match key.len() {
            len @ 0..=32 => {
                let mut bytes = [0u8; 32];
                bytes[..len].copy_from_slice(key);
                Self::Inline {
                    len: len as u8,
                    bytes,
                }
            }
            _ => Self::Heap(key.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(b) => b,
        }
    }
}

impl<T> Default for CancelKeys<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CancelKeys<T> {
    /// No keys.
    pub fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    /// A new key for a session of protocol `version`: a process ID no other key has and a
    /// secret of `key_len` bytes (4 to 256 in 3.2; always 4 in 3.0), both from `random`
    /// (which fills a buffer and returns `false` if it could not, as
    /// [`ServerConfig::random`](crate::ServerConfig::random)); `None` when it failed.
    pub fn issue(
        &mut self,
        version: ProtocolVersion,
        key_len: usize,
        random: impl Fn(&mut [u8]) -> bool,
        value: T,
    ) -> Option<BackendKeyData> {
        let len = if version >= ProtocolVersion::V3_2 {
            key_len.clamp(MIN_CANCEL_KEY_LEN, MAX_CANCEL_KEY_LEN)
        } else {
            MIN_CANCEL_KEY_LEN
        };
        let mut secret = vec![0u8; len];
        if !random(&mut secret) {
            return None;
        }
        // A free process ID, positive as a backend's; a few tries suffice while the table is
        // far from full.
        for _ in 0..64 {
            let mut pid = [0u8; 4];
            if !random(&mut pid) {
                return None;
            }
            let pid = i32::from_be_bytes(pid) & 0x7fff_ffff;
            if pid != 0 && !self.map.contains_key(&pid) {
                let key = BackendKeyData::new(pid, &secret).ok()?;
                self.map.insert(pid, (Secret::new(&secret), value));
                return Some(key);
            }
        }
        None
    }

    /// What the CancelRequest's key was issued for, if its process ID and secret match (the
    /// secret compared in constant time).
    pub fn find(&self, request: &CancelRequest) -> Option<&T> {
        let (secret, value) = self.map.get(&request.process_id())?;
        keys_equal(secret.as_slice(), request.secret_key()).then_some(value)
    }

    /// What the key of `process_id` was issued for, to change it (for example, the upstream
    /// connection that now serves the session).
    pub fn get_mut(&mut self, process_id: i32) -> Option<&mut T> {
        self.map.get_mut(&process_id).map(|(_, v)| v)
    }

    /// Forgets the key of `process_id` (its session ended), returning its value.
    pub fn remove(&mut self, process_id: i32) -> Option<T> {
        self.map.remove(&process_id).map(|(_, v)| v)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lengths_follow_the_version() {
        let mut keys = CancelKeys::new();
        let k = keys
            .issue(ProtocolVersion::V3_0, 32, crate::os_random, ())
            .unwrap();
        assert_eq!(k.secret_key().len(), 4);
        let k = keys
            .issue(ProtocolVersion::V3_2, 1000, crate::os_random, ())
            .unwrap();
        assert_eq!(k.secret_key().len(), 256);
        let long = CancelRequest::new(k.process_id(), k.secret_key()).unwrap();
        assert_eq!(keys.find(&long), Some(&()));
        assert!(k.process_id() > 0);
        assert_eq!(keys.len(), 2);
        assert!(keys
            .issue(ProtocolVersion::V3_2, 32, |_: &mut [u8]| false, ())
            .is_none());
    }

    #[test]
    fn a_key_of_another_length_does_not_match() {
        let mut keys = CancelKeys::new();
        let k = keys
            .issue(ProtocolVersion::V3_2, 8, crate::os_random, 1)
            .unwrap();
        let short = CancelRequest::new(k.process_id(), &k.secret_key()[..4]).unwrap();
        assert_eq!(keys.find(&short), None);
        *keys.get_mut(k.process_id()).unwrap() = 2;
        let right = CancelRequest::new(k.process_id(), k.secret_key()).unwrap();
        assert_eq!(keys.find(&right), Some(&2));
    }
}
