//! The replication decoders (streaming replication, BASE_BACKUP, pgoutput) on arbitrary
//! CopyData payloads, and the text forms (replication commands, LSNs, timestamps).
//!
//! Input layout: byte 0 chooses the context: `byte & 3` is 0 for messages from the primary
//! (`PrimaryMessage`), 1 from the standby (`StandbyMessage`), 2 BASE_BACKUP
//! (`BaseBackupMessage`), 3 pgoutput, whose options come from the other bits: protocol version
//! `1 + (byte >> 2) % 4`, bit 4 streaming (parallel when the version is 4 and bit 5 is set),
//! bit 6 two_phase, bit 7 binary and messages (options the version does not allow are left
//! off). The rest is a sequence of payloads, each an Int16 length then that many bytes (the
//! last one gets what is left).
//!
//! Checks, for every payload that decodes: it encodes back to exactly its bytes,
//! `payload_len()` agrees, `encode_copy_data` wraps it in one CopyData frame; for pgoutput the
//! stateful decoder and the stateless one agree, the stream state moves only on Stream Start
//! and Stream Stop, and an error leaves it unchanged. The whole input, read as text, goes
//! through `ReplicationCommand::parse` (a parsed command prints as text that parses to the same
//! command), `Lsn` and `Timestamp` (a parsed value prints as text that parses to it).

use bytes::BytesMut;

use crate::replication::pgoutput::{PgOutputDecoder, PgOutputMessage, PgOutputOptions, Streaming};
use crate::replication::{
    BaseBackupMessage, Lsn, Payload, PrimaryMessage, ReplicationCommand, StandbyMessage, Timestamp,
};

pub(super) fn run(data: &[u8]) {
    let Some((&ctx, rest)) = data.split_first() else {
        return;
    };
    text(rest);
    let mut pg = (ctx & 3 == 3).then(|| PgOutputDecoder::new(&options(ctx)));
    let mut input = rest;
    while !input.is_empty() {
        let (payload, tail) = match input {
            [hi, lo, tail @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                tail.split_at(n)
            }
            _ => (input, &[][..]),
        };
        input = tail;
        match (ctx & 3, &mut pg) {
            (0, _) => {
                if let Ok(m) = PrimaryMessage::decode(payload) {
                    same_bytes(&m, payload, m.name());
                }
            }
            (1, _) => {
                if let Ok(m) = StandbyMessage::decode(payload) {
                    same_bytes(&m, payload, m.name());
                }
            }
            (2, _) => {
                if let Ok(m) = BaseBackupMessage::decode(payload) {
                    same_bytes(&m, payload, m.name());
                }
            }
            (_, Some(dec)) => pgoutput(dec, payload),
            (_, None) => unreachable!("context 3 has a pgoutput decoder"),
        }
    }
}

fn options(ctx: u8) -> PgOutputOptions {
    let version = 1 + u32::from((ctx >> 2) % 4);
    let streaming = match (ctx & 16 != 0, ctx & 32 != 0) {
        (false, _) => Streaming::Off,
        (true, true) if version == 4 => Streaming::Parallel,
        (true, _) => Streaming::On,
    };
    let o = PgOutputOptions::new(version, ["p"]).expect("versions 1 to 4 are valid");
    let o = o.clone().with_streaming(streaming).unwrap_or(o);
    let o = o.clone().with_two_phase(ctx & 64 != 0).unwrap_or(o);
    o.with_binary(ctx & 128 != 0).with_messages(ctx & 128 != 0)
}

fn pgoutput(dec: &mut PgOutputDecoder, payload: &[u8]) {
    let before = dec.open_stream();
    let stateless = PgOutputMessage::decode(payload, dec.options(), before.is_some());
    let decoded = dec.decode(payload);
    assert_eq!(stateless, decoded, "stateless and stateful decoding differ");
    match decoded {
        Ok(m) => {
            same_bytes(&m, payload, m.name());
            match m {
                PgOutputMessage::StreamStart(s) => {
                    assert!(before.is_none());
                    assert_eq!(dec.open_stream(), Some(s.xid()));
                }
                PgOutputMessage::StreamStop => {
                    assert!(before.is_some());
                    assert_eq!(dec.open_stream(), None);
                }
                other => {
                    assert_eq!(dec.open_stream(), before);
                    // Inside a stream every change carries its xid; outside none does.
                    if let PgOutputMessage::Insert(i) = other {
                        assert_eq!(i.xid().is_some(), before.is_some());
                    }
                }
            }
        }
        Err(_) => assert_eq!(dec.open_stream(), before, "an error moved the stream state"),
    }
}

fn same_bytes(m: &impl Payload, payload: &[u8], name: &str) {
    assert!(!name.is_empty());
    let mut out = BytesMut::new();
    m.encode_payload(&mut out);
    assert_eq!(&out[..], payload, "{name} re-encodes to other bytes");
    assert_eq!(m.payload_len(), payload.len(), "{name}: payload_len");
    let mut frame = BytesMut::new();
    m.encode_copy_data(&mut frame);
    assert_eq!(frame.len(), payload.len() + 5);
    assert_eq!(&frame[5..], payload);
}

fn text(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(c) = ReplicationCommand::parse(s) {
        let again = ReplicationCommand::parse(&c.to_string());
        assert_eq!(again.as_ref(), Some(&c), "{c} does not parse back");
    }
    if let Ok(lsn) = s.parse::<Lsn>() {
        assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
    }
}
