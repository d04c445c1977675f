//! The server's protocol-2.0 session, as PostgreSQL 7.4 to 13 served 2.0 clients: what the
//! application's answers become on the wire is tabled in the documentation of [`crate::v2`].
//!
//! Each answer is checked against the 2.0 table ([`crate::protocol::v2`]); the extended-query
//! answers and CopyBoth do not exist in 2.0. An error during COPY FROM STDIN before the client's
//! `\.` is followed, as in PostgreSQL 13, by FATAL "terminating connection because protocol
//! synchronization was lost" and the end of the connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::config::ServerAuth;
use super::startup::PasswordCheck;
use super::{Phase, Server, ServerEvent, Step};
use crate::codec::Encode;
use crate::error::{AuthError, Error, UsageError};
use crate::message::backend::BackendKeyData;
use crate::message::common::{Format, ProtocolVersion, TransactionStatus};
use crate::message::fields::ErrorFields;
use crate::message::frontend::{CopyData, FrontendMessage as Message3, Query};
use crate::message::rows::RowDescription as Description3;
use crate::message::startup::{StartupMessage, UnsupportedStartup};
use crate::protocol::v2::{self as table, Answer, CopyStream, Next, Request, Stage};
use crate::v2::{
    error_text, function_call_v3, row_description_v2, AsciiRow, Authentication,
    BackendKeyData as Key2, BackendMessage, BinaryRow, FrontendDecoder, FrontendMessage,
    FunctionResult, NotificationResponse, StartupPacket, Text, COPY_END,
};

/// Where a 2.0 session is.
#[derive(Debug)]
enum State {
    /// The StartupPacket arrived; the application must call `authenticate` or `reject`.
    AwaitAuthDecision,
    /// A password was asked for.
    Password(PasswordCheck),
    /// Serving requests.
    Ready,
}

/// A protocol-2.0 session from its StartupPacket on.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) decoder: FrontendDecoder,
    state: State,
    /// The request being answered and where its answer is.
    current: Option<(Request, Stage)>,
    /// The message handed out, lent from here by `view`.
    lent: Option<FrontendMessage>,
    /// The FunctionCall handed out, in its 3.0 form.
    call: Option<Box<Message3<'static>>>,
    /// The rows of the current result are BinaryRows.
    binary: bool,
    /// During COPY TO STDOUT: whether the data sent so far ends a line.
    at_line_start: bool,
}

/// One of the application's answers, in the words of the 3.0 API.
pub(crate) enum Reply<'a> {
    RowDescription(&'a Description3),
    DataRow(&'a [Option<&'a [u8]>]),
    CommandComplete(&'a str),
    EmptyQueryResponse,
    ErrorResponse(&'a ErrorFields),
    ReadyForQuery(TransactionStatus),
    FunctionCallResponse(Option<&'a [u8]>),
    CopyInResponse(Format),
    CopyOutResponse(Format),
    CopyData(&'a [u8]),
    CopyDone,
    /// An answer 2.0 does not have (the extended query protocol, CopyBoth).
    None,
}

impl Server {
    /// The client's first packet is a 2.0 StartupPacket and 2.0 is allowed: the session goes
    /// on in 2.0, the application told as for a StartupMessage (version 2.0, the packet's user,
    /// database (the user's name when empty, as PostgreSQL) and options as parameters).
    pub(super) fn start_v2(&mut self, u: &UnsupportedStartup) -> Result<(), Error> {
        // As PostgreSQL 13: a short packet is zero-filled, a long one cut.
        let packet = StartupPacket::lenient(u.version(), u.body());
        if packet.user().is_empty() {
            // PostgreSQL's FATAL 28000, in 2.0's form.
            self.v2_fatal_text(&AuthError::MissingUser.to_string());
            self.core.error = Some(Box::new(AuthError::MissingUser.into()));
            return Ok(());
        }
        let user = Bytes::copy_from_slice(packet.user());
        let database = match packet.database() {
            b"" => user.clone(),
            d => Bytes::copy_from_slice(d),
        };
        let mut params = vec![(Bytes::from_static(b"user"), user.clone())];
        params.push((Bytes::from_static(b"database"), database));
        if !packet.options().is_empty() {
            params.push((
                Bytes::from_static(b"options"),
                Bytes::copy_from_slice(packet.options()),
            ));
        }
        let message = StartupMessage::from_parts(ProtocolVersion::V2_0, params);
        // The rest of what the client sent is 2.0 messages.
        let mut decoder = FrontendDecoder::after_startup(self.config.limits);
        decoder.receive(&self.core.decoder.take_buffered());
        self.user = String::from_utf8_lossy(&user).into();
        self.version = ProtocolVersion::V2_0;
        self.phase = Phase::V2(Box::new(Session {
            decoder,
            state: State::AwaitAuthDecision,
            current: None,
            lent: None,
            call: None,
            binary: false,
            at_line_start: true,
        }));
        self.core.events.push_back(ServerEvent::Startup {
            message,
            version: ProtocolVersion::V2_0,
        });
        Ok(())
    }

    fn v2(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::V2(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn v2_state_name(s: &Session) -> &'static str {
        match (&s.state, s.current) {
            (State::AwaitAuthDecision, _) => "deciding how to authenticate (protocol 2.0)",
            (State::Password(_), _) => "waiting for a password (protocol 2.0)",
            (State::Ready, None) => "idle (protocol 2.0)",
            (State::Ready, Some((_, Stage::CopyIn | Stage::CopyInDone))) => {
                "in COPY FROM STDIN (protocol 2.0)"
            }
            (State::Ready, Some((_, Stage::CopyOut | Stage::CopyOutDone))) => {
                "in COPY TO STDOUT (protocol 2.0)"
            }
            (State::Ready, Some((Request::Query, _))) => "answering Query (protocol 2.0)",
            (State::Ready, Some((Request::FunctionCall, _))) => {
                "answering FunctionCall (protocol 2.0)"
            }
        }
    }

    pub(super) fn v2_is_ready(s: &Session) -> bool {
        matches!(s.state, State::Ready)
    }

    /// `authenticate` over 2.0.
    pub(super) fn v2_authenticate(&mut self, auth: ServerAuth) -> Result<(), UsageError> {
        let Some(s) = self.v2() else {
            return Err(self.not_allowed("authenticate"));
        };
        if !matches!(s.state, State::AwaitAuthDecision) {
            return Err(self.not_allowed("authenticate"));
        }
        let (request, check) = match auth {
            ServerAuth::Trust => {
                self.v2_authenticated();
                return Ok(());
            }
            ServerAuth::Password { stored } => (
                Authentication::CleartextPassword,
                PasswordCheck::Cleartext { stored },
            ),
            ServerAuth::Md5 { stored } => {
                let mut salt = [0u8; 4];
                if !(self.config.random)(&mut salt) {
                    self.fail(Error::Entropy { what: "MD5 salt" }, true);
                    return Ok(());
                }
                (
                    Authentication::Md5Password { salt },
                    PasswordCheck::Md5 { stored, salt },
                )
            }
            other => {
                // As PostgreSQL 13: these need messages with a length word, which 2.0 lacks.
                let method = match other {
                    ServerAuth::Scram { .. } | ServerAuth::Sasl { .. } => "SASL",
                    ServerAuth::Gss => "GSSAPI",
                    _ => "SSPI",
                };
                let text =
                    format!("{method} authentication is not supported in protocol version 2");
                self.v2_fatal_text(&text);
                self.core.error = Some(Box::new(Error::Auth(AuthError::Unsupported {
                    method: "an authentication method protocol 2.0 cannot carry",
                })));
                return Ok(());
            }
        };
        if let Some(s) = self.v2() {
            s.decoder.expect_password();
            s.state = State::Password(check);
        }
        BackendMessage::Authentication(request).encode(&mut self.core.out);
        Ok(())
    }

    /// AuthenticationOk, the cancel key, ReadyForQuery.
    fn v2_authenticated(&mut self) {
        let mut key = [0u8; 4];
        let mut pid = [0u8; 4];
        if !(self.config.random)(&mut key) || !(self.config.random)(&mut pid) {
            self.fail(Error::Entropy { what: "cancel key" }, true);
            return;
        }
        let pid = i32::from_be_bytes(pid) & 0x7fff_ffff;
        let out = &mut self.core.out;
        BackendMessage::Authentication(Authentication::Ok).encode(out);
        BackendMessage::BackendKeyData(Key2 {
            process_id: pid,
            secret_key: key,
        })
        .encode(out);
        BackendMessage::ReadyForQuery.encode(out);
        self.backend_key = BackendKeyData::new(pid, key).ok();
        if let Some(s) = self.v2() {
            s.state = State::Ready;
        }
        self.core.events.push_back(ServerEvent::Authenticated);
    }

    /// An ErrorResponse with `text` (a FATAL one), and the end.
    fn v2_fatal_text(&mut self, text: &str) {
        let t = error_text(&ErrorFields::simple("FATAL", "", text));
        BackendMessage::ErrorResponse(t).encode(&mut self.core.out);
        self.phase = Phase::Closed;
    }

    /// `reject` and `fatal` over 2.0: the error in 2.0's form, then the end.
    pub(super) fn v2_fatal(&mut self, fields: &ErrorFields) {
        BackendMessage::ErrorResponse(error_text(fields)).encode(&mut self.core.out);
        self.phase = Phase::Closed;
    }

    /// Decodes and handles at most one message of a 2.0 session.
    pub(super) fn v2_step(&mut self) -> Result<Step, Error> {
        let eof = self.core.eof;
        let Phase::V2(s) = &mut self.phase else {
            return Ok(Step::Wait);
        };
        let waiting = match (&s.state, s.current) {
            (State::AwaitAuthDecision, _) => true,
            (State::Ready, Some((_, stage))) => stage != Stage::CopyIn,
            _ => false,
        };
        if waiting {
            return Ok(Step::Wait);
        }
        let Some(m) = s.decoder.next()? else {
            if !eof {
                return Ok(Step::Wait);
            }
            if s.decoder.buffered_len() > 0 {
                return Err(Error::UnexpectedEof {
                    state: "receiving a message",
                });
            }
            self.phase = Phase::Closed;
            self.core.events.push_back(ServerEvent::Closed);
            return Ok(Step::Again);
        };
        let unexpected = Error::UnexpectedMessage {
            state: Self::v2_state_name(s),
            message: m.name(),
        };
        match (&s.state, m) {
            (State::Password(check), FrontendMessage::Password(p)) => {
                if !check.verify(self.user.as_bytes(), p.password()) {
                    return Err(AuthError::PasswordMismatch.into());
                }
                self.v2_authenticated();
                Ok(Step::Again)
            }
            (State::Ready, FrontendMessage::Terminate) => {
                self.phase = Phase::Closed;
                self.core.events.push_back(ServerEvent::Terminate);
                Ok(Step::Again)
            }
            (State::Ready, m @ FrontendMessage::Query(_)) => {
                s.current = Some((Request::Query, Stage::Start));
                s.lent = Some(m);
                Ok(Step::DeliverV2)
            }
            (State::Ready, FrontendMessage::FunctionCall(f)) => {
                let call = function_call_v3(&f).map_err(|reason| Error::CannotSend {
                    message: "FunctionCall",
                    reason,
                })?;
                s.current = Some((Request::FunctionCall, Stage::Start));
                s.call = Some(Box::new(Message3::FunctionCall(call)));
                s.lent = None;
                Ok(Step::DeliverV2)
            }
            (
                State::Ready,
                m @ (FrontendMessage::CopyDataRow(_) | FrontendMessage::CopyDataEnd),
            ) => {
                let line = if m == FrontendMessage::CopyDataEnd {
                    CopyStream::End
                } else {
                    CopyStream::Row
                };
                if let Some((_, stage)) = &mut s.current {
                    if let Some(next) = table::next_frontend(*stage, line) {
                        *stage = next;
                    }
                }
                s.lent = Some(m);
                Ok(Step::DeliverV2)
            }
            _ => Err(unexpected),
        }
    }

    /// The message `v2_step` handed out, as its 3.0 counterpart.
    pub(super) fn v2_view(&mut self) -> Message3<'_> {
        let Phase::V2(s) = &mut self.phase else {
            return Message3::Sync;
        };
        if let Some(call) = s.call.take() {
            return *call;
        }
        match &s.lent {
            Some(FrontendMessage::Query(q)) => Message3::Query(Query::from_checked(q.as_bytes())),
            Some(FrontendMessage::CopyDataRow(l)) => {
                Message3::CopyData(CopyData::from_checked(l.as_bytes()))
            }
            Some(FrontendMessage::CopyDataEnd) => Message3::CopyDone,
            // INVARIANT: `v2_step` lends only the messages above.
            _ => Message3::Sync,
        }
    }

    /// One of the application's answers over 2.0: checked against the 2.0 table, written in
    /// 2.0's form.
    pub(super) fn v2_reply(
        &mut self,
        command: &'static str,
        reply: Reply<'_>,
    ) -> Result<(), UsageError> {
        if self.core.error.is_some() {
            return Err(UsageError::Closed);
        }
        let not_allowed = self.not_allowed(command);
        let Phase::V2(s) = &mut self.phase else {
            return Err(not_allowed);
        };
        if !matches!(s.state, State::Ready) {
            return Err(not_allowed);
        }
        let Some((request, stage)) = s.current else {
            return Err(UsageError::NotAllowed {
                command,
                state: "idle (no request to answer)",
            });
        };
        // The 2.0 answers this reply is made of, in order, each checked from the stage the
        // one before it leads to.
        let answers: &[Answer] = match &reply {
            Reply::RowDescription(_) => &[Answer::CursorResponse, Answer::RowDescription],
            Reply::DataRow(_) if s.binary => &[Answer::BinaryRow],
            Reply::DataRow(_) => &[Answer::AsciiRow],
            Reply::CommandComplete(_) => &[Answer::CompletedResponse],
            Reply::EmptyQueryResponse => &[Answer::EmptyQueryResponse],
            Reply::ErrorResponse(_) => &[Answer::ErrorResponse],
            Reply::ReadyForQuery(_) => &[Answer::ReadyForQuery],
            Reply::FunctionCallResponse(Some(_)) => &[Answer::FunctionResultResponse],
            Reply::FunctionCallResponse(None) => &[Answer::FunctionVoidResponse],
            Reply::CopyInResponse(Format::Text) => &[Answer::CopyInResponse],
            Reply::CopyOutResponse(Format::Text) => &[Answer::CopyOutResponse],
            Reply::CopyData(_) => &[Answer::CopyDataRow],
            Reply::CopyDone => &[Answer::CopyDataEnd],
            Reply::CopyInResponse(_) | Reply::CopyOutResponse(_) | Reply::None => {
                return Err(UsageError::NotAllowed {
                    command,
                    state: "using protocol 2.0, which has no such message",
                })
            }
        };
        let mut next_stage = Some(stage);
        for a in answers {
            next_stage = match (
                next_stage,
                next_stage.and_then(|st| table::next(request, st, *a)),
            ) {
                (Some(st), Some(Next::Stay)) => Some(st),
                (_, Some(Next::Go(t))) => Some(t),
                (_, Some(Next::Done)) => None,
                _ => return Err(not_allowed),
            };
        }
        // Checked: now write.
        let reply_kind = if matches!(reply, Reply::ErrorResponse(_)) {
            ReplyKind::Error
        } else {
            ReplyKind::Other
        };
        let out = &mut self.core.out;
        match reply {
            Reply::RowDescription(d) => {
                let d2 = row_description_v2(d)?;
                BackendMessage::CursorResponse(Text::from_checked(Bytes::from_static(b"blank")))
                    .encode(out);
                BackendMessage::RowDescription(d2).encode(out);
                s.binary = !d.is_empty() && d.fields().all(|f| f.format == Format::Binary);
            }
            Reply::DataRow(values) if s.binary => {
                BackendMessage::BinaryRow(BinaryRow::new(values)?).encode(out)
            }
            Reply::DataRow(values) => BackendMessage::AsciiRow(AsciiRow::new(values)?).encode(out),
            Reply::CommandComplete(tag) => {
                BackendMessage::CompletedResponse(Text::new(tag)?).encode(out)
            }
            Reply::EmptyQueryResponse => BackendMessage::EmptyQueryResponse.encode(out),
            Reply::ErrorResponse(f) => BackendMessage::ErrorResponse(error_text(f)).encode(out),
            Reply::ReadyForQuery(status) => {
                BackendMessage::ReadyForQuery.encode(out);
                self.status = status;
            }
            Reply::FunctionCallResponse(Some(v)) => {
                BackendMessage::FunctionResultResponse(FunctionResult::new(v)?).encode(out)
            }
            Reply::FunctionCallResponse(None) => BackendMessage::FunctionVoidResponse.encode(out),
            Reply::CopyInResponse(_) => {
                BackendMessage::CopyInResponse.encode(out);
                s.decoder.expect_copy_in();
            }
            Reply::CopyOutResponse(_) => {
                BackendMessage::CopyOutResponse.encode(out);
                s.at_line_start = true;
            }
            Reply::CopyData(data) => {
                if let Some(&last) = data.last() {
                    out.put_slice(data);
                    s.at_line_start = last == b'\n';
                }
            }
            Reply::CopyDone => {
                if !s.at_line_start {
                    out.put_u8(b'\n');
                }
                out.put_slice(COPY_END);
                s.at_line_start = true;
            }
            Reply::None => {}
        }
        s.current = next_stage.map(|st| (request, st));
        if matches!(reply_kind, ReplyKind::Error) && stage == Stage::CopyIn {
            // As PostgreSQL 13: the rest of the client's COPY data cannot be told from what
            // follows it, so the session ends.
            self.v2_fatal_text("terminating connection because protocol synchronization was lost");
        }
        Ok(())
    }

    /// `notice` over 2.0.
    pub(super) fn v2_notice(&mut self, fields: &ErrorFields) {
        BackendMessage::NoticeResponse(error_text(fields)).encode(&mut self.core.out);
    }

    /// `notification` over 2.0: the payload has no place.
    pub(super) fn v2_notification(
        &mut self,
        process_id: i32,
        channel: &str,
    ) -> Result<(), UsageError> {
        let n = NotificationResponse {
            process_id,
            channel: Text::new(channel)?,
        };
        BackendMessage::NotificationResponse(n).encode(&mut self.core.out);
        Ok(())
    }

    /// Whether a 2.0 session is past its start-up (for the answers allowed at any time).
    pub(super) fn v2_serving(&self) -> Option<bool> {
        match &self.phase {
            Phase::V2(s) => Some(matches!(s.state, State::Ready)),
            _ => None,
        }
    }

    /// A 3.x start-up to a server that speaks only 2.0: the old-style error, then the end (as
    /// a server before PostgreSQL 7.4 answered, which makes libpq fall back to 2.0).
    pub(super) fn v2_only(&mut self, version: ProtocolVersion) -> Result<(), Error> {
        let text = format!(
            "FATAL:  unsupported frontend protocol {}.{}: server supports {}.0 to {}.{}\n",
            version.major,
            version.minor,
            self.config.min_protocol_version.major,
            self.config.max_protocol_version.major,
            self.config.max_protocol_version.minor,
        );
        self.core
            .out
            .extend_from_slice(&super::startup::legacy_error(&text));
        self.phase = Phase::Closed;
        self.core.error = Some(Box::new(Error::UnsupportedProtocol { version }));
        Ok(())
    }

    /// The bytes a 2.0 session buffered and has not decoded.
    pub(super) fn v2_buffered(&self) -> Option<usize> {
        match &self.phase {
            Phase::V2(s) => Some(s.decoder.buffered_len()),
            _ => None,
        }
    }

    /// Lets a 2.0 session receive the bytes; `false` if there is none.
    pub(super) fn v2_receive(&mut self, data: &[u8]) -> bool {
        let failed = self.core.error.is_some();
        match self.v2() {
            Some(s) => {
                if !failed {
                    s.decoder.receive(data);
                }
                true
            }
            None => false,
        }
    }
}

/// Whether a reply was an error (what is left of it once written).
enum ReplyKind {
    Error,
    Other,
}

/// A server error written in 2.0's format.
pub(super) fn fatal_v2(out: &mut BytesMut, fields: &ErrorFields) {
    BackendMessage::ErrorResponse(error_text(fields)).encode(out);
}
