//! Split invariance: however a byte stream is cut into reads, down to one byte at a time, the
//! decoders produce the same messages as when it arrives whole; and an error in the middle of a
//! stream delivers everything before it, then the same error on every later call.

mod common;

use bytes::BytesMut;
use common::*;
use pgproto::{
    AuthResponseKind, BackendDecoder, BackendMessage, Columns, DecodeError, Encode,
    FrontendDecoder, FrontendMessage, ProtocolVersion, Tag,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        // ChaCha (the default) dominates the run time of unoptimised test builds.
        rng_algorithm: RngAlgorithm::XorShift,
        // Streams are long: keep shrinking bounded so a failure is reported quickly.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

const STREAM_LEN: usize = 200;

fn encode_all<T: Encode>(msgs: &[T]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

fn lens<T: Encode>(msgs: &[T]) -> Vec<usize> {
    msgs.iter().map(Encode::encoded_len).collect()
}

/// Cuts `bytes` into chunks whose sizes cycle through `sizes` (all non-zero).
fn chunked<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

/// Chunk sizes: small, medium or large reads, mixed.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        vec(1usize..=8, 1..40),
        vec(1usize..=300, 1..40),
        vec(1usize..=20_000, 1..10),
        vec(
            prop_oneof![1usize..=3, 100usize..=5000, Just(4), Just(5), Just(6)],
            1..40
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// A uniform driver over the decoders
// ---------------------------------------------------------------------------------------------

/// One way of pulling messages out of a decoder.
trait Pull {
    type Msg: std::fmt::Debug + PartialEq;
    fn feed(&mut self, bytes: &[u8]);
    fn pull(&mut self) -> Result<Option<Self::Msg>, DecodeError>;
    fn buffered(&self) -> usize;
}

/// What `next_ref` returns, made owned so that it can be compared after the next call.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// The columns, or the error that reading them gave (values are checked as they are read).
    Row(Result<Vec<Option<Vec<u8>>>, DecodeError>),
    Copy(Vec<u8>),
    Other(BackendMessage<'static>),
}

/// Reads every column of a row, as an application would.
fn columns(cols: Columns<'_>, announced: usize) -> Result<Vec<Option<Vec<u8>>>, DecodeError> {
    let cols: Vec<_> = cols
        .map(|c| c.map(|c| c.map(<[u8]>::to_vec)))
        .collect::<Result<_, _>>()?;
    assert_eq!(cols.len(), announced);
    Ok(cols)
}

fn item_of(m: BackendMessage<'static>) -> Item {
    match m {
        BackendMessage::DataRow(r) => Item::Row(columns(r.columns(), r.len())),
        BackendMessage::CopyData(c) => Item::Copy(c.data().to_vec()),
        other => Item::Other(other),
    }
}

fn item_of_ref(r: BackendMessage<'_>) -> Item {
    match r {
        BackendMessage::DataRow(r) => Item::Row(columns(r.columns(), r.len())),
        BackendMessage::CopyData(c) => Item::Copy(c.data().to_vec()),
        m => Item::Other(m.into_owned()),
    }
}

struct Owned(BackendDecoder);

impl Pull for Owned {
    type Msg = BackendMessage<'static>;
    fn feed(&mut self, bytes: &[u8]) {
        self.0.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<BackendMessage<'static>>, DecodeError> {
        self.0.next()
    }
    fn buffered(&self) -> usize {
        self.0.buffered_len()
    }
}

struct Borrowed(BackendDecoder);

impl Pull for Borrowed {
    type Msg = Item;
    fn feed(&mut self, bytes: &[u8]) {
        self.0.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<Item>, DecodeError> {
        self.0.next_ref().map(|r| r.map(item_of_ref))
    }
    fn buffered(&self) -> usize {
        self.0.buffered_len()
    }
}

/// The intended row loop: `next_data_row` first, `next_ref` when it has no row to give.
struct Rows(BackendDecoder);

impl Pull for Rows {
    type Msg = Item;
    fn feed(&mut self, bytes: &[u8]) {
        self.0.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<Item>, DecodeError> {
        if let Some(r) = self.0.next_data_row() {
            return Ok(Some(Item::Row(columns(r.columns(), r.len()))));
        }
        let before = self.0.buffered_len();
        let r = self.0.next_ref();
        // `next_data_row` declines a whole, valid DataRow only when something else comes first.
        if let Ok(Some(BackendMessage::DataRow(_))) = &r {
            panic!("next_data_row declined a valid DataRow ({before} bytes buffered)");
        }
        r.map(|r| r.map(item_of_ref))
    }
    fn buffered(&self) -> usize {
        self.0.buffered_len()
    }
}

/// Alternates between `next` and `next_ref` following a pattern.
struct Mixed {
    dec: BackendDecoder,
    pattern: Vec<bool>,
    i: usize,
}

impl Pull for Mixed {
    type Msg = Item;
    fn feed(&mut self, bytes: &[u8]) {
        self.dec.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<Item>, DecodeError> {
        self.i += 1;
        if self.pattern[self.i % self.pattern.len()] {
            self.dec.next_ref().map(|r| r.map(item_of_ref))
        } else {
            self.dec.next().map(|m| m.map(item_of))
        }
    }
    fn buffered(&self) -> usize {
        self.dec.buffered_len()
    }
}

struct Front(FrontendDecoder);

/// What `FrontendDecoder::next_ref` returns, made owned.
fn owned_of_ref(r: FrontendMessage<'_>) -> FrontendMessage<'static> {
    let m = r.clone().into_owned();
    assert_eq!(r.name(), m.name());
    assert_eq!(r.tag(), m.tag());
    m
}

/// `FrontendDecoder::next_ref`, or, following a pattern, `next` and `next_ref` alternately.
struct FrontRef {
    dec: FrontendDecoder,
    pattern: Vec<bool>,
    i: usize,
}

impl FrontRef {
    fn new(dec: FrontendDecoder) -> Self {
        Self::mixed(dec, vec![true])
    }

    fn mixed(dec: FrontendDecoder, pattern: Vec<bool>) -> Self {
        Self { dec, pattern, i: 0 }
    }
}

impl Pull for FrontRef {
    type Msg = FrontendMessage<'static>;
    fn feed(&mut self, bytes: &[u8]) {
        self.dec.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
        self.i += 1;
        if self.pattern[self.i % self.pattern.len()] {
            self.dec.next_ref().map(|r| r.map(owned_of_ref))
        } else {
            self.dec.next()
        }
    }
    fn buffered(&self) -> usize {
        self.dec.buffered_len()
    }
}

impl Pull for Front {
    type Msg = FrontendMessage<'static>;
    fn feed(&mut self, bytes: &[u8]) {
        self.0.receive(bytes);
    }
    fn pull(&mut self) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
        self.0.next()
    }
    fn buffered(&self) -> usize {
        self.0.buffered_len()
    }
}

/// Feeds the chunks one by one, draining after each until `Ok(None)` or an error. Checks that
/// once an error has been returned, every later call returns the same one (and never a message
/// or `Ok(None)`), whatever is fed afterwards. `lens` are the wire lengths of the messages
/// expected before any error: after every successful call, `buffered_len()` must be exactly
/// the bytes fed less those of the messages delivered (lent bytes included).
fn run<P: Pull>(
    p: &mut P,
    chunks: &[&[u8]],
    lens: &[usize],
) -> Result<(Vec<P::Msg>, Option<DecodeError>), TestCaseError> {
    let mut msgs = Vec::new();
    let mut error: Option<DecodeError> = None;
    let mut fed = 0usize;
    let mut consumed = 0usize;
    for c in chunks {
        p.feed(c);
        fed += c.len();
        loop {
            match p.pull() {
                Ok(Some(m)) => {
                    prop_assert!(error.is_none(), "message {:?} after error {:?}", m, error);
                    if let Some(n) = lens.get(msgs.len()) {
                        consumed += n;
                        prop_assert_eq!(p.buffered(), fed - consumed, "after {:?}", m);
                    }
                    msgs.push(m);
                }
                Ok(None) => {
                    prop_assert!(error.is_none(), "Ok(None) after error {:?}", error);
                    if msgs.len() <= lens.len() {
                        prop_assert_eq!(p.buffered(), fed - consumed);
                    }
                    break;
                }
                Err(e) => {
                    match &error {
                        Some(first) => prop_assert_eq!(&e, first),
                        None => error = Some(e.clone()),
                    }
                    // Sticky straight away, too.
                    prop_assert_eq!(p.pull(), Err(e));
                    break;
                }
            }
        }
    }
    match &error {
        Some(e) => {
            for _ in 0..3 {
                prop_assert_eq!(p.pull(), Err(e.clone()));
            }
            p.feed(b"Z\0\0\0\x05I");
            prop_assert_eq!(p.pull(), Err(e.clone()));
        }
        None => prop_assert_eq!(p.pull(), Ok(None)),
    }
    Ok((msgs, error))
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// A backend stream: the protocol version in force, an optional SSL or GSSENC answer first, and
/// `STREAM_LEN` tagged messages.
#[derive(Debug, Clone)]
struct BackendStream {
    version: ProtocolVersion,
    first: Option<BackendMessage<'static>>,
    msgs: Vec<BackendMessage<'static>>,
}

impl BackendStream {
    fn decoder(&self) -> BackendDecoder {
        let mut d = BackendDecoder::new();
        d.set_protocol_version(self.version);
        match &self.first {
            Some(BackendMessage::SslResponse { .. }) => d.expect_ssl_response(),
            Some(BackendMessage::GssEncResponse { .. }) => d.expect_gssenc_response(),
            _ => {}
        }
        d
    }

    fn all(&self) -> Vec<BackendMessage<'static>> {
        self.first.iter().chain(&self.msgs).cloned().collect()
    }
}

fn backend_stream(len: usize) -> impl Strategy<Value = BackendStream> {
    prop_oneof![Just(ProtocolVersion::V3_0), Just(ProtocolVersion::V3_2)].prop_flat_map(
        move |version| {
            (
                prop_oneof![
                    2 => Just(None),
                    1 => any::<bool>().prop_map(|accepted| Some(BackendMessage::SslResponse { accepted })),
                    1 => any::<bool>()
                        .prop_map(|accepted| Some(BackendMessage::GssEncResponse { accepted })),
                ],
                vec(backend_tagged(version), len),
            )
                .prop_map(move |(first, msgs)| BackendStream {
                    version,
                    first,
                    msgs,
                })
        },
    )
}

/// A frontend stream: SSL/GSSENC requests, a StartupMessage, then `STREAM_LEN` tagged messages
/// whose `p` messages are all of one kind.
#[derive(Debug, Clone)]
struct FrontendStream {
    kind: Option<AuthResponseKind>,
    msgs: Vec<FrontendMessage<'static>>,
}

impl FrontendStream {
    fn decoder(&self) -> FrontendDecoder {
        let mut d = FrontendDecoder::new();
        d.expect_auth_response(self.kind);
        d
    }
}

fn frontend_stream(len: usize) -> impl Strategy<Value = FrontendStream> {
    auth_response_kind().prop_flat_map(move |kind| {
        (
            vec(startup_phase_request(), 0..3),
            startup_message(),
            vec(frontend_tagged(kind), len),
        )
            .prop_map(move |(pre, startup, tagged)| {
                let mut msgs = pre;
                msgs.push(FrontendMessage::Startup(startup));
                msgs.extend(tagged);
                FrontendStream { kind, msgs }
            })
    })
}

// ---------------------------------------------------------------------------------------------
// Split invariance
// ---------------------------------------------------------------------------------------------

fn check_backend_split(s: &BackendStream, sizes: &[usize]) -> Result<(), TestCaseError> {
    let all = s.all();
    let bytes = encode_all(&all);

    let (whole, err) = run(&mut Owned(s.decoder()), &[&bytes], &lens(&all))?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&whole, &all);

    let chunks = chunked(&bytes, sizes);
    let (split, err) = run(&mut Owned(s.decoder()), &chunks, &lens(&all))?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&split, &whole);
    Ok(())
}

fn check_backend_ref_split(
    s: &BackendStream,
    sizes: &[usize],
    pattern: Vec<bool>,
) -> Result<(), TestCaseError> {
    let all = s.all();
    let bytes = encode_all(&all);
    let l = lens(&all);
    let want: Vec<Item> = all.into_iter().map(item_of).collect();
    let chunks = chunked(&bytes, sizes);

    let (whole, err) = run(&mut Borrowed(s.decoder()), &[&bytes], &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&whole, &want);

    let (split, err) = run(&mut Borrowed(s.decoder()), &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&split, &want);

    let mut mixed = Mixed {
        dec: s.decoder(),
        pattern,
        i: 0,
    };
    let (split, err) = run(&mut mixed, &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&split, &want);

    let (split, err) = run(&mut Rows(s.decoder()), &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&split, &want);
    Ok(())
}

fn check_frontend_split(
    s: &FrontendStream,
    sizes: &[usize],
    pattern: Vec<bool>,
) -> Result<(), TestCaseError> {
    let bytes = encode_all(&s.msgs);
    let l = lens(&s.msgs);

    let (whole, err) = run(&mut Front(s.decoder()), &[&bytes], &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&whole, &s.msgs);

    let chunks = chunked(&bytes, sizes);
    let (split, err) = run(&mut Front(s.decoder()), &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&split, &whole);

    // The borrowing decoder yields the same messages, whole, split, and mixed with `next`.
    let (got, err) = run(&mut FrontRef::new(s.decoder()), &[&bytes], &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&got, &s.msgs);
    let (got, err) = run(&mut FrontRef::new(s.decoder()), &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&got, &s.msgs);
    let (got, err) = run(&mut FrontRef::mixed(s.decoder(), pattern), &chunks, &l)?;
    prop_assert_eq!(err, None);
    prop_assert_eq!(&got, &s.msgs);
    Ok(())
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn backend_stream_split_anywhere(s in backend_stream(STREAM_LEN), sizes in chunk_sizes()) {
        check_backend_split(&s, &sizes)?;
    }

    #[test]
    fn backend_stream_split_at_random_points(
        s in backend_stream(STREAM_LEN),
        cuts in vec(any::<prop::sample::Index>(), 0..60),
    ) {
        // Cut at random offsets rather than with cycling sizes.
        let bytes = encode_all(&s.all());
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.dedup();
        let chunks: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
        let (split, err) = run(&mut Owned(s.decoder()), &chunks, &lens(&s.all()))?;
        prop_assert_eq!(err, None);
        prop_assert_eq!(split, s.all());
    }

    #[test]
    fn backend_next_ref_split_anywhere(
        s in backend_stream(STREAM_LEN),
        sizes in chunk_sizes(),
        pattern in vec(any::<bool>(), 1..8),
    ) {
        check_backend_ref_split(&s, &sizes, pattern)?;
    }

    #[test]
    fn frontend_stream_split_anywhere(
        s in frontend_stream(STREAM_LEN),
        sizes in chunk_sizes(),
        pattern in vec(any::<bool>(), 1..8),
    ) {
        check_frontend_split(&s, &sizes, pattern)?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn backend_stream_one_byte_at_a_time(s in backend_stream(STREAM_LEN)) {
        check_backend_split(&s, &[1])?;
    }

    #[test]
    fn backend_next_ref_one_byte_at_a_time(
        s in backend_stream(STREAM_LEN),
        pattern in vec(any::<bool>(), 1..8),
    ) {
        check_backend_ref_split(&s, &[1], pattern)?;
    }

    #[test]
    fn frontend_stream_one_byte_at_a_time(
        s in frontend_stream(STREAM_LEN),
        pattern in vec(any::<bool>(), 1..8),
    ) {
        check_frontend_split(&s, &[1], pattern)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors mid-stream: everything before is delivered, then the error sticks
// ---------------------------------------------------------------------------------------------

/// Type bytes no backend message uses.
fn not_backend_tag() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a backend tag", |b| {
        !b"R K23CdcGHWDIEVvnNAtS1sZT".contains(b)
    })
}

/// Type bytes no frontend message uses.
fn not_frontend_tag() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a frontend tag", |b| !b"BCdcfDEHFPpQSX".contains(b))
}

/// Bad backend bytes and the error they must produce (protocol 3.0 in force).
fn bad_backend() -> impl Strategy<Value = (Vec<u8>, DecodeError)> {
    prop_oneof![
        not_backend_tag()
            .prop_map(|t| (vec![t, 0, 0, 0, 4], DecodeError::UnknownTag { tag: Tag(t) })),
        (i32::MIN..4).prop_map(|len| {
            let mut b = vec![b'Z'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::InvalidLength {
                    message: "ReadyForQuery",
                    len: len.into(),
                },
            )
        }),
        (30_001..=i32::MAX).prop_map(|len| {
            let mut b = vec![b'C'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::TooLong {
                    message: "CommandComplete",
                    len: len as u64,
                    max: 30_000,
                },
            )
        }),
        (0x3fff_ffffi32..=i32::MAX).prop_map(|len| {
            let mut b = vec![b'D'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::TooLong {
                    message: "DataRow",
                    len: len as u64,
                    max: 0x3fff_fffe,
                },
            )
        }),
        any::<u8>()
            .prop_filter("not a status", |s| !b"ITE".contains(s))
            .prop_map(|s| (
                frame(b'Z', &[s]),
                DecodeError::InvalidValue {
                    message: "ReadyForQuery",
                    field: "transaction status",
                    value: s.into(),
                },
            )),
        (1u16..100).prop_map(|n| (
            frame(b'D', &Body::new().i16(n as i16).build()),
            DecodeError::InvalidCount {
                message: "DataRow",
                field: "column value",
                count: n.into()
            },
        )),
        // (A DataRow value that does not fit is no stream error: values are checked as they
        // are read, and decoding carries on; `codec_malformed.rs` covers those.)
        Just((
            frame(b'E', b"SERROR\0"),
            DecodeError::Truncated {
                message: "ErrorResponse",
                field: "field code"
            },
        )),
        Just((
            frame(b'K', &Body::new().i32(1).raw(&[0; 8]).build()),
            DecodeError::InvalidLength {
                message: "BackendKeyData",
                len: 16
            },
        )),
        Just((
            frame(b'1', b"x"),
            DecodeError::TrailingBytes {
                message: "ParseComplete",
                extra: 1
            },
        )),
    ]
}

/// Bad frontend bytes (after start-up) and the error they must produce.
fn bad_frontend() -> impl Strategy<Value = (Vec<u8>, DecodeError)> {
    prop_oneof![
        not_frontend_tag()
            .prop_map(|t| (vec![t, 0, 0, 0, 4], DecodeError::UnknownTag { tag: Tag(t) })),
        (i32::MIN..4).prop_map(|len| {
            let mut b = vec![b'S'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::InvalidLength {
                    message: "Sync",
                    len: len.into(),
                },
            )
        }),
        (10_001..=i32::MAX).prop_map(|len| {
            let mut b = vec![b'E'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::TooLong {
                    message: "Execute",
                    len: len as u64,
                    max: 10_000,
                },
            )
        }),
        (65_536..=i32::MAX).prop_map(|len| {
            let mut b = vec![b'p'];
            b.extend_from_slice(&len.to_be_bytes());
            (
                b,
                DecodeError::TooLong {
                    message: "authentication response",
                    len: len as u64,
                    max: 65_535,
                },
            )
        }),
        (1usize..20).prop_map(|n| (
            frame(b'S', &vec![0; n]),
            DecodeError::TrailingBytes {
                message: "Sync",
                extra: n
            },
        )),
        Just((
            frame(
                b'B',
                &Body::new()
                    .cstr(b"")
                    .cstr(b"")
                    .i16(1)
                    .i16(2)
                    .i16(0)
                    .i16(0)
                    .build()
            ),
            DecodeError::InvalidValue {
                message: "Bind",
                field: "parameter formats",
                value: 2
            },
        )),
        Just((
            frame(b'Q', b"SELECT 1"),
            DecodeError::MissingNul {
                message: "Query",
                field: "query string"
            },
        )),
    ]
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn backend_error_mid_stream_is_sticky(
        before in vec(backend_tagged(ProtocolVersion::V3_0), 0..30),
        bad in bad_backend(),
        after in vec(backend_tagged(ProtocolVersion::V3_0), 0..5),
        sizes in chunk_sizes(),
        pattern in vec(any::<bool>(), 1..4),
    ) {
        let (bad_bytes, want) = bad;
        let mut bytes = encode_all(&before);
        bytes.extend_from_slice(&bad_bytes);
        bytes.extend_from_slice(&encode_all(&after));
        let chunks = chunked(&bytes, &sizes);

        let (got, err) = run(&mut Owned(BackendDecoder::new()), &chunks, &lens(&before))?;
        prop_assert_eq!(&got, &before);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let want_items: Vec<Item> = before.iter().cloned().map(item_of).collect();
        let (got, err) = run(&mut Borrowed(BackendDecoder::new()), &chunks, &lens(&before))?;
        prop_assert_eq!(&got, &want_items);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let mut mixed = Mixed { dec: BackendDecoder::new(), pattern, i: 0 };
        let (got, err) = run(&mut mixed, &chunks, &lens(&before))?;
        prop_assert_eq!(&got, &want_items);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let (got, err) = run(&mut Rows(BackendDecoder::new()), &chunks, &lens(&before))?;
        prop_assert_eq!(&got, &want_items);
        prop_assert_eq!(err.as_ref(), Some(&want));

        // The frame-level call is just as sticky.
        let mut d = BackendDecoder::new();
        d.receive(&bytes);
        while let Ok(Some(_)) = d.next() {}
        prop_assert_eq!(d.next_frame(), Err(want.clone()));
        prop_assert!(matches!(d.next_ref(), Err(e) if e == want));
    }

    #[test]
    fn frontend_error_mid_stream_is_sticky(
        startup in startup_message(),
        before in vec(frontend_tagged(None), 0..30),
        bad in bad_frontend(),
        after in vec(frontend_tagged(None), 0..5),
        sizes in chunk_sizes(),
        pattern in vec(any::<bool>(), 1..4),
    ) {
        let (bad_bytes, want) = bad;
        let mut good = vec![FrontendMessage::Startup(startup)];
        good.extend(before);
        let mut bytes = encode_all(&good);
        bytes.extend_from_slice(&bad_bytes);
        bytes.extend_from_slice(&encode_all(&after));
        let chunks = chunked(&bytes, &sizes);

        let (got, err) = run(&mut Front(FrontendDecoder::new()), &chunks, &lens(&good))?;
        prop_assert_eq!(&got, &good);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let (got, err) = run(&mut FrontRef::new(FrontendDecoder::new()), &chunks, &lens(&good))?;
        prop_assert_eq!(&got, &good);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let mut mixed = FrontRef::mixed(FrontendDecoder::new(), pattern);
        let (got, err) = run(&mut mixed, &chunks, &lens(&good))?;
        prop_assert_eq!(&got, &good);
        prop_assert_eq!(err.as_ref(), Some(&want));

        let mut d = FrontendDecoder::new();
        d.receive(&bytes);
        while let Ok(Some(_)) = d.next_ref() {}
        prop_assert_eq!(d.next_frame(), Err(want.clone()));
        prop_assert!(matches!(d.next_ref(), Err(e) if e == want));
    }

    /// Start-up phase errors: bytes after a CancelRequest, a bad start-up length.
    #[test]
    fn startup_error_is_sticky(
        cancel in cancel_request(),
        pre in vec(startup_phase_request(), 0..3),
        extra in vec(any::<u8>(), 1..40),
        bad_len in prop_oneof![i32::MIN..8, 10_001..=i32::MAX],
        which in any::<bool>(),
        sizes in chunk_sizes(),
    ) {
        let (good, bad, want) = if which {
            let mut good = pre;
            good.push(FrontendMessage::CancelRequest(cancel));
            (good, extra, DecodeError::DataAfterEnd { message: "CancelRequest" })
        } else {
            let want = if bad_len < 8 {
                DecodeError::InvalidLength { message: "start-up packet", len: bad_len.into() }
            } else {
                DecodeError::TooLong { message: "start-up packet", len: bad_len as u64, max: 10_000 }
            };
            let mut bad = bad_len.to_be_bytes().to_vec();
            bad.extend_from_slice(&extra);
            (pre, bad, want)
        };
        let mut bytes = encode_all(&good);
        bytes.extend_from_slice(&bad);
        let (got, err) = run(
            &mut Front(FrontendDecoder::new()),
            &chunked(&bytes, &sizes),
            &lens(&good),
        )?;
        prop_assert_eq!(&got, &good);
        prop_assert_eq!(err, Some(want));
    }
}
