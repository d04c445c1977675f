//! A server written by hand, for the `client_*` tests: the backend messages it "sends" are
//! encoded here, and what the `Client` sends back is decoded to be checked.

use bytes::BytesMut;
use pgproto::{
    Authentication, BackendKeyData, BackendMessage, Bind, Client, ClientConfig, ClientEvent,
    CommandComplete, DataRow, Encode, Error, ErrorFields, FieldCode, FieldDescription,
    FrontendDecoder, FrontendMessage, RequestId, RowDescription, Target, TransactionStatus,
};

/// The bytes of `msgs`, encoded one after the other.
pub(crate) fn encode(msgs: &[BackendMessage]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Drains events until `Ok(None)` or an error.
pub(crate) fn drain(c: &mut Client) -> (Vec<ClientEvent>, Option<Error>) {
    let mut events = Vec::new();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => events.push(e.into_owned()),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Everything the client has queued, decoded as frontend messages.
pub(crate) fn sent(c: &mut Client, dec: &mut FrontendDecoder) -> Vec<FrontendMessage<'static>> {
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        dec.receive(&b);
    }
    while let Some(m) = dec.next().unwrap() {
        out.push(m);
    }
    out
}

/// The names of `msgs`, for short assertions.
pub(crate) fn names(msgs: &[FrontendMessage]) -> Vec<&'static str> {
    msgs.iter().map(FrontendMessage::name).collect()
}

/// A client connected to a trusting scripted server, and the decoder of what it sends.
pub(crate) fn connected() -> (Client, FrontendDecoder) {
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    let mut dec = FrontendDecoder::new();
    let first = sent(&mut c, &mut dec);
    assert!(matches!(first[..], [FrontendMessage::Startup(_)]));
    c.receive(&encode(&[
        BackendMessage::Authentication(Authentication::Ok),
        BackendMessage::BackendKeyData(BackendKeyData::new(4242, [1, 2, 3, 4]).unwrap()),
        ready(TransactionStatus::Idle),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
    (c, dec)
}

/// An ErrorResponse with this SQLSTATE.
pub(crate) fn error(code: &str) -> BackendMessage<'static> {
    BackendMessage::ErrorResponse(
        ErrorFields::new([
            (FieldCode::Severity, "ERROR"),
            (FieldCode::Code, code),
            (FieldCode::Message, "boom"),
        ])
        .unwrap(),
    )
}

/// ReadyForQuery.
pub(crate) fn ready(s: TransactionStatus) -> BackendMessage<'static> {
    BackendMessage::ReadyForQuery(s)
}

/// ReadyForQuery, idle.
pub(crate) fn idle() -> BackendMessage<'static> {
    ready(TransactionStatus::Idle)
}

/// CommandComplete with `tag`.
pub(crate) fn complete(tag: &str) -> BackendMessage<'static> {
    BackendMessage::CommandComplete(CommandComplete::new(tag).unwrap())
}

/// A RowDescription of `n` text columns.
pub(crate) fn row_description(n: usize) -> BackendMessage<'static> {
    let field = FieldDescription::new(b"c", 25);
    BackendMessage::RowDescription(RowDescription::new(&vec![field; n]).unwrap())
}

/// A DataRow of `n` columns, each `value`.
pub(crate) fn data_row(n: usize, value: &[u8]) -> BackendMessage<'static> {
    BackendMessage::DataRow(DataRow::new(vec![Some(value); n]).unwrap())
}

/// A response or a skipped request in short: (request, message name or "Skipped").
pub(crate) fn response(e: &ClientEvent) -> Option<(RequestId, &'static str)> {
    match e {
        ClientEvent::Response { request, message } => Some((*request, message.name())),
        ClientEvent::Skipped { request } => Some((*request, "Skipped")),
        _ => None,
    }
}

/// The responses among `events`.
pub(crate) fn responses(events: &[ClientEvent]) -> Vec<(RequestId, &'static str)> {
    events.iter().filter_map(response).collect()
}

/// Parse, Bind, Describe (portal) and Execute of `sql` (unnamed statement and portal, no
/// parameters), as libpq's `PQsendQueryParams` sends them before its Sync; returns the ids of
/// the four requests.
pub(crate) fn extended(c: &mut Client, sql: &str) -> [RequestId; 4] {
    let bind = Bind::new("", "", &[], &[], &[]).unwrap();
    [
        c.parse("", sql, &[]).unwrap(),
        c.bind(&bind).unwrap(),
        c.describe(Target::Portal, "").unwrap(),
        c.execute("", 0).unwrap(),
    ]
}
