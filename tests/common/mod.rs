//! Shared proptest strategies: one per protocol message, for both directions, built only through
//! the crate's public API; plus a small independent frame writer for hand-made bytes.

#![allow(dead_code)]

use bytes::Bytes;
use pgproto::{
    AuthResponseKind, Authentication, BackendKeyData, BackendMessage, Bind, CancelRequest, Close,
    CommandComplete, CopyData, CopyFail, CopyResponse, DataRow, Describe, ErrorFields, Execute,
    FieldCode, FieldDescription, Format, FrontendMessage, FunctionCall, GssResponse,
    NegotiateProtocolVersion, NotificationResponse, ParameterDescription, ParameterStatus, Parse,
    PasswordMessage, ProtocolVersion, Query, RowDescription, SaslInitialResponse, SaslMechanisms,
    SaslResponse, StartupMessage, Target, TransactionStatus, UnsupportedStartup,
    UntypedAuthResponse,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// Expands a seed into `n` pseudo-random bytes (xorshift64*). Byte contents come from a
/// (length, seed) pair rather than one proptest value per byte: generating 200-message streams
/// stays cheap in debug builds, lengths still shrink, and the seed shrinks towards simple bytes.
pub(crate) fn expand(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let take = (n - out.len()).min(8);
        out.extend_from_slice(&r[..take]);
    }
    out
}

/// Arbitrary bytes, up to `max` long. A zero seed gives all-zero bytes (the simplest case).
pub(crate) fn raw_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    (0..=max, any::<u64>()).prop_map(|(n, seed)| {
        if seed == 0 {
            vec![0; n]
        } else {
            expand(n, seed)
        }
    })
}

/// Arbitrary bytes as `Bytes`.
pub(crate) fn payload(max: usize) -> impl Strategy<Value = Bytes> + Clone {
    raw_bytes(max).prop_map(Bytes::from)
}

/// Replaces NUL bytes (seed 0 gives all `a`).
fn no_nul(mut v: Vec<u8>) -> Vec<u8> {
    for b in &mut v {
        if *b == 0 {
            *b = b'a';
        }
    }
    v
}

/// Bytes without NUL, possibly empty.
pub(crate) fn cbytes(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    raw_bytes(max).prop_map(no_nul)
}

/// Bytes without NUL, never empty.
pub(crate) fn cbytes_nonempty(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    (1..=max.max(1), any::<u64>()).prop_map(|(n, seed)| no_nul(expand(n, seed)))
}

/// A string without NUL: printable ASCII, or any Unicode scalar value, mixed.
pub(crate) fn cstring(max: usize) -> impl Strategy<Value = String> + Clone {
    (0..=max, any::<u64>(), any::<bool>()).prop_map(|(n, seed, ascii_only)| {
        if seed == 0 {
            return "a".repeat(n);
        }
        expand(n * 4, seed)
            .chunks_exact(4)
            .map(|c| {
                let x = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if ascii_only || x % 4 != 0 {
                    char::from(0x20 + (x >> 8) as u8 % 0x5f)
                } else {
                    char::from_u32((x >> 2) % 0x11_0000)
                        .filter(|c| *c != '\0')
                        .unwrap_or('\u{fffd}')
                }
            })
            .collect()
    })
}

pub(crate) fn format() -> impl Strategy<Value = Format> + Clone {
    prop_oneof![Just(Format::Text), Just(Format::Binary)]
}

pub(crate) fn format_codes() -> impl Strategy<Value = Vec<Format>> + Clone {
    vec(format(), 0..6)
}

pub(crate) fn value_list() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> + Clone {
    vec(option::weighted(0.8, raw_bytes(24)), 0..8)
}

/// Values as the constructors take them: `None` is NULL.
pub(crate) fn as_values(v: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
    v.iter().map(|o| o.as_deref()).collect()
}

pub(crate) fn target() -> impl Strategy<Value = Target> + Clone {
    prop_oneof![Just(Target::Statement), Just(Target::Portal)]
}

pub(crate) fn transaction_status() -> impl Strategy<Value = TransactionStatus> + Clone {
    prop_oneof![
        Just(TransactionStatus::Idle),
        Just(TransactionStatus::InTransaction),
        Just(TransactionStatus::Failed),
    ]
}

pub(crate) fn cancel_key() -> impl Strategy<Value = Vec<u8>> + Clone {
    vec(any::<u8>(), 4..=256)
}

// ---------------------------------------------------------------------------------------------
// Frontend: start-up packets
// ---------------------------------------------------------------------------------------------

/// A startup parameter name: ordinary, well-known, or a `_pq_.` protocol option.
pub(crate) fn startup_param_name() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        cbytes_nonempty(16),
        prop_oneof![
            Just(b"user".to_vec()),
            Just(b"database".to_vec()),
            Just(b"options".to_vec()),
            Just(b"replication".to_vec()),
            Just(b"application_name".to_vec()),
        ],
        cbytes(16).prop_map(|s| [&b"_pq_."[..], &s].concat()),
    ]
}

pub(crate) fn startup_message() -> impl Strategy<Value = StartupMessage> + Clone {
    (
        prop_oneof![
            Just(ProtocolVersion::V3_0),
            Just(ProtocolVersion::V3_2),
            (0u16..=10).prop_map(|minor| ProtocolVersion { major: 3, minor }),
        ],
        vec((startup_param_name(), cbytes(40)), 0..10),
    )
        .prop_map(|(v, params)| StartupMessage::new(v, params).unwrap())
}

pub(crate) fn cancel_request() -> impl Strategy<Value = CancelRequest> + Clone {
    (any::<i32>(), cancel_key()).prop_map(|(pid, key)| CancelRequest::new(pid, key).unwrap())
}

/// A start-up packet whose code is neither 3.x nor one of the 1234.x request codes.
pub(crate) fn unsupported_startup() -> impl Strategy<Value = UnsupportedStartup> + Clone {
    (
        any::<u16>().prop_filter("not 3.x nor a request code", |m| *m != 3 && *m != 1234),
        any::<u16>(),
        raw_bytes(64),
    )
        .prop_map(|(major, minor, rest)| {
            UnsupportedStartup::new(ProtocolVersion { major, minor }, &rest).unwrap()
        })
}

/// Any start-up packet that keeps the decoder in the start-up phase.
pub(crate) fn startup_phase_request() -> impl Strategy<Value = FrontendMessage<'static>> + Clone {
    prop_oneof![
        Just(FrontendMessage::SslRequest),
        Just(FrontendMessage::GssEncRequest)
    ]
}

// ---------------------------------------------------------------------------------------------
// Frontend: tagged messages
// ---------------------------------------------------------------------------------------------

pub(crate) fn password_message() -> impl Strategy<Value = PasswordMessage<'static>> + Clone {
    cbytes(64).prop_map(|p| PasswordMessage::new(p).unwrap())
}

pub(crate) fn sasl_initial_response() -> impl Strategy<Value = SaslInitialResponse<'static>> + Clone
{
    (cstring(20), option::of(payload(64)))
        .prop_map(|(m, d)| SaslInitialResponse::new(&m, d.as_deref()).unwrap())
}

pub(crate) fn sasl_response() -> impl Strategy<Value = SaslResponse<'static>> + Clone {
    payload(96).prop_map(|d| SaslResponse::new(d).unwrap())
}

pub(crate) fn gss_response() -> impl Strategy<Value = GssResponse<'static>> + Clone {
    payload(96).prop_map(|d| GssResponse::new(d).unwrap())
}

pub(crate) fn untyped_auth_response() -> impl Strategy<Value = UntypedAuthResponse<'static>> + Clone
{
    payload(96).prop_map(|d| UntypedAuthResponse::new(d).unwrap())
}

pub(crate) fn query() -> impl Strategy<Value = Query<'static>> + Clone {
    cbytes(80).prop_map(|q| Query::new(q).unwrap())
}

pub(crate) fn parse() -> impl Strategy<Value = Parse<'static>> + Clone {
    (cstring(12), cstring(60), vec(any::<u32>(), 0..8))
        .prop_map(|(n, q, t)| Parse::new(&n, &q, &t).unwrap())
}

pub(crate) fn bind() -> impl Strategy<Value = Bind<'static>> + Clone {
    (
        cstring(12),
        cstring(12),
        format_codes(),
        value_list(),
        format_codes(),
    )
        .prop_map(|(p, s, pf, v, rf)| Bind::new(&p, &s, &pf, &as_values(&v), &rf).unwrap())
}

pub(crate) fn describe() -> impl Strategy<Value = Describe<'static>> + Clone {
    (target(), cstring(16)).prop_map(|(t, n)| Describe::new(t, &n).unwrap())
}

pub(crate) fn execute() -> impl Strategy<Value = Execute<'static>> + Clone {
    (cstring(16), any::<i32>()).prop_map(|(p, n)| Execute::new(&p, n).unwrap())
}

pub(crate) fn close() -> impl Strategy<Value = Close<'static>> + Clone {
    (target(), cstring(16)).prop_map(|(t, n)| Close::new(t, &n).unwrap())
}

pub(crate) fn function_call() -> impl Strategy<Value = FunctionCall<'static>> + Clone {
    (any::<u32>(), format_codes(), value_list(), format())
        .prop_map(|(f, af, a, rf)| FunctionCall::new(f, &af, &as_values(&a), rf).unwrap())
}

pub(crate) fn copy_data() -> impl Strategy<Value = CopyData<'static>> + Clone {
    prop_oneof![
        4 => payload(64),
        1 => payload(3000),
    ]
    .prop_map(|d| CopyData::new(d).unwrap())
}

pub(crate) fn copy_fail() -> impl Strategy<Value = CopyFail<'static>> + Clone {
    cbytes(64).prop_map(|m| CopyFail::new(m).unwrap())
}

/// One `p` message of the given kind (`None`: untyped).
pub(crate) fn auth_response(
    kind: Option<AuthResponseKind>,
) -> BoxedStrategy<FrontendMessage<'static>> {
    match kind {
        None => untyped_auth_response()
            .prop_map(FrontendMessage::UntypedAuthResponse)
            .boxed(),
        Some(AuthResponseKind::Password) => password_message()
            .prop_map(FrontendMessage::PasswordMessage)
            .boxed(),
        Some(AuthResponseKind::SaslInitial) => sasl_initial_response()
            .prop_map(FrontendMessage::SaslInitialResponse)
            .boxed(),
        Some(AuthResponseKind::Sasl) => sasl_response()
            .prop_map(FrontendMessage::SaslResponse)
            .boxed(),
        Some(AuthResponseKind::Gss) => gss_response()
            .prop_map(FrontendMessage::GssResponse)
            .boxed(),
    }
}

pub(crate) fn auth_response_kind() -> impl Strategy<Value = Option<AuthResponseKind>> + Clone {
    prop_oneof![
        Just(None),
        Just(Some(AuthResponseKind::Password)),
        Just(Some(AuthResponseKind::SaslInitial)),
        Just(Some(AuthResponseKind::Sasl)),
        Just(Some(AuthResponseKind::Gss)),
    ]
}

/// Any tagged frontend message; `p` messages are of `kind`.
pub(crate) fn frontend_tagged(
    kind: Option<AuthResponseKind>,
) -> BoxedStrategy<FrontendMessage<'static>> {
    use FrontendMessage as F;
    prop_oneof![
        auth_response(kind),
        query().prop_map(F::Query),
        parse().prop_map(F::Parse),
        bind().prop_map(F::Bind),
        describe().prop_map(F::Describe),
        execute().prop_map(F::Execute),
        close().prop_map(F::Close),
        Just(F::Sync),
        Just(F::Flush),
        function_call().prop_map(F::FunctionCall),
        copy_data().prop_map(F::CopyData),
        Just(F::CopyDone),
        copy_fail().prop_map(F::CopyFail),
        Just(F::Terminate),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

pub(crate) fn sasl_mechanisms() -> impl Strategy<Value = SaslMechanisms> + Clone {
    vec(
        prop_oneof![
            Just(b"SCRAM-SHA-256".to_vec()),
            Just(b"SCRAM-SHA-256-PLUS".to_vec()),
            cbytes_nonempty(24),
        ],
        0..4,
    )
    .prop_map(|m| SaslMechanisms::new(m).unwrap())
}

pub(crate) fn authentication() -> impl Strategy<Value = Authentication> + Clone {
    prop_oneof![
        Just(Authentication::Ok),
        Just(Authentication::KerberosV5),
        Just(Authentication::CleartextPassword),
        any::<[u8; 4]>().prop_map(|salt| Authentication::Md5Password { salt }),
        Just(Authentication::ScmCredential),
        Just(Authentication::Gss),
        payload(64).prop_map(Authentication::GssContinue),
        Just(Authentication::Sspi),
        sasl_mechanisms().prop_map(Authentication::Sasl),
        payload(96).prop_map(Authentication::SaslContinue),
        payload(96).prop_map(Authentication::SaslFinal),
    ]
}

/// A 3.0 BackendKeyData (4-byte key).
pub(crate) fn backend_key_data_v30() -> impl Strategy<Value = BackendKeyData> + Clone {
    (any::<i32>(), any::<[u8; 4]>()).prop_map(|(p, k)| BackendKeyData::new(p, k).unwrap())
}

/// A 3.2 BackendKeyData (4 to 256-byte key).
pub(crate) fn backend_key_data_v32() -> impl Strategy<Value = BackendKeyData> + Clone {
    (any::<i32>(), cancel_key()).prop_map(|(p, k)| BackendKeyData::new(p, k).unwrap())
}

pub(crate) fn command_complete() -> impl Strategy<Value = CommandComplete<'static>> + Clone {
    prop_oneof![
        cbytes(40),
        (0u64..1_000_000).prop_map(|n| format!("SELECT {n}").into_bytes()),
        (0u64..1_000_000).prop_map(|n| format!("INSERT 0 {n}").into_bytes()),
    ]
    .prop_map(|t| CommandComplete::new(t).unwrap())
}

pub(crate) fn copy_response() -> impl Strategy<Value = CopyResponse> + Clone {
    (format(), format_codes()).prop_map(|(f, c)| CopyResponse::new(f, &c).unwrap())
}

pub(crate) fn data_row() -> impl Strategy<Value = DataRow<'static>> + Clone {
    value_list().prop_map(|v| DataRow::new(v.iter().map(|o| o.as_deref())).unwrap())
}

/// A field code byte: mostly known codes, sometimes any non-zero byte (unknown codes included).
pub(crate) fn field_code() -> impl Strategy<Value = FieldCode> + Clone {
    prop_oneof![
        2 => prop::sample::select(b"SVCMDHPpqWstcdnFLR".to_vec()),
        1 => 1u8..=255,
    ]
    .prop_map(FieldCode::from_byte)
}

pub(crate) fn error_fields() -> impl Strategy<Value = ErrorFields> + Clone {
    vec((field_code(), cbytes(40)), 0..8).prop_map(|f| ErrorFields::new(f).unwrap())
}

pub(crate) fn negotiate_protocol_version() -> impl Strategy<Value = NegotiateProtocolVersion> + Clone
{
    (
        any::<i32>(),
        vec(
            prop_oneof![
                cbytes(20).prop_map(|s| [&b"_pq_."[..], &s].concat()),
                cbytes(20),
            ],
            0..5,
        ),
    )
        .prop_map(|(m, o)| NegotiateProtocolVersion::new(m, o).unwrap())
}

pub(crate) fn notification_response() -> impl Strategy<Value = NotificationResponse> + Clone {
    (any::<i32>(), cstring(20), cstring(60))
        .prop_map(|(p, c, m)| NotificationResponse::new(p, &c, &m).unwrap())
}

pub(crate) fn parameter_description() -> impl Strategy<Value = ParameterDescription> + Clone {
    vec(any::<u32>(), 0..10).prop_map(|t| ParameterDescription::new(&t).unwrap())
}

pub(crate) fn parameter_status() -> impl Strategy<Value = ParameterStatus> + Clone {
    (cstring(20), cstring(40)).prop_map(|(n, v)| ParameterStatus::new(&n, &v).unwrap())
}

/// The owned parts of one RowDescription field.
pub(crate) type FieldSpec = (Vec<u8>, u32, i16, u32, i16, i32, Format);

pub(crate) fn row_description_fields() -> impl Strategy<Value = Vec<FieldSpec>> + Clone {
    vec(
        (
            cbytes(16),
            any::<u32>(),
            any::<i16>(),
            any::<u32>(),
            any::<i16>(),
            any::<i32>(),
            format(),
        ),
        0..6,
    )
}

pub(crate) fn row_description_of(fields: &[FieldSpec]) -> RowDescription {
    let f: Vec<FieldDescription<'_>> = fields
        .iter()
        .map(|(name, t, c, ty, sz, m, fmt)| FieldDescription {
            name,
            table_oid: *t,
            column_id: *c,
            type_oid: *ty,
            type_size: *sz,
            type_modifier: *m,
            format: *fmt,
        })
        .collect();
    RowDescription::new(&f).unwrap()
}

pub(crate) fn row_description() -> impl Strategy<Value = RowDescription> + Clone {
    row_description_fields().prop_map(|f| row_description_of(&f))
}

/// Any tagged backend message; BackendKeyData keys follow `version`.
pub(crate) fn backend_tagged(version: ProtocolVersion) -> BoxedStrategy<BackendMessage<'static>> {
    use BackendMessage as B;
    let key = if version >= ProtocolVersion::V3_2 {
        backend_key_data_v32().boxed()
    } else {
        backend_key_data_v30().boxed()
    };
    prop_oneof![
        1 => authentication().prop_map(B::Authentication),
        1 => key.prop_map(B::BackendKeyData),
        1 => Just(B::BindComplete),
        1 => Just(B::CloseComplete),
        1 => command_complete().prop_map(B::CommandComplete),
        1 => copy_data().prop_map(B::CopyData),
        1 => Just(B::CopyDone),
        1 => copy_response().prop_map(B::CopyInResponse),
        1 => copy_response().prop_map(B::CopyOutResponse),
        1 => copy_response().prop_map(B::CopyBothResponse),
        // DataRow is the common case in real streams: weight it up.
        4 => data_row().prop_map(B::DataRow),
        1 => Just(B::EmptyQueryResponse),
        1 => error_fields().prop_map(B::ErrorResponse),
        1 => option::of(payload(64)).prop_map(B::FunctionCallResponse),
        1 => negotiate_protocol_version().prop_map(B::NegotiateProtocolVersion),
        1 => Just(B::NoData),
        1 => error_fields().prop_map(B::NoticeResponse),
        1 => notification_response().prop_map(B::NotificationResponse),
        1 => parameter_description().prop_map(B::ParameterDescription),
        1 => parameter_status().prop_map(B::ParameterStatus),
        1 => Just(B::ParseComplete),
        1 => Just(B::PortalSuspended),
        1 => transaction_status().prop_map(B::ReadyForQuery),
        1 => row_description().prop_map(B::RowDescription),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// An independent frame writer, for bytes made by hand rather than by the crate's encoder
// ---------------------------------------------------------------------------------------------

/// A tagged frame: type byte, Int32 length (counting itself), body.
pub(crate) fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + body.len());
    v.push(tag);
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An untagged start-up packet: Int32 length (counting itself), Int32 code, rest.
pub(crate) fn startup_packet(code: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + rest.len());
    v.extend_from_slice(&(rest.len() as i32 + 8).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

/// A little body builder in the manner of `pq_send*`.
#[derive(Default, Clone, Debug)]
pub(crate) struct Body(pub(crate) Vec<u8>);

impl Body {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }
    pub(crate) fn i8(mut self, v: i8) -> Self {
        self.0.push(v as u8);
        self
    }
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn cstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(s);
        self.0.push(0);
        self
    }
    pub(crate) fn raw(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(s);
        self
    }
    /// An Int32 length and the bytes, or -1 for NULL.
    pub(crate) fn nullable(self, v: Option<&[u8]>) -> Self {
        match v {
            None => self.i32(-1),
            Some(v) => self.i32(v.len() as i32).raw(v),
        }
    }
    pub(crate) fn build(self) -> Vec<u8> {
        self.0
    }
}
