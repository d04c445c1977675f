//! Round trips for every message carried inside CopyData on a replication connection
//! (streaming replication, BASE_BACKUP, pgoutput v1 to v4), through the public API only.
//!
//! For each message: value -> encode -> decode (in a context that allows it) gives back the
//! value; the decoded value encodes back to the same bytes; `payload_len()` is exactly what
//! `encode_payload` appends, and `encode_copy_data` wraps those bytes in one CopyData frame.
//! Values are built from owned models (proptest strategies), since the messages borrow.

mod common;

use bytes::BytesMut;
use common::{cbytes, raw_bytes};
use pgproto::replication::pgoutput::{
    Begin, Commit, Delete, Insert, LogicalMessage, OldTuple, Origin, PgOutputDecoder,
    PgOutputMessage, PgOutputOptions, Prepared, Relation, RelationColumn, ReplicaIdentity,
    RollbackPrepared, StreamAbort, StreamCommit, StreamStart, Streaming, Truncate, TupleData,
    TupleValue, Type, Update,
};
use pgproto::replication::{
    BackupData, BaseBackupMessage, HotStandbyFeedback, Lsn, NewArchive, Payload, PrimaryKeepalive,
    PrimaryMessage, PrimaryStatusRequest, PrimaryStatusUpdate, StandbyMessage, StandbyStatusUpdate,
    Timestamp, XLogData,
};
use pgproto::{BackendDecoder, BackendMessage, FrontendDecoder, FrontendMessage, Limits};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Encodes `m` after a prefix, checks `payload_len` and that nothing before was touched, and
/// that `encode_copy_data` is one CopyData frame around the same bytes; returns the payload.
fn encode(m: &impl Payload) -> Result<Vec<u8>, TestCaseError> {
    let prefix = b"xyz";
    let mut out = BytesMut::from(&prefix[..]);
    m.encode_payload(&mut out);
    prop_assert_eq!(&out[..3], prefix);
    prop_assert_eq!(m.payload_len(), out.len() - 3);
    let payload = out[3..].to_vec();
    let mut frame = BytesMut::new();
    m.encode_copy_data(&mut frame);
    prop_assert_eq!(frame[0], b'd');
    prop_assert_eq!(
        i32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize,
        payload.len() + 4
    );
    prop_assert_eq!(&frame[5..], &payload[..]);
    Ok(payload)
}

fn lsn() -> impl Strategy<Value = Lsn> {
    any::<u64>().prop_map(Lsn::new)
}

fn time() -> impl Strategy<Value = Timestamp> {
    any::<i64>().prop_map(Timestamp::from_micros)
}

// ---------------------------------------------------------------------------------------------
// Streaming replication and BASE_BACKUP
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum PrimaryModel {
    XLogData(Lsn, Lsn, Timestamp, Vec<u8>),
    Keepalive(Lsn, Timestamp, bool),
    Status(Lsn, u64, u64, Timestamp),
}

fn primary_model() -> impl Strategy<Value = PrimaryModel> {
    prop_oneof![
        (lsn(), lsn(), time(), raw_bytes(300))
            .prop_map(|(a, b, t, d)| PrimaryModel::XLogData(a, b, t, d)),
        (lsn(), time(), any::<bool>()).prop_map(|(a, t, r)| PrimaryModel::Keepalive(a, t, r)),
        (lsn(), any::<u64>(), any::<u64>(), time())
            .prop_map(|(a, o, n, t)| PrimaryModel::Status(a, o, n, t)),
    ]
}

fn standby_model() -> impl Strategy<Value = StandbyMessage> {
    prop_oneof![
        (lsn(), lsn(), lsn(), time(), any::<bool>()).prop_map(|(w, f, a, t, r)| {
            StandbyMessage::StandbyStatusUpdate(StandbyStatusUpdate::new(w, f, a, t, r))
        }),
        (time(), any::<[u32; 4]>()).prop_map(|(t, x)| {
            StandbyMessage::HotStandbyFeedback(HotStandbyFeedback::new(t, x[0], x[1], x[2], x[3]))
        }),
        time().prop_map(|t| StandbyMessage::PrimaryStatusRequest(PrimaryStatusRequest::new(t))),
    ]
}

#[derive(Debug, Clone)]
enum BackupModel {
    NewArchive(Vec<u8>, Vec<u8>),
    Manifest,
    Data(Vec<u8>),
    Progress(u64),
}

fn backup_model() -> impl Strategy<Value = BackupModel> {
    prop_oneof![
        (cbytes(40), cbytes(40)).prop_map(|(n, l)| BackupModel::NewArchive(n, l)),
        Just(BackupModel::Manifest),
        raw_bytes(300).prop_map(BackupModel::Data),
        any::<u64>().prop_map(BackupModel::Progress),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn primary_messages(model in primary_model()) {
        let m = match &model {
            PrimaryModel::XLogData(a, b, t, d) => {
                PrimaryMessage::XLogData(XLogData::new(*a, *b, *t, d).unwrap())
            }
            PrimaryModel::Keepalive(a, t, r) => {
                PrimaryMessage::PrimaryKeepalive(PrimaryKeepalive::new(*a, *t, *r))
            }
            PrimaryModel::Status(a, o, n, t) => {
                PrimaryMessage::PrimaryStatusUpdate(PrimaryStatusUpdate::new(*a, *o, *n, *t))
            }
        };
        let bytes = encode(&m)?;
        let back = PrimaryMessage::decode(&bytes).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(encode(&back)?, bytes.clone());
        // The server side: the same payload in a CopyData frame from the backend decoder.
        let mut frame = BytesMut::new();
        m.encode_copy_data(&mut frame);
        let mut dec = BackendDecoder::new();
        dec.receive(&frame);
        let Some(BackendMessage::CopyData(c)) = dec.next().unwrap() else {
            panic!("not a CopyData")
        };
        prop_assert_eq!(PrimaryMessage::decode(c.data()).unwrap(), m);
        if let PrimaryMessage::XLogData(x) = m {
            prop_assert_eq!(x.data_end().as_u64(), x.wal_start().as_u64().saturating_add(x.data().len() as u64));
        }
    }

    #[test]
    fn standby_messages(m in standby_model()) {
        let bytes = encode(&m)?;
        prop_assert_eq!(bytes.len(), match m {
            StandbyMessage::StandbyStatusUpdate(_) => 34,
            StandbyMessage::HotStandbyFeedback(_) => 25,
            StandbyMessage::PrimaryStatusRequest(_) => 9,
            _ => unreachable!(),
        });
        let back = StandbyMessage::decode(&bytes).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(encode(&back)?, bytes);
        // The client side: a CopyData frame from the frontend decoder.
        let mut frame = BytesMut::new();
        m.encode_copy_data(&mut frame);
        let mut dec = FrontendDecoder::after_startup(Limits::default());
        dec.receive(&frame);
        let Some(FrontendMessage::CopyData(c)) = dec.next().unwrap() else {
            panic!("not a CopyData")
        };
        prop_assert_eq!(StandbyMessage::decode(c.data()).unwrap(), m);
    }

    #[test]
    fn base_backup_messages(model in backup_model()) {
        let m = match &model {
            BackupModel::NewArchive(n, l) => {
                BaseBackupMessage::NewArchive(NewArchive::new(n, l).unwrap())
            }
            BackupModel::Manifest => BaseBackupMessage::Manifest,
            BackupModel::Data(d) => BaseBackupMessage::Data(BackupData::new(d).unwrap()),
            BackupModel::Progress(n) => BaseBackupMessage::Progress(*n),
        };
        let bytes = encode(&m)?;
        let back = BaseBackupMessage::decode(&bytes).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(encode(&back)?, bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// pgoutput
// ---------------------------------------------------------------------------------------------

/// An owned column value.
#[derive(Debug, Clone)]
enum V {
    Null,
    Toast,
    Text(Vec<u8>),
    Bin(Vec<u8>),
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        Just(V::Null),
        Just(V::Toast),
        raw_bytes(30).prop_map(V::Text),
        raw_bytes(30).prop_map(V::Bin),
    ]
}

fn values() -> impl Strategy<Value = Vec<V>> {
    vec(value(), 0..8)
}

fn tv(v: &V) -> TupleValue<'_> {
    match v {
        V::Null => TupleValue::Null,
        V::Toast => TupleValue::UnchangedToast,
        V::Text(b) => TupleValue::Text(b),
        V::Bin(b) => TupleValue::Binary(b),
    }
}

#[derive(Debug, Clone)]
struct PreparedModel(Lsn, Lsn, Timestamp, u32, Vec<u8>);

fn prepared() -> impl Strategy<Value = PreparedModel> {
    (lsn(), lsn(), time(), any::<u32>(), cbytes(20))
        .prop_map(|(a, b, t, x, g)| PreparedModel(a, b, t, x, g))
}

type Column = (bool, Vec<u8>, u32, i32);

/// The owned form of every pgoutput message.
#[derive(Debug, Clone)]
enum PgModel {
    Begin(Lsn, Timestamp, u32),
    Message(Option<u32>, bool, Lsn, Vec<u8>, Vec<u8>),
    Commit(Lsn, Lsn, Timestamp),
    Origin(Lsn, Vec<u8>),
    Relation(Option<u32>, u32, Vec<u8>, Vec<u8>, u8, Vec<Column>),
    Type(Option<u32>, u32, Vec<u8>, Vec<u8>),
    Insert(Option<u32>, u32, Vec<V>),
    Update(Option<u32>, u32, Option<(bool, Vec<V>)>, Vec<V>),
    Delete(Option<u32>, u32, bool, Vec<V>),
    Truncate(Option<u32>, u8, Vec<u32>),
    StreamStart(u32, bool),
    StreamStop,
    StreamCommit(u32, Lsn, Lsn, Timestamp),
    StreamAbort(u32, u32, Option<(Lsn, Timestamp)>),
    BeginPrepare(PreparedModel),
    Prepare(PreparedModel),
    CommitPrepared(PreparedModel),
    RollbackPrepared(Lsn, Lsn, Timestamp, Timestamp, u32, Vec<u8>),
    StreamPrepare(PreparedModel),
}

fn pg_model() -> impl Strategy<Value = PgModel> {
    let xid = || option::of(any::<u32>());
    prop_oneof![
        (lsn(), time(), any::<u32>()).prop_map(|(l, t, x)| PgModel::Begin(l, t, x)),
        (xid(), any::<bool>(), lsn(), cbytes(20), raw_bytes(40))
            .prop_map(|(x, tr, l, p, c)| PgModel::Message(x, tr, l, p, c)),
        (lsn(), lsn(), time()).prop_map(|(a, b, t)| PgModel::Commit(a, b, t)),
        (lsn(), cbytes(20)).prop_map(|(l, n)| PgModel::Origin(l, n)),
        (
            xid(),
            any::<u32>(),
            cbytes(12),
            cbytes(12),
            0..4u8,
            vec(
                (any::<bool>(), cbytes(12), any::<u32>(), any::<i32>()),
                0..6
            )
        )
            .prop_map(|(x, o, ns, n, ri, c)| PgModel::Relation(x, o, ns, n, ri, c)),
        (xid(), any::<u32>(), cbytes(12), cbytes(12))
            .prop_map(|(x, o, ns, n)| PgModel::Type(x, o, ns, n)),
        (xid(), any::<u32>(), values()).prop_map(|(x, r, v)| PgModel::Insert(x, r, v)),
        (
            xid(),
            any::<u32>(),
            option::of((any::<bool>(), values())),
            values()
        )
            .prop_map(|(x, r, o, n)| PgModel::Update(x, r, o, n)),
        (xid(), any::<u32>(), any::<bool>(), values())
            .prop_map(|(x, r, k, o)| PgModel::Delete(x, r, k, o)),
        (xid(), 0..4u8, vec(any::<u32>(), 0..6)).prop_map(|(x, o, r)| PgModel::Truncate(x, o, r)),
        (any::<u32>(), any::<bool>()).prop_map(|(x, f)| PgModel::StreamStart(x, f)),
        Just(PgModel::StreamStop),
        (any::<u32>(), lsn(), lsn(), time())
            .prop_map(|(x, a, b, t)| PgModel::StreamCommit(x, a, b, t)),
        (any::<u32>(), any::<u32>(), option::of((lsn(), time())))
            .prop_map(|(x, s, a)| PgModel::StreamAbort(x, s, a)),
        prepared().prop_map(PgModel::BeginPrepare),
        prepared().prop_map(PgModel::Prepare),
        prepared().prop_map(PgModel::CommitPrepared),
        (lsn(), lsn(), time(), time(), any::<u32>(), cbytes(20))
            .prop_map(|(a, b, t, u, x, g)| PgModel::RollbackPrepared(a, b, t, u, x, g)),
        prepared().prop_map(PgModel::StreamPrepare),
    ]
}

const IDENTITIES: [ReplicaIdentity; 4] = [
    ReplicaIdentity::Default,
    ReplicaIdentity::Nothing,
    ReplicaIdentity::Full,
    ReplicaIdentity::Index,
];

fn prep(m: &PreparedModel) -> Prepared<'_> {
    Prepared::new(m.0, m.1, m.2, m.3, &m.4).unwrap()
}

/// Builds the message of `model` and hands it to `f` (the message borrows the model).
fn with_message<R>(model: &PgModel, f: impl FnOnce(PgOutputMessage<'_>) -> R) -> R {
    use PgOutputMessage as M;
    match model {
        PgModel::Begin(l, t, x) => f(M::Begin(Begin::new(*l, *t, *x))),
        PgModel::Message(x, tr, l, p, c) => {
            f(M::Message(LogicalMessage::new(*x, *tr, *l, p, c).unwrap()))
        }
        PgModel::Commit(a, b, t) => f(M::Commit(Commit::new(*a, *b, *t))),
        PgModel::Origin(l, n) => f(M::Origin(Origin::new(*l, n).unwrap())),
        PgModel::Relation(x, o, ns, n, ri, cols) => {
            let columns: Vec<RelationColumn<'_>> = cols
                .iter()
                .map(|(key, name, type_oid, type_modifier)| RelationColumn {
                    key: *key,
                    name,
                    type_oid: *type_oid,
                    type_modifier: *type_modifier,
                })
                .collect();
            let r = Relation::new(*x, *o, ns, n, IDENTITIES[*ri as usize], &columns).unwrap();
            f(M::Relation(r))
        }
        PgModel::Type(x, o, ns, n) => f(M::Type(Type::new(*x, *o, ns, n).unwrap())),
        PgModel::Insert(x, r, v) => {
            let v: Vec<_> = v.iter().map(tv).collect();
            f(M::Insert(
                Insert::new(*x, *r, TupleData::new(&v).unwrap()).unwrap(),
            ))
        }
        PgModel::Update(x, r, old, new) => {
            let new: Vec<_> = new.iter().map(tv).collect();
            let old_values: Vec<_> = old.iter().flat_map(|(_, v)| v.iter().map(tv)).collect();
            let old = old.as_ref().map(|(key, _)| {
                let t = TupleData::new(&old_values).unwrap();
                if *key {
                    OldTuple::Key(t)
                } else {
                    OldTuple::Full(t)
                }
            });
            f(M::Update(
                Update::new(*x, *r, old, TupleData::new(&new).unwrap()).unwrap(),
            ))
        }
        PgModel::Delete(x, r, key, old) => {
            let old: Vec<_> = old.iter().map(tv).collect();
            let t = TupleData::new(&old).unwrap();
            let old = if *key {
                OldTuple::Key(t)
            } else {
                OldTuple::Full(t)
            };
            f(M::Delete(Delete::new(*x, *r, old).unwrap()))
        }
        PgModel::Truncate(x, o, r) => f(M::Truncate(Truncate::new(*x, *o, r).unwrap())),
        PgModel::StreamStart(x, first) => f(M::StreamStart(StreamStart::new(*x, *first))),
        PgModel::StreamStop => f(M::StreamStop),
        PgModel::StreamCommit(x, a, b, t) => f(M::StreamCommit(StreamCommit::new(*x, *a, *b, *t))),
        PgModel::StreamAbort(x, s, a) => f(M::StreamAbort(StreamAbort::new(*x, *s, *a))),
        PgModel::BeginPrepare(p) => f(M::BeginPrepare(prep(p))),
        PgModel::Prepare(p) => f(M::Prepare(prep(p))),
        PgModel::CommitPrepared(p) => f(M::CommitPrepared(prep(p))),
        PgModel::RollbackPrepared(a, b, t, u, x, g) => f(M::RollbackPrepared(
            RollbackPrepared::new(*a, *b, *t, *u, *x, g).unwrap(),
        )),
        PgModel::StreamPrepare(p) => f(M::StreamPrepare(prep(p))),
    }
}

/// Whether the message needs an open stream (`Some(true)`), needs none (`Some(false)`), or
/// does not care (`None`); and whether it carries binary values.
fn needs(m: &PgOutputMessage<'_>) -> (Option<bool>, bool) {
    use PgOutputMessage as M;
    let binary = |t: TupleData<'_>| t.values().any(|v| matches!(v, TupleValue::Binary(_)));
    match m {
        M::Message(x) => (Some(x.xid().is_some()), false),
        M::Relation(x) => (Some(x.xid().is_some()), false),
        M::Type(x) => (Some(x.xid().is_some()), false),
        M::Truncate(x) => (Some(x.xid().is_some()), false),
        M::Insert(x) => (Some(x.xid().is_some()), binary(x.new_tuple())),
        M::Update(x) => (
            Some(x.xid().is_some()),
            binary(x.new_tuple()) || x.old().is_some_and(|o| binary(o.tuple())),
        ),
        M::Delete(x) => (Some(x.xid().is_some()), binary(x.old().tuple())),
        M::StreamStop => (Some(true), false),
        M::Origin(_) => (None, false),
        _ => (Some(false), false),
    }
}

/// The options under which `m` may come (inside a stream if `in_stream`), with the free
/// choices taken from `seed`.
fn options_for(m: &PgOutputMessage<'_>, seed: u8, in_stream: bool) -> PgOutputOptions {
    use PgOutputMessage as M;
    let (_, binary) = needs(m);
    let (stream, two_phase, parallel) = match m {
        M::StreamStart(_) | M::StreamStop | M::StreamCommit(_) => (true, false, None),
        M::StreamAbort(a) => (true, false, Some(a.abort().is_some())),
        M::Message(x) if x.xid().is_some() => (true, false, None),
        M::Relation(x) if x.xid().is_some() => (true, false, None),
        M::Type(x) if x.xid().is_some() => (true, false, None),
        M::Insert(x) if x.xid().is_some() => (true, false, None),
        M::Update(x) if x.xid().is_some() => (true, false, None),
        M::Delete(x) if x.xid().is_some() => (true, false, None),
        M::Truncate(x) if x.xid().is_some() => (true, false, None),
        M::BeginPrepare(_) | M::Prepare(_) | M::CommitPrepared(_) | M::RollbackPrepared(_) => {
            (false, true, None)
        }
        M::StreamPrepare(_) => (true, true, None),
        _ => (in_stream, false, None),
    };
    let mut version = 1;
    if stream {
        version = 2;
    }
    if two_phase {
        version = 3;
    }
    if parallel == Some(true) {
        version = 4;
    }
    // Free choices: a newer version, more options on.
    let version = (version + u32::from(seed % 4)).min(4);
    let streaming = match parallel {
        Some(true) => Streaming::Parallel,
        // Without the abort fields: streaming on, or parallel below version 4 (impossible).
        Some(false) => Streaming::On,
        None if stream => {
            if version == 4 && seed & 4 != 0 {
                Streaming::Parallel
            } else {
                Streaming::On
            }
        }
        None if version >= 2 && seed & 8 != 0 => Streaming::On,
        None => Streaming::Off,
    };
    let two_phase = two_phase || (version >= 3 && seed & 16 != 0);
    PgOutputOptions::new(version, ["p"])
        .unwrap()
        .with_streaming(streaming)
        .unwrap()
        .with_two_phase(two_phase)
        .unwrap()
        .with_binary(binary || seed & 32 != 0)
        .with_messages(matches!(m, M::Message(_)) || seed & 64 != 0)
}

fn check_pgoutput(m: PgOutputMessage<'_>, seed: u8) -> Result<(), TestCaseError> {
    let bytes = encode(&m)?;
    prop_assert_eq!(bytes[0], m.tag());
    let (stream, _) = needs(&m);
    let in_stream = stream.unwrap_or(seed & 128 != 0);
    let options = options_for(&m, seed, in_stream);
    let back = PgOutputMessage::decode(&bytes, &options, in_stream)
        .map_err(|e| TestCaseError::fail(format!("{e} under {options:?}")))?;
    prop_assert_eq!(back, m);
    prop_assert_eq!(back.name(), m.name());
    prop_assert_eq!(encode(&back)?, bytes.clone());

    // The stateful decoder, after a Stream Start when a stream must be open.
    let mut dec = PgOutputDecoder::new(&options);
    if in_stream {
        dec.decode(b"S\0\0\0\x09\x01").unwrap();
        prop_assert_eq!(dec.open_stream(), Some(9));
    }
    prop_assert_eq!(dec.decode(&bytes).unwrap(), m);
    match m {
        PgOutputMessage::StreamStart(s) => prop_assert_eq!(dec.open_stream(), Some(s.xid())),
        PgOutputMessage::StreamStop => prop_assert_eq!(dec.open_stream(), None),
        _ => prop_assert_eq!(dec.open_stream(), in_stream.then_some(9)),
    }

    // Inside an XLogData, written without building the data first.
    let mut frame = BytesMut::new();
    XLogData::encode_copy_data_with(&mut frame, Lsn::new(1), Lsn::new(2), Timestamp::EPOCH, &m)
        .unwrap();
    let PrimaryMessage::XLogData(x) = PrimaryMessage::decode(&frame[5..]).unwrap() else {
        panic!("not XLogData")
    };
    prop_assert_eq!(x.data(), &bytes[..]);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pgoutput_messages(model in pg_model(), seed in any::<u8>()) {
        with_message(&model, |m| check_pgoutput(m, seed))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Bytes written by hand, as the documentation lays them out
// ---------------------------------------------------------------------------------------------

use common::Body;

fn b() -> Body {
    Body::new()
}

fn decode_hand<'a>(
    bytes: &'a [u8],
    options: &PgOutputOptions,
    in_stream: bool,
) -> PgOutputMessage<'a> {
    let m = PgOutputMessage::decode(bytes, options, in_stream).unwrap();
    let mut out = BytesMut::new();
    m.encode_payload(&mut out);
    assert_eq!(&out[..], bytes, "{m:?} re-encodes to other bytes");
    m
}

#[test]
fn pgoutput_by_hand() {
    let v1 = PgOutputOptions::new(1, ["p"]).unwrap();
    let begin = b()
        .u8(b'B')
        .u64(0x16_B374_D848)
        .i64(1_000_000)
        .u32(742)
        .build();
    let PgOutputMessage::Begin(m) = decode_hand(&begin, &v1, false) else {
        panic!()
    };
    assert_eq!(m.final_lsn().to_string(), "16/B374D848");
    assert_eq!(m.commit_time().to_string(), "2000-01-01 00:00:01+00");
    assert_eq!(m.xid(), 742);

    let relation = b()
        .u8(b'R')
        .u32(16_385)
        .cstr(b"public")
        .cstr(b"t")
        .u8(b'f')
        .i16(2)
        .u8(1)
        .cstr(b"id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .cstr(b"v")
        .u32(1043)
        .i32(14)
        .build();
    let PgOutputMessage::Relation(r) = decode_hand(&relation, &v1, false) else {
        panic!()
    };
    assert_eq!(
        (r.oid(), r.namespace(), r.name(), r.replica_identity()),
        (16_385, &b"public"[..], &b"t"[..], ReplicaIdentity::Full)
    );
    let cols: Vec<_> = r.columns().collect();
    assert_eq!(cols.len(), 2);
    assert_eq!(
        cols[1],
        RelationColumn {
            key: false,
            name: b"v",
            type_oid: 1043,
            type_modifier: 14
        }
    );

    let update = b()
        .u8(b'U')
        .u32(16_385)
        .u8(b'O')
        .i16(2)
        .u8(b't')
        .i32(1)
        .raw(b"1")
        .u8(b'n')
        .u8(b'N')
        .i16(2)
        .u8(b't')
        .i32(1)
        .raw(b"1")
        .u8(b'u')
        .build();
    let PgOutputMessage::Update(u) = decode_hand(&update, &v1, false) else {
        panic!()
    };
    let Some(OldTuple::Full(old)) = u.old() else {
        panic!()
    };
    assert_eq!(
        old.values().collect::<Vec<_>>(),
        [TupleValue::Text(b"1"), TupleValue::Null]
    );
    assert_eq!(
        u.new_tuple().values().collect::<Vec<_>>(),
        [TupleValue::Text(b"1"), TupleValue::UnchangedToast]
    );

    let truncate = b().u8(b'T').i32(2).u8(3).u32(16_385).u32(16_390).build();
    let PgOutputMessage::Truncate(t) = decode_hand(&truncate, &v1, false) else {
        panic!()
    };
    assert!(t.cascade() && t.restart_identity());
    assert_eq!(t.relations().collect::<Vec<_>>(), [16_385, 16_390]);

    // Stream Abort under version 4 with parallel streaming carries the abort LSN and time.
    let v4 = PgOutputOptions::new(4, ["p"])
        .unwrap()
        .with_streaming(Streaming::Parallel)
        .unwrap();
    let abort = b()
        .u8(b'A')
        .u32(800)
        .u32(801)
        .u64(0x300_0000)
        .i64(-1)
        .build();
    let PgOutputMessage::StreamAbort(a) = decode_hand(&abort, &v4, false) else {
        panic!()
    };
    assert_eq!(
        a.abort(),
        Some((Lsn::new(0x300_0000), Timestamp::from_micros(-1)))
    );
    // Under version 4 with streaming on, the same message has no such fields.
    let v4_on = PgOutputOptions::new(4, ["p"])
        .unwrap()
        .with_streaming(Streaming::On)
        .unwrap();
    let PgOutputMessage::StreamAbort(a) = decode_hand(&abort[..9], &v4_on, false) else {
        panic!()
    };
    assert_eq!((a.xid(), a.subxid(), a.abort()), (800, 801, None));

    // A logical decoding message inside a stream, binary content with NUL bytes.
    let v2 = PgOutputOptions::new(2, ["p"])
        .unwrap()
        .with_streaming(Streaming::On)
        .unwrap()
        .with_messages(true);
    let message = b()
        .u8(b'M')
        .u32(900)
        .u8(1)
        .u64(0x1234)
        .cstr(b"pfx")
        .i32(3)
        .raw(b"a\0b")
        .build();
    let PgOutputMessage::Message(m) = decode_hand(&message, &v2, true) else {
        panic!()
    };
    assert_eq!(
        (m.xid(), m.transactional(), m.prefix(), m.content()),
        (Some(900), true, &b"pfx"[..], &b"a\0b"[..])
    );

    let v3 = PgOutputOptions::new(3, ["p"])
        .unwrap()
        .with_two_phase(true)
        .unwrap();
    let rollback = b()
        .u8(b'r')
        .u8(0)
        .u64(1)
        .u64(2)
        .i64(3)
        .i64(4)
        .u32(5)
        .cstr(b"gid 1")
        .build();
    let PgOutputMessage::RollbackPrepared(r) = decode_hand(&rollback, &v3, false) else {
        panic!()
    };
    assert_eq!(r.gid(), b"gid 1");
    assert_eq!(r.rollback_time(), Timestamp::from_micros(4));
}

#[test]
fn replication_by_hand() {
    let keepalive = b().u8(b'k').u64(0x100_0028).i64(5).u8(1).build();
    let PrimaryMessage::PrimaryKeepalive(k) = PrimaryMessage::decode(&keepalive).unwrap() else {
        panic!()
    };
    assert_eq!(
        (k.wal_end(), k.send_time().as_micros(), k.reply_requested()),
        (Lsn::new(0x100_0028), 5, true)
    );
    let xlog = b()
        .u8(b'w')
        .u64(0x100_0000)
        .u64(0x100_0028)
        .i64(7)
        .raw(b"\x01\x02")
        .build();
    let PrimaryMessage::XLogData(x) = PrimaryMessage::decode(&xlog).unwrap() else {
        panic!()
    };
    assert_eq!(x.data(), b"\x01\x02");
    assert_eq!(x.data_end(), Lsn::new(0x100_0002));
    let archive = b().u8(b'n').cstr(b"16390.tar").cstr(b"/srv/ts").build();
    let BaseBackupMessage::NewArchive(a) = BaseBackupMessage::decode(&archive).unwrap() else {
        panic!()
    };
    assert_eq!(
        (a.name(), a.location()),
        (&b"16390.tar"[..], &b"/srv/ts"[..])
    );
    assert_eq!(a.name_str().unwrap(), "16390.tar");
    assert_eq!(
        BaseBackupMessage::decode(b"p\0\0\0\0\0\0\x04\0").unwrap(),
        BaseBackupMessage::Progress(1024)
    );
    assert_eq!(
        BaseBackupMessage::decode(b"m").unwrap(),
        BaseBackupMessage::Manifest
    );
    let BaseBackupMessage::Data(d) = BaseBackupMessage::decode(b"d").unwrap() else {
        panic!()
    };
    assert!(d.data().is_empty());
}

#[test]
fn constructors_refuse_what_cannot_be_sent() {
    assert!(NewArchive::new(b"a\0b", b"").is_err());
    assert!(Origin::new(Lsn::INVALID, b"o\0").is_err());
    assert!(Type::new(None, 1, b"", b"t\0").is_err());
    assert!(LogicalMessage::new(None, true, Lsn::INVALID, b"p\0", b"").is_err());
    let columns = [RelationColumn {
        key: false,
        name: b"a\0",
        type_oid: 23,
        type_modifier: -1,
    }];
    assert!(Relation::new(None, 1, b"", b"t", ReplicaIdentity::Default, &columns).is_err());
    assert!(Truncate::new(None, 4, &[]).is_err());
    assert!(Prepared::new(Lsn::INVALID, Lsn::INVALID, Timestamp::EPOCH, 1, b"g\0").is_err());
    let many = vec![TupleValue::Null; 65_536];
    assert!(TupleData::new(&many).is_err());
    assert!(TupleData::new(&many[..65_535]).is_ok());
}
