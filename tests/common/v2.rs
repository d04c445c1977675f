//! Protocol-2.0 proptest strategies (valid streams of both directions, built through the public
//! API) and the drivers that decode them in chunks, telling the frontend decoder what the
//! backend's side would have told it.

#![allow(dead_code)]

use bytes::BytesMut;
use pgproto::v2::{
    AsciiRow, Authentication, BackendDecoder, BackendKeyData, BackendMessage, BinaryRow, CopyLine,
    FieldDescription, FrontendDecoder, FrontendMessage, FunctionCall, FunctionResult,
    NotificationResponse, PasswordPacket, RowDescription, StartupPacket, Text,
};
use pgproto::{CancelRequest, DecodeError, Encode, ProtocolVersion};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::common::{cbytes, raw_bytes};

/// A string without NUL.
pub(crate) fn text(max: usize) -> impl Strategy<Value = Text> + Clone {
    cbytes(max).prop_map(|b| Text::new(b).unwrap())
}

/// A line of COPY data: no newline but the last, never the end marker.
pub(crate) fn copy_line() -> impl Strategy<Value = CopyLine> + Clone {
    raw_bytes(40).prop_map(|mut b| {
        for x in &mut b {
            if *x == b'\n' {
                *x = b'\t';
            }
        }
        // Never `\.` before the newline: that would end the data.
        if b.last() == Some(&b'.') {
            b.push(b'x');
        }
        b.push(b'\n');
        CopyLine::new(b).unwrap()
    })
}

/// The last row of a frontend's COPY data without its newline (libpq sends data that does not
/// end with one as it is, then `\.`).
pub(crate) fn last_copy_row() -> impl Strategy<Value = CopyLine> + Clone {
    raw_bytes(20).prop_map(|mut b| {
        for x in &mut b {
            if *x == b'\n' {
                *x = b'\t';
            }
        }
        // Never a backslash last: it would escape the marker's.
        if b.last().is_none_or(|&x| x == b'\\') {
            b.push(b'y');
        }
        CopyLine::last(b).unwrap()
    })
}

pub(crate) fn authentication() -> impl Strategy<Value = Authentication> + Clone {
    prop_oneof![
        Just(Authentication::Ok),
        Just(Authentication::KerberosV4),
        Just(Authentication::KerberosV5),
        Just(Authentication::CleartextPassword),
        any::<[u8; 2]>().prop_map(|salt| Authentication::CryptPassword { salt }),
        any::<[u8; 4]>().prop_map(|salt| Authentication::Md5Password { salt }),
        Just(Authentication::ScmCredential),
    ]
}

/// A backend message that stands alone (no RowDescription or COPY state around it).
pub(crate) fn backend_single() -> impl Strategy<Value = BackendMessage> + Clone {
    prop_oneof![
        authentication().prop_map(BackendMessage::Authentication),
        (any::<i32>(), any::<[u8; 4]>()).prop_map(|(process_id, secret_key)| {
            BackendMessage::BackendKeyData(BackendKeyData {
                process_id,
                secret_key,
            })
        }),
        text(12).prop_map(BackendMessage::CursorResponse),
        text(20).prop_map(BackendMessage::CompletedResponse),
        Just(BackendMessage::EmptyQueryResponse),
        text(60).prop_map(BackendMessage::ErrorResponse),
        text(60).prop_map(BackendMessage::NoticeResponse),
        (any::<i32>(), text(16)).prop_map(|(process_id, channel)| {
            BackendMessage::NotificationResponse(NotificationResponse {
                process_id,
                channel,
            })
        }),
        Just(BackendMessage::ReadyForQuery),
        Just(BackendMessage::CopyInResponse),
        raw_bytes(24).prop_map(|v| {
            BackendMessage::FunctionResultResponse(FunctionResult::new(v).unwrap())
        }),
        Just(BackendMessage::FunctionVoidResponse),
    ]
}

/// A RowDescription of `n` fields.
fn row_description(n: usize) -> impl Strategy<Value = RowDescription> + Clone {
    vec(
        (cbytes(12), any::<u32>(), any::<i16>(), any::<i32>()),
        n..=n,
    )
    .prop_map(|fields| {
        let fields: Vec<FieldDescription<'_>> = fields
            .iter()
            .map(
                |(name, type_oid, type_size, type_modifier)| FieldDescription {
                    name,
                    type_oid: *type_oid,
                    type_size: *type_size,
                    type_modifier: *type_modifier,
                },
            )
            .collect();
        RowDescription::new(&fields).unwrap()
    })
}

/// A row of `n` values, text or binary.
fn row(n: usize) -> impl Strategy<Value = BackendMessage> + Clone {
    (
        vec(option::weighted(0.8, raw_bytes(16)), n..=n),
        any::<bool>(),
    )
        .prop_map(|(values, binary)| {
            let v: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
            if binary {
                BackendMessage::BinaryRow(BinaryRow::new(&v).unwrap())
            } else {
                BackendMessage::AsciiRow(AsciiRow::new(&v).unwrap())
            }
        })
}

/// A result set: a RowDescription and rows of its field count (up to 20 fields, so that
/// bitmaps of several bytes come up).
fn result_set() -> impl Strategy<Value = Vec<BackendMessage>> + Clone {
    (0usize..20).prop_flat_map(|n| {
        (row_description(n), vec(row(n), 0..4)).prop_map(|(d, rows)| {
            let mut v = vec![BackendMessage::RowDescription(d)];
            v.extend(rows);
            v
        })
    })
}

/// COPY TO STDOUT: CopyOutResponse, lines, the end marker.
fn copy_out() -> impl Strategy<Value = Vec<BackendMessage>> + Clone {
    vec(copy_line(), 0..4).prop_map(|lines| {
        let mut v = vec![BackendMessage::CopyOutResponse];
        v.extend(lines.into_iter().map(BackendMessage::CopyDataRow));
        v.push(BackendMessage::CopyDataEnd);
        v
    })
}

/// A valid backend stream: items whose framing depends on the ones before them are generated
/// together. `ssl`: the stream starts with the answer to SSLRequest.
#[derive(Debug, Clone)]
pub(crate) struct BackendStream {
    pub(crate) ssl: bool,
    pub(crate) messages: Vec<BackendMessage>,
}

pub(crate) fn backend_stream(max_items: usize) -> impl Strategy<Value = BackendStream> + Clone {
    let item = prop_oneof![
        4 => backend_single().prop_map(|m| vec![m]),
        2 => result_set(),
        1 => copy_out(),
    ];
    (option::of(any::<bool>()), vec(item, 0..max_items)).prop_map(|(ssl, items)| {
        let mut messages = Vec::new();
        if let Some(accepted) = ssl {
            messages.push(BackendMessage::SslResponse { accepted });
        }
        messages.extend(items.into_iter().flatten());
        BackendStream {
            ssl: ssl.is_some(),
            messages,
        }
    })
}

pub(crate) fn function_call() -> impl Strategy<Value = FunctionCall> + Clone {
    (
        any::<u32>(),
        vec(option::weighted(0.8, raw_bytes(16)), 0..5),
    )
        .prop_map(|(oid, args)| {
            let a: Vec<Option<&[u8]>> = args.iter().map(|v| v.as_deref()).collect();
            FunctionCall::new(oid, &a).unwrap()
        })
}

pub(crate) fn startup_packet() -> impl Strategy<Value = StartupPacket> + Clone {
    (0u16..3, cbytes(64), cbytes(32), cbytes(64)).prop_map(|(minor, db, user, opts)| {
        let v = ProtocolVersion { major: 2, minor };
        StartupPacket::new(v, db, user, opts).unwrap()
    })
}

/// A valid frontend stream: SSLRequests, then a CancelRequest (which ends it) or a
/// StartupPacket, perhaps a PasswordPacket, then queries, function calls and COPY data.
pub(crate) fn frontend_stream(max_items: usize) -> impl Strategy<Value = Vec<FrontendMessage>> {
    let item = prop_oneof![
        3 => text(60).prop_map(|q| vec![FrontendMessage::Query(q)]),
        1 => function_call().prop_map(|f| vec![FrontendMessage::FunctionCall(f)]),
        1 => (vec(copy_line(), 0..4), option::of(last_copy_row())).prop_map(|(lines, last)| {
            let mut v: Vec<_> = lines.into_iter().map(FrontendMessage::CopyDataRow).collect();
            v.extend(last.map(FrontendMessage::CopyDataRow));
            v.push(FrontendMessage::CopyDataEnd);
            v
        }),
    ];
    (
        0usize..3,
        prop_oneof![
            4 => startup_packet().prop_map(Some),
            1 => Just(None),
        ],
        (any::<i32>(), any::<[u8; 4]>()),
        option::of(cbytes(30)),
        vec(item, 0..max_items),
        any::<bool>(),
    )
        .prop_map(|(ssl, startup, (pid, key), password, items, terminate)| {
            let mut v = vec![FrontendMessage::SslRequest; ssl];
            let Some(startup) = startup else {
                v.push(FrontendMessage::CancelRequest(
                    CancelRequest::new(pid, key).unwrap(),
                ));
                return v;
            };
            v.push(FrontendMessage::Startup(startup));
            if let Some(p) = password {
                v.push(FrontendMessage::Password(PasswordPacket::new(p).unwrap()));
            }
            v.extend(items.into_iter().flatten());
            if terminate {
                v.push(FrontendMessage::Terminate);
            }
            v
        })
}

pub(crate) fn encode_all<T: Encode>(msgs: &[T]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Cuts `bytes` into chunks whose sizes cycle through `sizes` (all non-zero).
pub(crate) fn chunked<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].max(1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

/// Decodes `chunks` with a [`BackendDecoder`]: every message, then the error if one came.
/// Checks on the way that the decoder holds exactly the bytes not yet decoded.
pub(crate) fn decode_backend(
    dec: &mut BackendDecoder,
    chunks: &[&[u8]],
    ssl: bool,
) -> (Vec<BackendMessage>, Option<DecodeError>) {
    if ssl {
        dec.expect_ssl_response();
    }
    let mut out = Vec::new();
    let (mut fed, mut done) = (0, 0);
    for c in chunks {
        dec.receive(c);
        fed += c.len();
        loop {
            match dec.next() {
                Ok(Some(m)) => {
                    done += m.encoded_len();
                    out.push(m);
                }
                Ok(None) => {
                    assert_eq!(dec.buffered_len(), fed - done, "bytes lost or invented");
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.next(), Err(e.clone()), "the error is not sticky");
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

/// Decodes `chunks` with a [`FrontendDecoder`], calling `expect_password` and `expect_copy_in`
/// where the backend's side of a session would have (before the message `plan` says comes
/// next): every message, then the error if one came.
pub(crate) fn decode_frontend(
    dec: &mut FrontendDecoder,
    chunks: &[&[u8]],
    plan: &[FrontendMessage],
) -> (Vec<FrontendMessage>, Option<DecodeError>) {
    let mut out: Vec<FrontendMessage> = Vec::new();
    let (mut fed, mut done) = (0, 0);
    let prepare = |dec: &mut FrontendDecoder, out: &[FrontendMessage]| {
        let next = plan.get(out.len());
        let in_copy = matches!(out.last(), Some(FrontendMessage::CopyDataRow(_)));
        match next {
            Some(FrontendMessage::Password(_)) => dec.expect_password(),
            Some(FrontendMessage::CopyDataRow(_) | FrontendMessage::CopyDataEnd) if !in_copy => {
                dec.expect_copy_in()
            }
            _ => {}
        }
    };
    prepare(dec, &out);
    for c in chunks {
        dec.receive(c);
        fed += c.len();
        loop {
            match dec.next() {
                Ok(Some(m)) => {
                    done += m.encoded_len();
                    out.push(m);
                    prepare(dec, &out);
                }
                Ok(None) => {
                    assert_eq!(dec.buffered_len(), fed - done, "bytes lost or invented");
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.next(), Err(e.clone()), "the error is not sticky");
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}
