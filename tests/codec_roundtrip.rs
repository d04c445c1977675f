//! Round trips for every message of both directions, through the public API only.
//!
//! For each message type: value -> encode -> decode (through the stream decoders, in the right
//! context) gives back the value; the decoded value encodes back to the same bytes; and
//! `encoded_len()` is exactly the number of bytes `encode` appends. Bytes written by hand (not by
//! the crate's encoder) also decode and re-encode to themselves.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use pgproto::{
    AuthResponseKind, Authentication, BackendDecoder, BackendKeyData, BackendMessage, Bind,
    CancelRequest, Close, CommandComplete, CopyFail, DataRow, Describe, Encode, EncodeError,
    ErrorFields, Execute, FieldCode, FieldDescription, Format, FrontendDecoder, FrontendMessage,
    Limits, NegotiateProtocolVersion, NotificationResponse, ParameterDescription, ParameterStatus,
    Parse, PasswordMessage, ProtocolVersion, Query, RowDescription, SaslInitialResponse,
    SaslMechanisms, StartupMessage, Target, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        // ChaCha (the default) dominates the run time of unoptimised test builds.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Encodes `m` after `prefix`, checks that nothing before was touched and that `encoded_len` is
/// the number of bytes appended; returns the appended bytes.
fn encode_appended<T: Encode + ?Sized>(m: &T, prefix: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let mut out = BytesMut::from(prefix);
    m.encode(&mut out);
    prop_assert_eq!(&out[..prefix.len()], prefix);
    prop_assert_eq!(m.encoded_len(), out.len() - prefix.len());
    Ok(out[prefix.len()..].to_vec())
}

fn encode(m: &impl Encode) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    out.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Frontend
// ---------------------------------------------------------------------------------------------

/// How a frontend decoder must be set up for a message.
#[derive(Debug, Clone, Copy)]
enum Fe {
    /// An untagged start-up packet: a fresh decoder.
    Startup,
    /// A tagged message after start-up; `p` frames decode as the given kind.
    Tagged(Option<AuthResponseKind>),
}

fn fe_decoder(ctx: Fe) -> FrontendDecoder {
    match ctx {
        Fe::Startup => FrontendDecoder::new(),
        Fe::Tagged(kind) => {
            let mut d = FrontendDecoder::after_startup(Limits::default());
            d.expect_auth_response(kind);
            d
        }
    }
}

fn check_fe(msg: &FrontendMessage, ctx: Fe, prefix: &[u8]) -> Result<(), TestCaseError> {
    let bytes = encode_appended(msg, prefix)?;

    // The framing is what the protocol says it is.
    match ctx {
        Fe::Startup => {
            prop_assert_eq!(msg.tag(), None);
            prop_assert_eq!(
                i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len()
            );
        }
        Fe::Tagged(_) => {
            prop_assert_eq!(msg.tag(), Some(bytes[0]));
            prop_assert_eq!(
                i32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize,
                bytes.len() - 1
            );
        }
    }

    // value -> encode -> decode == value, and nothing is left over.
    let mut d = fe_decoder(ctx);
    d.receive(&bytes);
    let decoded = d.next();
    prop_assert_eq!(&decoded, &Ok(Some(msg.clone())));
    prop_assert_eq!(d.next(), Ok(None));
    prop_assert_eq!(d.buffered_len(), 0);

    // bytes -> decode -> encode == bytes.
    let decoded = decoded.unwrap().unwrap();
    prop_assert_eq!(encode(&decoded), bytes.clone());
    prop_assert_eq!(decoded.encoded_len(), bytes.len());

    // The one-frame decoding functions agree with the stream decoder.
    match ctx {
        Fe::Startup => {
            let whole = FrontendMessage::decode_startup(&Bytes::from(bytes.clone()));
            prop_assert_eq!(whole, Ok(msg.clone()));
        }
        Fe::Tagged(kind) => {
            let mut d = fe_decoder(ctx);
            d.receive(&bytes);
            let f = d.next_frame().unwrap().unwrap();
            prop_assert_eq!(f.tag, bytes[0]);
            prop_assert_eq!(&f.body[..], &bytes[5..]);
            prop_assert_eq!(d.next_frame(), Ok(None));
            prop_assert_eq!(
                FrontendMessage::decode(f.tag, &f.body, kind),
                Ok(msg.clone())
            );
        }
    }
    Ok(())
}

/// Round trip of a message struct: it encodes exactly as its `FrontendMessage` wrapper does.
fn check_fe_struct<T: Encode>(
    m: &T,
    whole: &FrontendMessage<'static>,
    ctx: Fe,
    prefix: &[u8],
) -> Result<(), TestCaseError> {
    let bytes = encode_appended(m, prefix)?;
    prop_assert_eq!(bytes, encode(whole));
    check_fe(whole, ctx, prefix)
}

macro_rules! fe_struct {
    ($($name:ident: $strat:expr => $variant:ident in $ctx:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(m in $strat, prefix in raw_bytes(8)) {
                    let whole = FrontendMessage::$variant(m.clone());
                    check_fe_struct(&m, &whole, $ctx, &prefix)?;
                }
            )*
        }
    };
}

macro_rules! fe_unit {
    ($($name:ident: $msg:expr => $ctx:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 4, ..config() })]
            $(
                #[test]
                fn $name(prefix in raw_bytes(8)) {
                    check_fe(&$msg, $ctx, &prefix)?;
                }
            )*
        }
    };
}

fe_struct! {
    fe_startup_message: startup_message() => Startup in Fe::Startup;
    fe_cancel_request: cancel_request() => CancelRequest in Fe::Startup;
    fe_unsupported_startup: unsupported_startup() => UnsupportedStartup in Fe::Startup;
    fe_password_message: password_message() => PasswordMessage
        in Fe::Tagged(Some(AuthResponseKind::Password));
    fe_sasl_initial_response: sasl_initial_response() => SaslInitialResponse
        in Fe::Tagged(Some(AuthResponseKind::SaslInitial));
    fe_sasl_response: sasl_response() => SaslResponse in Fe::Tagged(Some(AuthResponseKind::Sasl));
    fe_gss_response: gss_response() => GssResponse in Fe::Tagged(Some(AuthResponseKind::Gss));
    fe_untyped_auth_response: untyped_auth_response() => UntypedAuthResponse in Fe::Tagged(None);
    fe_query: query() => Query in Fe::Tagged(None);
    fe_parse: parse() => Parse in Fe::Tagged(None);
    fe_bind: bind() => Bind in Fe::Tagged(None);
    fe_describe: describe() => Describe in Fe::Tagged(None);
    fe_execute: execute() => Execute in Fe::Tagged(None);
    fe_close: close() => Close in Fe::Tagged(None);
    fe_function_call: function_call() => FunctionCall in Fe::Tagged(None);
    fe_copy_data: copy_data() => CopyData in Fe::Tagged(None);
    fe_copy_fail: copy_fail() => CopyFail in Fe::Tagged(None);
}

fe_unit! {
    fe_ssl_request: FrontendMessage::SslRequest => Fe::Startup;
    fe_gssenc_request: FrontendMessage::GssEncRequest => Fe::Startup;
    fe_sync: FrontendMessage::Sync => Fe::Tagged(None);
    fe_flush: FrontendMessage::Flush => Fe::Tagged(None);
    fe_copy_done: FrontendMessage::CopyDone => Fe::Tagged(None);
    fe_terminate: FrontendMessage::Terminate => Fe::Tagged(None);
}

proptest! {
    #![proptest_config(config())]

    /// SASLInitialResponse with and without initial data, both forced.
    #[test]
    fn fe_sasl_initial_response_with_and_without_data(
        mech in cstring(20),
        data in payload(64),
        prefix in raw_bytes(4),
    ) {
        let ctx = Fe::Tagged(Some(AuthResponseKind::SaslInitial));
        let without = SaslInitialResponse::new(&mech, None).unwrap();
        prop_assert_eq!(without.data(), None);
        check_fe(&FrontendMessage::SaslInitialResponse(without), ctx, &prefix)?;
        let with = SaslInitialResponse::new(&mech, Some(&data)).unwrap();
        prop_assert_eq!(with.data(), Some(&data[..]));
        check_fe(&FrontendMessage::SaslInitialResponse(with), ctx, &prefix)?;
    }

    /// Bind: the accessors give back exactly what was given, NULLs included.
    #[test]
    fn fe_bind_accessors(
        portal in cstring(8),
        stmt in cstring(8),
        pf in vec(format(), 0..5),
        params in value_list(),
        rf in vec(format(), 0..5),
    ) {
        let b = Bind::new(
            &portal,
            &stmt,
            &pf,
            &params.iter().map(|o| o.as_deref()).collect::<Vec<Option<&[u8]>>>(),
            &rf,
        )
        .unwrap();
        let mut d = fe_decoder(Fe::Tagged(None));
        d.receive(&encode(&b));
        let Some(FrontendMessage::Bind(got)) = d.next().unwrap() else {
            return Err(TestCaseError::fail("not a Bind"));
        };
        prop_assert_eq!(got.portal(), portal.as_bytes());
        prop_assert_eq!(got.statement(), stmt.as_bytes());
        prop_assert_eq!(got.param_formats().iter().collect::<Vec<_>>(), pf);
        prop_assert_eq!(got.result_formats().iter().collect::<Vec<_>>(), rf);
        let want: Vec<Option<&[u8]>> = params.iter().map(|o| o.as_deref()).collect();
        prop_assert_eq!(got.params().iter().collect::<Vec<_>>(), want);
        prop_assert_eq!(got.params().len(), params.len());
    }

    /// StartupMessage: parameters, and `_pq_.` options, come back in order.
    #[test]
    fn fe_startup_accessors(m in startup_message()) {
        let mut d = FrontendDecoder::new();
        d.receive(&encode(&m));
        let Some(FrontendMessage::Startup(got)) = d.next().unwrap() else {
            return Err(TestCaseError::fail("not a StartupMessage"));
        };
        prop_assert!(!d.in_startup());
        prop_assert_eq!(got.version(), m.version());
        prop_assert_eq!(got.params().collect::<Vec<_>>(), m.params().collect::<Vec<_>>());
        let opts: Vec<_> = m.params().filter(|(k, _)| k.starts_with(b"_pq_.")).collect();
        prop_assert_eq!(got.protocol_options().collect::<Vec<_>>(), opts);
    }

    /// CancelRequest: every key length from 4 to 256.
    #[test]
    fn fe_cancel_request_key_lengths(pid in any::<i32>(), len in 4usize..=256, b in any::<u8>()) {
        let key = vec![b; len];
        let m = CancelRequest::new(pid, &key).unwrap();
        prop_assert_eq!(m.secret_key(), &key[..]);
        prop_assert_eq!(m.process_id(), pid);
        check_fe(&FrontendMessage::CancelRequest(m), Fe::Startup, &[])?;
    }
}

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

/// How a backend decoder must be set up for a message.
#[derive(Debug, Clone, Copy)]
enum Be {
    V30,
    V32,
    Ssl,
    GssEnc,
}

fn be_decoder(ctx: Be) -> BackendDecoder {
    let mut d = BackendDecoder::new();
    match ctx {
        Be::V30 => {}
        Be::V32 => d.set_protocol_version(ProtocolVersion::V3_2),
        Be::Ssl => d.expect_ssl_response(),
        Be::GssEnc => d.expect_gssenc_response(),
    }
    d
}

fn be_version(ctx: Be) -> ProtocolVersion {
    match ctx {
        Be::V32 => ProtocolVersion::V3_2,
        _ => ProtocolVersion::V3_0,
    }
}

/// Compares a borrowed decode with an owned one.
fn same_ref(r: &BackendMessage<'_>, m: &BackendMessage) -> Result<(), TestCaseError> {
    match (r, m) {
        (BackendMessage::DataRow(r), BackendMessage::DataRow(m)) => {
            prop_assert_eq!(r.len(), m.len());
            prop_assert_eq!(r.is_empty(), m.is_empty());
            prop_assert_eq!(
                r.columns().collect::<Vec<_>>(),
                m.columns().collect::<Vec<_>>()
            );
        }
        (BackendMessage::CopyData(r), BackendMessage::CopyData(m)) => {
            prop_assert_eq!(r.data(), m.data());
        }
        (r, m) => prop_assert_eq!(r, m),
    }
    Ok(())
}

fn check_be(msg: &BackendMessage, ctx: Be, prefix: &[u8]) -> Result<(), TestCaseError> {
    let bytes = encode_appended(msg, prefix)?;
    let tagged = matches!(ctx, Be::V30 | Be::V32);
    if tagged {
        prop_assert_eq!(
            i32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize,
            bytes.len() - 1
        );
    } else {
        prop_assert_eq!(bytes.len(), 1);
    }

    // value -> encode -> decode == value, and nothing is left over.
    let mut d = be_decoder(ctx);
    d.receive(&bytes);
    let decoded = d.next();
    prop_assert_eq!(&decoded, &Ok(Some(msg.clone())));
    prop_assert_eq!(d.next(), Ok(None));
    prop_assert_eq!(d.buffered_len(), 0);

    // bytes -> decode -> encode == bytes.
    let decoded = decoded.unwrap().unwrap();
    prop_assert_eq!(encode(&decoded), bytes.clone());
    prop_assert_eq!(decoded.encoded_len(), bytes.len());

    // The borrowing decoder agrees.
    let mut d = be_decoder(ctx);
    d.receive(&bytes);
    match d.next_ref() {
        Ok(Some(r)) => same_ref(&r, msg)?,
        other => return Err(TestCaseError::fail(format!("next_ref gave {other:?}"))),
    }
    // The lent bytes no longer count as buffered.
    prop_assert_eq!(d.buffered_len(), 0);
    prop_assert!(matches!(d.next_ref(), Ok(None)));
    prop_assert_eq!(d.buffered_len(), 0);

    // The one-frame decoding function agrees.
    if tagged {
        let mut d = be_decoder(ctx);
        d.receive(&bytes);
        let f = d.next_frame().unwrap().unwrap();
        prop_assert_eq!(f.tag, bytes[0]);
        prop_assert_eq!(&f.body[..], &bytes[5..]);
        prop_assert_eq!(d.next_frame(), Ok(None));
        prop_assert_eq!(
            BackendMessage::decode(f.tag, &f.body, be_version(ctx)),
            Ok(msg.clone())
        );
    }
    Ok(())
}

fn check_be_struct<T: Encode>(
    m: &T,
    whole: &BackendMessage,
    ctx: Be,
    prefix: &[u8],
) -> Result<(), TestCaseError> {
    let bytes = encode_appended(m, prefix)?;
    prop_assert_eq!(bytes, encode(whole));
    check_be(whole, ctx, prefix)
}

macro_rules! be_struct {
    ($($name:ident: $strat:expr => $variant:ident in $ctx:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(m in $strat, prefix in raw_bytes(8)) {
                    let whole = BackendMessage::$variant(m.clone());
                    check_be_struct(&m, &whole, $ctx, &prefix)?;
                }
            )*
        }
    };
}

macro_rules! be_enum {
    ($($name:ident: $strat:expr => $ctx:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(m in $strat, prefix in raw_bytes(8)) {
                    check_be(&m, $ctx, &prefix)?;
                }
            )*
        }
    };
}

be_struct! {
    be_auth_any: authentication() => Authentication in Be::V30;
    be_auth_ok: Just(Authentication::Ok) => Authentication in Be::V30;
    be_auth_kerberos_v5: Just(Authentication::KerberosV5) => Authentication in Be::V30;
    be_auth_cleartext: Just(Authentication::CleartextPassword) => Authentication in Be::V30;
    be_auth_md5: any::<[u8; 4]>().prop_map(|salt| Authentication::Md5Password { salt })
        => Authentication in Be::V30;
    be_auth_scm_credential: Just(Authentication::ScmCredential) => Authentication in Be::V30;
    be_auth_gss: Just(Authentication::Gss) => Authentication in Be::V30;
    be_auth_gss_continue: payload(64).prop_map(Authentication::GssContinue)
        => Authentication in Be::V30;
    be_auth_sspi: Just(Authentication::Sspi) => Authentication in Be::V30;
    be_auth_sasl: sasl_mechanisms().prop_map(Authentication::Sasl) => Authentication in Be::V30;
    be_auth_sasl_continue: payload(96).prop_map(Authentication::SaslContinue)
        => Authentication in Be::V30;
    be_auth_sasl_final: payload(96).prop_map(Authentication::SaslFinal)
        => Authentication in Be::V30;
    be_backend_key_data_v30: backend_key_data_v30() => BackendKeyData in Be::V30;
    be_backend_key_data_v32: backend_key_data_v32() => BackendKeyData in Be::V32;
    be_command_complete: command_complete() => CommandComplete in Be::V30;
    be_copy_data: copy_data() => CopyData in Be::V30;
    be_data_row: data_row() => DataRow in Be::V30;
    be_negotiate_protocol_version: negotiate_protocol_version()
        => NegotiateProtocolVersion in Be::V30;
    be_notification_response: notification_response() => NotificationResponse in Be::V30;
    be_parameter_description: parameter_description() => ParameterDescription in Be::V30;
    be_parameter_status: parameter_status() => ParameterStatus in Be::V30;
    be_row_description: row_description() => RowDescription in Be::V30;
}

be_enum! {
    be_bind_complete: Just(BackendMessage::BindComplete) => Be::V30;
    be_close_complete: Just(BackendMessage::CloseComplete) => Be::V30;
    be_copy_done: Just(BackendMessage::CopyDone) => Be::V30;
    be_copy_in_response: copy_response().prop_map(BackendMessage::CopyInResponse) => Be::V30;
    be_copy_out_response: copy_response().prop_map(BackendMessage::CopyOutResponse) => Be::V30;
    be_copy_both_response: copy_response().prop_map(BackendMessage::CopyBothResponse) => Be::V30;
    be_empty_query_response: Just(BackendMessage::EmptyQueryResponse) => Be::V30;
    be_error_response: error_fields().prop_map(BackendMessage::ErrorResponse) => Be::V30;
    be_notice_response: error_fields().prop_map(BackendMessage::NoticeResponse) => Be::V30;
    be_function_call_response: option::of(payload(64))
        .prop_map(BackendMessage::FunctionCallResponse) => Be::V30;
    be_no_data: Just(BackendMessage::NoData) => Be::V30;
    be_parse_complete: Just(BackendMessage::ParseComplete) => Be::V30;
    be_portal_suspended: Just(BackendMessage::PortalSuspended) => Be::V30;
    be_ready_for_query: transaction_status().prop_map(BackendMessage::ReadyForQuery) => Be::V30;
    be_ssl_response: any::<bool>().prop_map(|accepted| BackendMessage::SslResponse { accepted })
        => Be::Ssl;
    be_gssenc_response: any::<bool>()
        .prop_map(|accepted| BackendMessage::GssEncResponse { accepted }) => Be::GssEnc;
    be_any_v32: backend_tagged(ProtocolVersion::V3_2) => Be::V32;
}

proptest! {
    #![proptest_config(config())]

    /// FunctionCallResponse: NULL, empty and non-empty results are all distinct and survive.
    #[test]
    fn be_function_call_response_null_and_not(v in payload(32)) {
        for m in [
            BackendMessage::FunctionCallResponse(None),
            BackendMessage::FunctionCallResponse(Some(Bytes::new())),
            BackendMessage::FunctionCallResponse(Some(v.clone())),
        ] {
            check_be(&m, Be::V30, &[])?;
        }
    }

    /// A 4-byte key decodes under both versions; the encoding does not depend on the version.
    #[test]
    fn be_backend_key_data_4_bytes_under_both(m in backend_key_data_v30()) {
        check_be(&BackendMessage::BackendKeyData(m.clone()), Be::V30, &[])?;
        check_be(&BackendMessage::BackendKeyData(m), Be::V32, &[])?;
    }

    /// ErrorResponse / NoticeResponse fields, unknown codes included, come back in order.
    #[test]
    fn be_error_fields_accessors(fields in vec((1u8..=255, cbytes(24)), 0..10), notice in any::<bool>()) {
        let f = ErrorFields::new(fields.iter().map(|(c, v)| (FieldCode::from_byte(*c), v))).unwrap();
        let m = if notice {
            BackendMessage::NoticeResponse(f)
        } else {
            BackendMessage::ErrorResponse(f)
        };
        let mut d = BackendDecoder::new();
        d.receive(&encode(&m));
        let got = match d.next().unwrap() {
            Some(BackendMessage::ErrorResponse(f)) if !notice => f,
            Some(BackendMessage::NoticeResponse(f)) if notice => f,
            other => return Err(TestCaseError::fail(format!("got {other:?}"))),
        };
        let seen: Vec<(u8, Vec<u8>)> = got.iter().map(|f| (f.code.byte(), f.value.to_vec())).collect();
        prop_assert_eq!(&seen, &fields);
        let first = |c: u8| fields.iter().find(|(k, _)| *k == c).map(|(_, v)| &v[..]);
        prop_assert_eq!(got.message(), first(b'M'));
        prop_assert_eq!(got.code(), first(b'C'));
        prop_assert_eq!(got.severity(), first(b'S'));
        prop_assert_eq!(got.detail(), first(b'D'));
        prop_assert_eq!(got.hint(), first(b'H'));
    }

    /// RowDescription fields come back field by field.
    #[test]
    fn be_row_description_accessors(fields in row_description_fields()) {
        let m = row_description_of(&fields);
        let mut d = BackendDecoder::new();
        d.receive(&encode(&m));
        let Some(BackendMessage::RowDescription(got)) = d.next().unwrap() else {
            return Err(TestCaseError::fail("not a RowDescription"));
        };
        prop_assert_eq!(got.len(), fields.len());
        let want: Vec<FieldDescription<'_>> = fields
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
        prop_assert_eq!(got.fields().collect::<Vec<_>>(), want);
    }

    /// `DataRow::encode_values` writes exactly what building a DataRow and encoding it writes.
    #[test]
    fn be_data_row_encode_values(v in value_list(), prefix in raw_bytes(8)) {
        let cols: Vec<Option<&[u8]>> = v.iter().map(|o| o.as_deref()).collect();
        let row = DataRow::new(cols.iter().copied()).unwrap();
        let mut out = BytesMut::from(&prefix[..]);
        DataRow::encode_values(&mut out, &cols).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &encode(&row)[..]);
        prop_assert_eq!(row.columns().collect::<Result<Vec<_>, _>>().unwrap(), cols);
        check_be(&BackendMessage::DataRow(row), Be::V30, &[])?;
    }
}

// ---------------------------------------------------------------------------------------------
// Direct encoders: the bytes of the constructor and `Encode`, the constructor's errors, and
// nothing written on error
// ---------------------------------------------------------------------------------------------

/// Runs a direct encoder after `prefix` and checks it against `built` (the constructor's
/// result): the same bytes appended, or the same error and nothing appended.
fn same_as_built<T: Encode>(
    prefix: &[u8],
    direct: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    built: Result<T, EncodeError>,
) -> Result<(), TestCaseError> {
    let mut out = BytesMut::from(prefix);
    let got = direct(&mut out);
    match built {
        Ok(m) => {
            prop_assert_eq!(got, Ok(()));
            prop_assert_eq!(&out[..prefix.len()], prefix);
            prop_assert_eq!(&out[prefix.len()..], &encode(&m)[..]);
        }
        Err(e) => {
            prop_assert_eq!(got, Err(e));
            prop_assert_eq!(
                &out[..],
                prefix,
                "a refused message must not write anything"
            );
        }
    }
    Ok(())
}

/// A name or text that sometimes holds a NUL.
fn maybe_nul(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => cstring(max),
        1 => (cstring(max), cstring(max)).prop_map(|(a, b)| format!("{a}\0{b}")),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fe_bind_encode_values(
        portal in maybe_nul(12),
        statement in maybe_nul(12),
        pf in vec(format(), 0..6),
        v in prop_oneof![value_list(), vec(option::weighted(0.8, raw_bytes(600)), 0..6)],
        rf in vec(format(), 0..6),
        prefix in raw_bytes(8),
    ) {
        let params: Vec<Option<&[u8]>> = v.iter().map(|o| o.as_deref()).collect();
        let built = Bind::new(&portal, &statement, &pf, &params, &rf);
        same_as_built(
            &prefix,
            |out| Bind::encode_values(out, &portal, &statement, &pf, &params, &rf),
            built,
        )?;
    }

    #[test]
    fn fe_parse_encode_values(
        name in maybe_nul(12),
        query in maybe_nul(1200),
        types in vec(any::<u32>(), 0..8),
        prefix in raw_bytes(8),
    ) {
        same_as_built(
            &prefix,
            |out| Parse::encode_values(out, &name, &query, &types),
            Parse::new(&name, &query, &types),
        )?;
    }

    #[test]
    fn fe_small_encode_values(
        name in maybe_nul(16),
        target in target(),
        max_rows in any::<i32>(),
        prefix in raw_bytes(8),
    ) {
        same_as_built(
            &prefix,
            |out| Execute::encode_values(out, &name, max_rows),
            Execute::new(&name, max_rows),
        )?;
        same_as_built(
            &prefix,
            |out| Describe::encode_values(out, target, &name),
            Describe::new(target, &name),
        )?;
        same_as_built(
            &prefix,
            |out| Close::encode_values(out, target, &name),
            Close::new(target, &name),
        )?;
        same_as_built(&prefix, |out| Query::encode_str(out, &name), Query::new(&name))?;
        same_as_built(
            &prefix,
            |out| CopyFail::encode_str(out, &name),
            CopyFail::new(&name),
        )?;
    }
}

#[test]
fn direct_encoders_refuse_what_constructors_refuse() {
    const N: usize = 65_536;
    let mut out = BytesMut::new();
    let e = Bind::encode_values(&mut out, "", "", &vec![Format::Text; N], &[], &[]);
    assert_eq!(e, Err(too_many("formats")));
    let e = Bind::encode_values(&mut out, "", "", &[], &vec![None; N], &[]);
    assert_eq!(e, Err(too_many("values")));
    let e = Bind::encode_values(&mut out, "", "", &[], &[], &vec![Format::Binary; N]);
    assert_eq!(e, Err(too_many("formats")));
    let e = Parse::encode_values(&mut out, "", "", &vec![0; N]);
    assert_eq!(e, Err(too_many("parameter types")));
    assert!(out.is_empty(), "a refused message must not write anything");
}

// ---------------------------------------------------------------------------------------------
// Hand-made bytes: decode -> encode gives back the input
// ---------------------------------------------------------------------------------------------

fn raw_field_spec() -> impl Strategy<Value = Vec<u8>> {
    (
        cbytes(10),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        0i16..=1,
    )
        .prop_map(|(n, t, c, ty, sz, m, f)| {
            Body::new()
                .cstr(&n)
                .u32(t)
                .i16(c)
                .u32(ty)
                .i16(sz)
                .i32(m)
                .i16(f)
                .build()
        })
}

/// Valid backend frames written by hand (protocol 3.2 context).
fn raw_backend_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        value_list().prop_map(|v| {
            let mut b = Body::new().i16(v.len() as i16);
            for c in &v {
                b = b.nullable(c.as_deref());
            }
            frame(b'D', &b.build())
        }),
        vec(raw_field_spec(), 0..5).prop_map(|f| frame(
            b'T',
            &Body::new().i16(f.len() as i16).raw(&f.concat()).build()
        )),
        (
            prop::sample::select(vec![b'E', b'N']),
            vec((1u8..=255, cbytes(20)), 0..8)
        )
            .prop_map(|(t, f)| {
                let mut b = Body::new();
                for (c, v) in &f {
                    b = b.u8(*c).cstr(v);
                }
                frame(t, &b.u8(0).build())
            }),
        (any::<i32>(), vec(cbytes(16), 0..5)).prop_map(|(m, o)| {
            let mut b = Body::new().i32(m).i32(o.len() as i32);
            for s in &o {
                b = b.cstr(s);
            }
            frame(b'v', &b.build())
        }),
        vec(cbytes_nonempty(16), 0..4).prop_map(|m| {
            let mut b = Body::new().i32(10);
            for s in &m {
                b = b.cstr(s);
            }
            frame(b'R', &b.u8(0).build())
        }),
        (prop::sample::select(vec![8, 11, 12]), raw_bytes(40))
            .prop_map(|(code, d)| frame(b'R', &Body::new().i32(code).raw(&d).build())),
        vec(any::<u32>(), 0..8).prop_map(|t| {
            let mut b = Body::new().i16(t.len() as i16);
            for o in &t {
                b = b.u32(*o);
            }
            frame(b't', &b.build())
        }),
        (any::<i32>(), cancel_key())
            .prop_map(|(p, k)| frame(b'K', &Body::new().i32(p).raw(&k).build())),
        (
            prop::sample::select(vec![b'G', b'H', b'W']),
            0i8..=1,
            vec(0i16..=1, 0..6)
        )
            .prop_map(|(t, f, c)| {
                let mut b = Body::new().i8(f).i16(c.len() as i16);
                for x in &c {
                    b = b.i16(*x);
                }
                frame(t, &b.build())
            }),
        option::of(raw_bytes(20))
            .prop_map(|v| frame(b'V', &Body::new().nullable(v.as_deref()).build())),
        (any::<i32>(), cbytes(10), cbytes(30))
            .prop_map(|(p, c, m)| frame(b'A', &Body::new().i32(p).cstr(&c).cstr(&m).build())),
        raw_bytes(100).prop_map(|d| frame(b'd', &d)),
        prop::sample::select(b"ITE".to_vec()).prop_map(|s| frame(b'Z', &[s])),
    ]
}

/// Valid tagged frontend frames written by hand (`p` undecided).
fn raw_frontend_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            cbytes(8),
            cbytes(8),
            vec(0i16..=1, 0..4),
            value_list(),
            vec(0i16..=1, 0..4)
        )
            .prop_map(|(p, s, pf, v, rf)| {
                let mut b = Body::new().cstr(&p).cstr(&s).i16(pf.len() as i16);
                for f in &pf {
                    b = b.i16(*f);
                }
                b = b.i16(v.len() as i16);
                for x in &v {
                    b = b.nullable(x.as_deref());
                }
                b = b.i16(rf.len() as i16);
                for f in &rf {
                    b = b.i16(*f);
                }
                frame(b'B', &b.build())
            }),
        (cbytes(8), cbytes(40), vec(any::<u32>(), 0..5)).prop_map(|(n, q, t)| {
            let mut b = Body::new().cstr(&n).cstr(&q).i16(t.len() as i16);
            for o in &t {
                b = b.u32(*o);
            }
            frame(b'P', &b.build())
        }),
        (any::<u32>(), vec(0i16..=1, 0..4), value_list(), 0i16..=1).prop_map(|(f, af, v, r)| {
            let mut b = Body::new().u32(f).i16(af.len() as i16);
            for x in &af {
                b = b.i16(*x);
            }
            b = b.i16(v.len() as i16);
            for x in &v {
                b = b.nullable(x.as_deref());
            }
            frame(b'F', &b.i16(r).build())
        }),
        cbytes(60).prop_map(|q| frame(b'Q', &Body::new().cstr(&q).build())),
        (
            prop::sample::select(vec![b'D', b'C']),
            prop::sample::select(vec![b'S', b'P']),
            cbytes(10)
        )
            .prop_map(|(t, k, n)| frame(t, &Body::new().u8(k).cstr(&n).build())),
        (cbytes(10), any::<i32>())
            .prop_map(|(p, n)| frame(b'E', &Body::new().cstr(&p).i32(n).build())),
        raw_bytes(100).prop_map(|d| frame(b'd', &d)),
        raw_bytes(100).prop_map(|d| frame(b'p', &d)),
        cbytes(30).prop_map(|m| frame(b'f', &Body::new().cstr(&m).build())),
        prop::sample::select(b"SHcX".to_vec()).prop_map(|t| frame(t, &[])),
    ]
}

/// Valid start-up packets written by hand.
fn raw_startup_packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u16..=3, vec((startup_param_name(), cbytes(20)), 0..6)).prop_map(|(minor, p)| {
            let mut b = Body::new();
            for (k, v) in &p {
                b = b.cstr(k).cstr(v);
            }
            startup_packet(3 << 16 | u32::from(minor), &b.u8(0).build())
        }),
        (any::<i32>(), cancel_key()).prop_map(|(p, k)| startup_packet(
            CANCEL_REQUEST_CODE,
            &Body::new().i32(p).raw(&k).build()
        )),
        Just(startup_packet(SSL_REQUEST_CODE, &[])),
        Just(startup_packet(GSSENC_REQUEST_CODE, &[])),
        (0u16..=2, any::<u16>(), raw_bytes(40)).prop_map(|(major, minor, rest)| startup_packet(
            u32::from(major) << 16 | u32::from(minor),
            &rest
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..config() })]

    #[test]
    fn raw_backend_frames_reencode(bytes in raw_backend_frame()) {
        let mut d = be_decoder(Be::V32);
        d.receive(&bytes);
        let m = d.next();
        prop_assert!(matches!(m, Ok(Some(_))), "{:?}", m);
        prop_assert_eq!(d.next(), Ok(None));
        let m = m.unwrap().unwrap();
        prop_assert_eq!(encode(&m), bytes.clone());
        prop_assert_eq!(m.encoded_len(), bytes.len());
    }

    #[test]
    fn raw_frontend_frames_reencode(bytes in raw_frontend_frame()) {
        let mut d = fe_decoder(Fe::Tagged(None));
        d.receive(&bytes);
        let m = d.next();
        prop_assert!(matches!(m, Ok(Some(_))), "{:?}", m);
        prop_assert_eq!(d.next(), Ok(None));
        let m = m.unwrap().unwrap();
        prop_assert_eq!(m.tag(), Some(bytes[0]));
        prop_assert_eq!(encode(&m), bytes.clone());
        prop_assert_eq!(m.encoded_len(), bytes.len());
    }

    #[test]
    fn raw_startup_packets_reencode(bytes in raw_startup_packet()) {
        let mut d = FrontendDecoder::new();
        d.receive(&bytes);
        let m = d.next();
        prop_assert!(matches!(m, Ok(Some(_))), "{:?}", m);
        prop_assert_eq!(d.next(), Ok(None));
        let m = m.unwrap().unwrap();
        prop_assert_eq!(m.tag(), None);
        prop_assert_eq!(encode(&m), bytes.clone());
        prop_assert_eq!(m.encoded_len(), bytes.len());
    }

    /// Every `p` body decodes untyped and re-encodes unchanged; decoding it as a specific kind
    /// through `decode_as` agrees with a decoder told that kind.
    #[test]
    fn untyped_auth_response_decode_as(body in raw_bytes(60), kind in auth_response_kind()) {
        let bytes = frame(b'p', &body);
        let mut untyped = fe_decoder(Fe::Tagged(None));
        untyped.receive(&bytes);
        let Ok(Some(FrontendMessage::UntypedAuthResponse(u))) = untyped.next() else {
            return Err(TestCaseError::fail("not untyped"));
        };
        prop_assert_eq!(u.data(), &body[..]);
        if let Some(kind) = kind {
            let mut typed = fe_decoder(Fe::Tagged(Some(kind)));
            typed.receive(&bytes);
            prop_assert_eq!(u.decode_as(kind), typed.next().map(Option::unwrap));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Constructors refuse what cannot be encoded
// ---------------------------------------------------------------------------------------------

fn nul(field: &'static str) -> EncodeError {
    EncodeError::InteriorNul { field }
}

fn too_many(field: &'static str) -> EncodeError {
    EncodeError::TooMany {
        field,
        count: 65_536,
        max: 65_535,
    }
}

fn out_of_range(field: &'static str) -> impl Fn(&EncodeError) -> bool {
    move |e| matches!(e, EncodeError::OutOfRange { field: f, .. } if *f == field)
}

#[test]
fn constructors_reject_interior_nul() {
    assert_eq!(Query::new("SELECT\0 1").unwrap_err(), nul("query string"));
    assert_eq!(CopyFail::new(b"x\0").unwrap_err(), nul("error message"));
    assert_eq!(PasswordMessage::new(b"\0").unwrap_err(), nul("password"));
    assert_eq!(
        CommandComplete::new("SELECT\x001").unwrap_err(),
        nul("command tag")
    );
    assert_eq!(
        Parse::new("s\0", "", &[]).unwrap_err(),
        nul("statement name")
    );
    assert_eq!(
        Parse::new("", "SELECT\0", &[]).unwrap_err(),
        nul("query string")
    );
    let bind = |p: &str, s: &str| Bind::new(p, s, &[], &[], &[]);
    assert_eq!(bind("p\0", "").unwrap_err(), nul("portal name"));
    assert_eq!(bind("", "s\0").unwrap_err(), nul("statement name"));
    assert_eq!(
        Describe::new(Target::Portal, "\0").unwrap_err(),
        nul("name")
    );
    assert_eq!(
        Close::new(Target::Statement, "a\0b").unwrap_err(),
        nul("name")
    );
    assert_eq!(Execute::new("p\0", 0).unwrap_err(), nul("portal name"));
    assert_eq!(
        SaslInitialResponse::new("SCRAM\0", None).unwrap_err(),
        nul("mechanism")
    );
    assert_eq!(
        StartupMessage::new(ProtocolVersion::V3_0, [("us\0er", "a")]).unwrap_err(),
        nul("parameter name")
    );
    assert_eq!(
        StartupMessage::new(ProtocolVersion::V3_2, [("user", "a\0")]).unwrap_err(),
        nul("parameter value")
    );
    assert_eq!(ParameterStatus::new("a\0", "").unwrap_err(), nul("name"));
    assert_eq!(ParameterStatus::new("a", "\0").unwrap_err(), nul("value"));
    assert_eq!(
        NotificationResponse::new(1, "c\0", "").unwrap_err(),
        nul("channel")
    );
    assert_eq!(
        NotificationResponse::new(1, "c", "\0").unwrap_err(),
        nul("payload")
    );
    assert_eq!(
        NegotiateProtocolVersion::new(0x0003_0000, ["_pq_.x\0"]).unwrap_err(),
        nul("option")
    );
    assert_eq!(
        ErrorFields::new([(FieldCode::Message, "a\0")]).unwrap_err(),
        nul("field value")
    );
    assert_eq!(
        SaslMechanisms::new(["SCRAM\0"]).unwrap_err(),
        nul("mechanism")
    );
    let field = FieldDescription {
        name: b"a\0",
        table_oid: 0,
        column_id: 0,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: Format::Text,
    };
    assert_eq!(
        RowDescription::new(&[field]).unwrap_err(),
        nul("field name")
    );
}

#[test]
fn constructors_reject_empty_names_and_zero_codes() {
    let e = StartupMessage::new(ProtocolVersion::V3_0, [("", "x")]).unwrap_err();
    assert!(out_of_range("parameter name")(&e), "{e:?}");
    let e = StartupMessage::new(ProtocolVersion::V3_2, [("user", "a"), ("", "")]).unwrap_err();
    assert!(out_of_range("parameter name")(&e), "{e:?}");
    let e = SaslMechanisms::new(["SCRAM-SHA-256", ""]).unwrap_err();
    assert!(out_of_range("mechanism")(&e), "{e:?}");
    let e = ErrorFields::new([(FieldCode::Unknown(0), "x")]).unwrap_err();
    assert!(out_of_range("field code")(&e), "{e:?}");
    // An empty value is fine: only names end lists.
    StartupMessage::new(ProtocolVersion::V3_0, [("user", "")]).unwrap();
}

#[test]
fn constructors_reject_bad_cancel_keys() {
    for len in [0, 3, 257, 1000] {
        let key = vec![7u8; len];
        let e = CancelRequest::new(1, &key).unwrap_err();
        assert!(out_of_range("secret key")(&e), "{len}: {e:?}");
        let e = BackendKeyData::new(1, &key).unwrap_err();
        assert!(out_of_range("secret key")(&e), "{len}: {e:?}");
    }
    for len in [4, 5, 32, 256] {
        let key = vec![7u8; len];
        assert_eq!(CancelRequest::new(1, &key).unwrap().secret_key(), &key[..]);
        assert_eq!(BackendKeyData::new(1, &key).unwrap().secret_key(), &key[..]);
    }
}

#[test]
fn constructors_reject_more_than_65535_entries() {
    const N: usize = 65_536;
    assert_eq!(
        Parse::new("", "", &vec![0; N]).unwrap_err(),
        too_many("parameter types")
    );
    assert_eq!(
        ParameterDescription::new(&vec![0; N]).unwrap_err(),
        too_many("parameter types")
    );
    assert_eq!(
        Bind::new("", "", &vec![Format::Text; N], &[], &[]).unwrap_err(),
        too_many("formats")
    );
    assert_eq!(
        Bind::new("", "", &[], &vec![None::<&[u8]>; N], &[]).unwrap_err(),
        too_many("values")
    );
    assert_eq!(
        DataRow::new(vec![None::<&[u8]>; N]).unwrap_err(),
        too_many("values")
    );
    let mut out = BytesMut::new();
    assert_eq!(
        DataRow::encode_values(&mut out, &vec![None; N]).unwrap_err(),
        too_many("values")
    );
    assert!(out.is_empty(), "a refused DataRow must not write anything");
    let field = FieldDescription {
        name: b"",
        table_oid: 0,
        column_id: 0,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: Format::Text,
    };
    assert_eq!(
        RowDescription::new(&vec![field; N]).unwrap_err(),
        too_many("fields")
    );
}

#[test]
fn exactly_65535_entries_round_trip() {
    const N: usize = 65_535;
    let p = Parse::new("", "", &vec![23; N]).unwrap();
    let mut d = fe_decoder(Fe::Tagged(None));
    d.receive(&encode(&p));
    assert_eq!(d.next(), Ok(Some(FrontendMessage::Parse(p))));

    let v = &vec![None::<&[u8]>; N];
    let b = Bind::new("", "", &vec![Format::Binary; N], v, &[]).unwrap();
    d.receive(&encode(&b));
    assert_eq!(d.next(), Ok(Some(FrontendMessage::Bind(b))));

    let row = DataRow::new(vec![Some(&b""[..]); N]).unwrap();
    let pd = ParameterDescription::new(&vec![25; N]).unwrap();
    // ParameterDescription is not one of libpq's long message types, so 65,535 OIDs exceed
    // the default 30,000-byte limit: raise it for this check.
    let mut d = BackendDecoder::with_limits(Limits {
        backend_small: 300_000,
        ..Limits::default()
    });
    d.receive(&encode(&row));
    d.receive(&encode(&pd));
    assert_eq!(d.next(), Ok(Some(BackendMessage::DataRow(row))));
    assert_eq!(d.next(), Ok(Some(BackendMessage::ParameterDescription(pd))));
    assert_eq!(d.next(), Ok(None));
}
