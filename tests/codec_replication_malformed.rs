//! Malformed replication messages, table-driven: each hand-made CopyData payload must fail with
//! the exact `DecodeError`, naming the message and the field; a message the negotiated pgoutput
//! options or the stream state rule out must be refused; every cut of a valid message fails
//! without panicking; and every error prints lowercase without a final period.

mod common;

use common::Body;
use pgproto::replication::pgoutput::{
    PgOutputDecoder, PgOutputMessage, PgOutputOptions, Streaming,
};
use pgproto::replication::{BaseBackupMessage, PrimaryMessage, StandbyMessage};
use pgproto::{DecodeError, Tag};

/// What a payload is decoded as.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Primary,
    Standby,
    Backup,
    /// pgoutput under the options built by `options(version, flags)`, inside a stream or not.
    Pg {
        version: u32,
        flags: u8,
        in_stream: bool,
    },
}

const STREAMING: u8 = 1;
const PARALLEL: u8 = 2;
const TWO_PHASE: u8 = 4;
const BINARY: u8 = 8;
const MESSAGES: u8 = 16;

fn options(version: u32, flags: u8) -> PgOutputOptions {
    let streaming = if flags & PARALLEL != 0 {
        Streaming::Parallel
    } else if flags & STREAMING != 0 {
        Streaming::On
    } else {
        Streaming::Off
    };
    PgOutputOptions::new(version, ["p"])
        .unwrap()
        .with_streaming(streaming)
        .unwrap()
        .with_two_phase(flags & TWO_PHASE != 0)
        .unwrap()
        .with_binary(flags & BINARY != 0)
        .with_messages(flags & MESSAGES != 0)
}

fn decode(kind: Kind, bytes: &[u8]) -> Result<String, DecodeError> {
    Ok(match kind {
        Kind::Primary => format!("{:?}", PrimaryMessage::decode(bytes)?),
        Kind::Standby => format!("{:?}", StandbyMessage::decode(bytes)?),
        Kind::Backup => format!("{:?}", BaseBackupMessage::decode(bytes)?),
        Kind::Pg {
            version,
            flags,
            in_stream,
        } => {
            let o = options(version, flags);
            let m = PgOutputMessage::decode(bytes, &o, in_stream);
            // The stateful decoder agrees, and an error leaves its state as it was.
            let mut d = PgOutputDecoder::new(&o);
            if in_stream {
                d.decode(b"S\0\0\0\x01\x01").unwrap();
            }
            let before = d.open_stream();
            let m2 = d.decode(bytes);
            assert_eq!(m, m2);
            if m2.is_err() {
                assert_eq!(d.open_stream(), before);
            }
            format!("{:?}", m?)
        }
    })
}

fn b() -> Body {
    Body::new()
}

fn truncated(message: &'static str, field: &'static str) -> DecodeError {
    DecodeError::Truncated { message, field }
}
fn trailing(message: &'static str, extra: usize) -> DecodeError {
    DecodeError::TrailingBytes { message, extra }
}
fn value(message: &'static str, field: &'static str, value: i64) -> DecodeError {
    DecodeError::InvalidValue {
        message,
        field,
        value,
    }
}
fn count(message: &'static str, field: &'static str, count: i64) -> DecodeError {
    DecodeError::InvalidCount {
        message,
        field,
        count,
    }
}
fn nul(message: &'static str, field: &'static str) -> DecodeError {
    DecodeError::MissingNul { message, field }
}
fn not_allowed(message: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::NotAllowed { message, reason }
}
fn unknown(kind: &'static str, tag: u8) -> DecodeError {
    DecodeError::UnknownSubmessage {
        kind,
        tag: Tag(tag),
    }
}

const V1: Kind = Kind::Pg {
    version: 1,
    flags: 0,
    in_stream: false,
};
const V2S: Kind = Kind::Pg {
    version: 2,
    flags: STREAMING,
    in_stream: false,
};
const V2S_IN: Kind = Kind::Pg {
    version: 2,
    flags: STREAMING,
    in_stream: true,
};
const V3TP: Kind = Kind::Pg {
    version: 3,
    flags: TWO_PHASE,
    in_stream: false,
};
const V4P: Kind = Kind::Pg {
    version: 4,
    flags: PARALLEL,
    in_stream: false,
};

fn cases() -> Vec<(&'static str, Kind, Vec<u8>, DecodeError)> {
    let tuple_1 = |kind: u8, v: &[u8]| b().i16(1).u8(kind).i32(v.len() as i32).raw(v).build();
    vec![
        // --- streaming replication ---
        (
            "empty primary payload",
            Kind::Primary,
            vec![],
            truncated("streaming replication message", "type"),
        ),
        (
            "unknown primary type",
            Kind::Primary,
            b"x".to_vec(),
            unknown("streaming replication (primary)", b'x'),
        ),
        (
            "a standby message from the primary",
            Kind::Primary,
            b().u8(b'r').build(),
            unknown("streaming replication (primary)", b'r'),
        ),
        (
            "XLogData without its clock",
            Kind::Primary,
            b().u8(b'w').u64(1).u64(2).u32(0).build(),
            truncated("XLogData", "send time"),
        ),
        (
            "XLogData without its WAL end",
            Kind::Primary,
            b().u8(b'w').u64(1).build(),
            truncated("XLogData", "WAL end"),
        ),
        (
            "keepalive without its reply byte",
            Kind::Primary,
            b().u8(b'k').u64(1).i64(2).build(),
            truncated("PrimaryKeepalive", "reply requested"),
        ),
        (
            "keepalive with reply byte 2",
            Kind::Primary,
            b().u8(b'k').u64(1).i64(2).u8(2).build(),
            value("PrimaryKeepalive", "reply requested", 2),
        ),
        (
            "keepalive with a trailing byte",
            Kind::Primary,
            b().u8(b'k').u64(1).i64(2).u8(0).u8(0).build(),
            trailing("PrimaryKeepalive", 1),
        ),
        (
            "primary status update cut in its next xid",
            Kind::Primary,
            b().u8(b's').u64(1).u64(2).u32(3).build(),
            truncated("PrimaryStatusUpdate", "next xid"),
        ),
        (
            "empty standby payload",
            Kind::Standby,
            vec![],
            truncated("streaming replication message", "type"),
        ),
        (
            "unknown standby type",
            Kind::Standby,
            b"w".to_vec(),
            unknown("streaming replication (standby)", b'w'),
        ),
        (
            "status update without its apply LSN",
            Kind::Standby,
            b().u8(b'r').u64(1).u64(2).build(),
            truncated("StandbyStatusUpdate", "apply LSN"),
        ),
        (
            "status update with reply byte 255",
            Kind::Standby,
            b().u8(b'r').u64(1).u64(2).u64(3).i64(4).u8(255).build(),
            value("StandbyStatusUpdate", "reply requested", 255),
        ),
        (
            "feedback without its catalog xmin epoch",
            Kind::Standby,
            b().u8(b'h').i64(1).u32(2).u32(3).u32(4).build(),
            truncated("HotStandbyFeedback", "catalog xmin epoch"),
        ),
        (
            "feedback with a trailing byte",
            Kind::Standby,
            b().u8(b'h')
                .i64(1)
                .u32(2)
                .u32(3)
                .u32(4)
                .u32(5)
                .u8(9)
                .build(),
            trailing("HotStandbyFeedback", 1),
        ),
        (
            "status request cut",
            Kind::Standby,
            b().u8(b'p').u32(1).build(),
            truncated("PrimaryStatusRequest", "send time"),
        ),
        // --- BASE_BACKUP ---
        (
            "empty backup payload",
            Kind::Backup,
            vec![],
            truncated("BASE_BACKUP message", "type"),
        ),
        (
            "unknown backup type",
            Kind::Backup,
            b"w".to_vec(),
            unknown("BASE_BACKUP", b'w'),
        ),
        (
            "new archive without NUL",
            Kind::Backup,
            b().u8(b'n').raw(b"base.tar").build(),
            nul("BackupNewArchive", "archive name"),
        ),
        (
            "new archive without location",
            Kind::Backup,
            b().u8(b'n').cstr(b"base.tar").build(),
            nul("BackupNewArchive", "tablespace location"),
        ),
        (
            "new archive with trailing bytes",
            Kind::Backup,
            b().u8(b'n').cstr(b"a").cstr(b"").raw(b"zz").build(),
            trailing("BackupNewArchive", 2),
        ),
        (
            "manifest with a body",
            Kind::Backup,
            b"m\0".to_vec(),
            trailing("BackupManifest", 1),
        ),
        (
            "progress of 4 bytes",
            Kind::Backup,
            b().u8(b'p').u32(1).build(),
            truncated("BackupProgress", "bytes done"),
        ),
        (
            "progress with a trailing byte",
            Kind::Backup,
            b().u8(b'p').u64(1).u8(1).build(),
            trailing("BackupProgress", 1),
        ),
        // --- pgoutput: layouts ---
        (
            "empty pgoutput payload",
            V1,
            vec![],
            truncated("pgoutput message", "type"),
        ),
        (
            "unknown pgoutput type",
            V1,
            b"Z".to_vec(),
            unknown("pgoutput", b'Z'),
        ),
        (
            "Begin without its xid",
            V1,
            b().u8(b'B').u64(1).i64(2).build(),
            truncated("Begin", "xid"),
        ),
        (
            "Commit with flags 1",
            V1,
            b().u8(b'C').u8(1).u64(1).u64(2).i64(3).build(),
            value("Commit", "flags", 1),
        ),
        (
            "Commit without flags",
            V1,
            vec![b'C'],
            truncated("Commit", "flags"),
        ),
        (
            "Commit with a trailing byte",
            V1,
            b().u8(b'C').u8(0).u64(1).u64(2).i64(3).u8(0).build(),
            trailing("Commit", 1),
        ),
        (
            "Origin without NUL",
            V1,
            b().u8(b'O').u64(1).raw(b"node").build(),
            nul("Origin", "origin name"),
        ),
        (
            "Relation with identity x",
            V1,
            b().u8(b'R')
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'x')
                .i16(0)
                .build(),
            value("Relation", "replica identity", b'x'.into()),
        ),
        (
            "Relation with more columns than bytes",
            V1,
            b().u8(b'R')
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'd')
                .i16(1000)
                .build(),
            count("Relation", "columns", 1000),
        ),
        (
            "Relation column flags 2",
            V1,
            b().u8(b'R')
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'd')
                .i16(1)
                .u8(2)
                .cstr(b"c")
                .u32(23)
                .i32(-1)
                .build(),
            value("Relation", "column flags", 2),
        ),
        (
            "Relation column name without NUL",
            V1,
            b().u8(b'R')
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'd')
                .i16(1)
                .u8(0)
                .raw(b"abcdefghij")
                .build(),
            nul("Relation", "column name"),
        ),
        (
            "Relation column without its modifier",
            V1,
            b().u8(b'R')
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'd')
                .i16(1)
                .u8(0)
                .cstr(b"abcdef")
                .u32(23)
                .build(),
            truncated("Relation", "column type modifier"),
        ),
        (
            "Type without its name",
            V1,
            b().u8(b'Y').u32(1).cstr(b"s").build(),
            nul("Type", "type name"),
        ),
        (
            "Insert with tuple kind K",
            V1,
            b().u8(b'I').u32(1).u8(b'K').i16(0).build(),
            value("Insert", "tuple kind", b'K'.into()),
        ),
        (
            "Insert column kind x",
            V1,
            b().u8(b'I').u32(1).u8(b'N').i16(1).u8(b'x').build(),
            value("Insert", "column kind", b'x'.into()),
        ),
        (
            "Insert column length -1",
            V1,
            b().u8(b'I')
                .u32(1)
                .u8(b'N')
                .raw(&b().i16(1).u8(b't').i32(-1).build())
                .build(),
            count("Insert", "column length", -1),
        ),
        (
            "Insert column longer than the body",
            V1,
            b().u8(b'I')
                .u32(1)
                .u8(b'N')
                .raw(&b().i16(1).u8(b't').i32(5).raw(b"ab").build())
                .build(),
            truncated("Insert", "column value"),
        ),
        (
            "Insert with more columns than bytes",
            V1,
            b().u8(b'I').u32(1).u8(b'N').i16(3).u8(b'n').build(),
            count("Insert", "tuple values", 3),
        ),
        (
            "Insert with a trailing byte",
            V1,
            b().u8(b'I')
                .u32(1)
                .u8(b'N')
                .raw(&tuple_1(b't', b"1"))
                .u8(0)
                .build(),
            trailing("Insert", 1),
        ),
        (
            "Update without its new tuple",
            V1,
            b().u8(b'U')
                .u32(1)
                .u8(b'O')
                .raw(&tuple_1(b't', b"1"))
                .build(),
            truncated("Update", "new tuple kind"),
        ),
        (
            "Update with O then O",
            V1,
            b().u8(b'U')
                .u32(1)
                .u8(b'O')
                .raw(&tuple_1(b't', b"1"))
                .u8(b'O')
                .build(),
            value("Update", "new tuple kind", b'O'.into()),
        ),
        (
            "Update with tuple kind x",
            V1,
            b().u8(b'U').u32(1).u8(b'x').build(),
            value("Update", "tuple kind", b'x'.into()),
        ),
        (
            "Delete with tuple kind N",
            V1,
            b().u8(b'D')
                .u32(1)
                .u8(b'N')
                .raw(&tuple_1(b't', b"1"))
                .build(),
            value("Delete", "tuple kind", b'N'.into()),
        ),
        (
            "Truncate with count -1",
            V1,
            b().u8(b'T').i32(-1).u8(0).build(),
            count("Truncate", "relation count", -1),
        ),
        (
            "Truncate with option bit 4",
            V1,
            b().u8(b'T').i32(0).u8(4).build(),
            value("Truncate", "options", 4),
        ),
        (
            "Truncate with more relations than bytes",
            V1,
            b().u8(b'T').i32(2).u8(0).u32(1).build(),
            count("Truncate", "relations", 2),
        ),
        (
            "Message content length -2",
            Kind::Pg {
                version: 1,
                flags: MESSAGES,
                in_stream: false,
            },
            b().u8(b'M').u8(0).u64(1).cstr(b"p").i32(-2).build(),
            count("Message", "content length", -2),
        ),
        (
            "Message flags 3",
            Kind::Pg {
                version: 1,
                flags: MESSAGES,
                in_stream: false,
            },
            b().u8(b'M').u8(3).build(),
            value("Message", "flags", 3),
        ),
        (
            "Message content cut",
            Kind::Pg {
                version: 1,
                flags: MESSAGES,
                in_stream: false,
            },
            b().u8(b'M')
                .u8(1)
                .u64(1)
                .cstr(b"p")
                .i32(4)
                .raw(b"ab")
                .build(),
            truncated("Message", "content"),
        ),
        (
            "Stream Start first-segment byte 2",
            V2S,
            b().u8(b'S').u32(1).u8(2).build(),
            value("StreamStart", "first segment", 2),
        ),
        (
            "Stream Stop with a body",
            V2S_IN,
            b"E\0".to_vec(),
            trailing("StreamStop", 1),
        ),
        (
            "Stream Commit with flags 1",
            V2S,
            b().u8(b'c').u32(1).u8(1).build(),
            value("StreamCommit", "flags", 1),
        ),
        (
            "Stream Abort without the parallel fields",
            V4P,
            b().u8(b'A').u32(1).u32(1).build(),
            truncated("StreamAbort", "abort LSN"),
        ),
        (
            "Stream Abort with the parallel fields, streaming on",
            Kind::Pg {
                version: 4,
                flags: STREAMING,
                in_stream: false,
            },
            b().u8(b'A').u32(1).u32(1).u64(1).i64(1).build(),
            trailing("StreamAbort", 16),
        ),
        (
            "Prepare without NUL in its gid",
            V3TP,
            b().u8(b'P')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .raw(b"gid")
                .build(),
            nul("Prepare", "gid"),
        ),
        (
            "Begin Prepare cut in its xid",
            V3TP,
            b().u8(b'b').u64(1).u64(2).i64(3).u16(4).build(),
            truncated("BeginPrepare", "xid"),
        ),
        (
            "Rollback Prepared with flags 9",
            V3TP,
            b().u8(b'r').u8(9).build(),
            value("RollbackPrepared", "flags", 9),
        ),
        // --- pgoutput: what the options and the stream rule out ---
        (
            "a binary value without the binary option",
            V1,
            b().u8(b'I')
                .u32(1)
                .u8(b'N')
                .raw(&tuple_1(b'b', b"\0\0\0\x01"))
                .build(),
            not_allowed(
                "Insert",
                "a binary column value, but the binary option is off",
            ),
        ),
        (
            "Message without the messages option",
            V1,
            b().u8(b'M').u8(0).u64(1).cstr(b"p").i32(0).build(),
            not_allowed("Message", "the messages option is off"),
        ),
        (
            "Stream Start without streaming",
            Kind::Pg {
                version: 2,
                flags: 0,
                in_stream: false,
            },
            b().u8(b'S').u32(1).u8(1).build(),
            not_allowed("StreamStart", "streaming is off"),
        ),
        (
            "Stream Start inside a stream",
            V2S_IN,
            b().u8(b'S').u32(1).u8(0).build(),
            not_allowed("StreamStart", "inside a streamed transaction"),
        ),
        (
            "Stream Stop outside a stream",
            V2S,
            b"E".to_vec(),
            not_allowed("StreamStop", "outside a streamed transaction"),
        ),
        (
            "Stream Stop without streaming",
            V1,
            b"E".to_vec(),
            not_allowed("StreamStop", "streaming is off"),
        ),
        (
            "Begin inside a stream",
            V2S_IN,
            b().u8(b'B').u64(1).i64(2).u32(3).build(),
            not_allowed("Begin", "inside a streamed transaction"),
        ),
        (
            "Commit inside a stream",
            V2S_IN,
            b().u8(b'C').u8(0).u64(1).u64(2).i64(3).build(),
            not_allowed("Commit", "inside a streamed transaction"),
        ),
        (
            "Stream Commit inside a stream",
            V2S_IN,
            b().u8(b'c').u32(1).u8(0).u64(1).u64(2).i64(3).build(),
            not_allowed("StreamCommit", "inside a streamed transaction"),
        ),
        (
            "Stream Abort without streaming",
            Kind::Pg {
                version: 4,
                flags: 0,
                in_stream: false,
            },
            b().u8(b'A').u32(1).u32(1).build(),
            not_allowed("StreamAbort", "streaming is off"),
        ),
        (
            "Prepare without two_phase",
            Kind::Pg {
                version: 3,
                flags: 0,
                in_stream: false,
            },
            b().u8(b'P')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .cstr(b"g")
                .build(),
            not_allowed("Prepare", "two_phase is off"),
        ),
        (
            "Commit Prepared under version 1",
            V1,
            b().u8(b'K')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .cstr(b"g")
                .build(),
            not_allowed("CommitPrepared", "two_phase is off"),
        ),
        (
            "Stream Prepare without streaming",
            V3TP,
            b().u8(b'p')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .cstr(b"g")
                .build(),
            not_allowed("StreamPrepare", "two_phase or streaming is off"),
        ),
        (
            "Rollback Prepared inside a stream",
            Kind::Pg {
                version: 3,
                flags: TWO_PHASE | STREAMING,
                in_stream: true,
            },
            b().u8(b'r').u8(0).build(),
            not_allowed("RollbackPrepared", "inside a streamed transaction"),
        ),
        // Inside a stream the xid comes first: an Insert without one is read as if it had.
        (
            "an Insert without xid inside a stream",
            V2S_IN,
            b().u8(b'I').u32(1).u8(b'N').i16(0).build(),
            truncated("Insert", "relation OID"),
        ),
        (
            "an Insert with xid outside a stream",
            V2S,
            b().u8(b'I').u32(7).u32(1).u8(b'N').i16(0).build(),
            value("Insert", "tuple kind", 0),
        ),
    ]
}

#[test]
fn malformed_messages_fail_with_the_exact_error() {
    for (name, kind, bytes, want) in cases() {
        match decode(kind, &bytes) {
            Ok(m) => panic!("{name}: decoded as {m}"),
            Err(e) => assert_eq!(e, want, "{name}"),
        }
    }
}

#[test]
fn error_texts_are_lowercase_without_period() {
    for (name, _, _, e) in cases() {
        let s = e.to_string();
        assert!(
            s.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{name}: {s}"
        );
        assert!(!s.ends_with('.'), "{name}: {s}");
    }
    assert_eq!(
        not_allowed("StreamStart", "streaming is off").to_string(),
        "unexpected StreamStart: streaming is off"
    );
    assert_eq!(
        unknown("pgoutput", b'Z').to_string(),
        "unknown pgoutput message type 'Z'"
    );
}

/// Valid messages of every kind: each cut short fails (never panics, never decodes as
/// something else that re-encodes to the cut bytes), and a byte appended is refused unless the
/// message ends with raw data.
#[test]
fn every_cut_of_a_valid_message_fails() {
    let pg = |bytes: Vec<u8>, in_stream: bool| {
        (
            Kind::Pg {
                version: 4,
                flags: PARALLEL | TWO_PHASE | BINARY | MESSAGES,
                in_stream,
            },
            bytes,
        )
    };
    let valid: Vec<(Kind, Vec<u8>)> = vec![
        (Kind::Primary, b().u8(b'k').u64(1).i64(2).u8(1).build()),
        (
            Kind::Primary,
            b().u8(b's').u64(1).u64(2).u64(3).i64(4).build(),
        ),
        (
            Kind::Standby,
            b().u8(b'r').u64(1).u64(2).u64(3).i64(4).u8(0).build(),
        ),
        (
            Kind::Standby,
            b().u8(b'h').i64(1).u32(2).u32(3).u32(4).u32(5).build(),
        ),
        (
            Kind::Backup,
            b().u8(b'n').cstr(b"base.tar").cstr(b"").build(),
        ),
        (Kind::Backup, b().u8(b'p').u64(77).build()),
        pg(b().u8(b'B').u64(1).i64(2).u32(3).build(), false),
        pg(
            b().u8(b'R')
                .u32(9)
                .u32(1)
                .cstr(b"s")
                .cstr(b"t")
                .u8(b'i')
                .i16(1)
                .u8(1)
                .cstr(b"c")
                .u32(23)
                .i32(-1)
                .build(),
            true,
        ),
        pg(
            b().u8(b'U')
                .u32(1)
                .u8(b'K')
                .raw(&b().i16(2).u8(b'b').i32(2).raw(b"\0\x01").u8(b'n').build())
                .u8(b'N')
                .raw(&b().i16(2).u8(b't').i32(1).raw(b"x").u8(b'u').build())
                .build(),
            false,
        ),
        pg(b().u8(b'T').u32(5).i32(1).u8(1).u32(10).build(), true),
        pg(b().u8(b'A').u32(1).u32(2).u64(3).i64(4).build(), false),
        pg(
            b().u8(b'r')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .i64(4)
                .u32(5)
                .cstr(b"g")
                .build(),
            false,
        ),
        pg(
            b().u8(b'M')
                .u32(1)
                .u8(1)
                .u64(2)
                .cstr(b"p")
                .i32(1)
                .raw(b"c")
                .build(),
            true,
        ),
    ];
    for (kind, bytes) in valid {
        let whole = decode(kind, &bytes).unwrap_or_else(|e| panic!("{kind:?} {bytes:?}: {e}"));
        for cut in 0..bytes.len() {
            assert!(
                decode(kind, &bytes[..cut]).is_err(),
                "{whole}: cut at {cut} decodes"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            decode(kind, &longer).is_err(),
            "{whole}: a byte more decodes"
        );
    }
}
