//! The application's answers to frontend messages in the query phase: one method per backend
//! message, each checked against the request being answered.

use bytes::Bytes;

use super::v2::Reply;
use super::{Phase, Server};
use crate::codec::Encode;
use crate::error::UsageError;
use crate::message::backend::{tag as btag, BackendMessage, CommandComplete, CopyResponse};
use crate::message::common::TransactionStatus;
use crate::message::fields::ErrorFields;
use crate::message::rows::{DataRow, ParameterDescription, RowDescription};
use crate::protocol::{self, Answer, Next, Request};

impl Server {
    // ---- (C) answers: queries ----

    /// What sending `answer` now does to the request being answered, per [`crate::protocol`];
    /// refused if the protocol does not allow it. Nothing changes until [`Server::apply`].
    #[inline]
    pub(super) fn check(&self, command: &'static str, answer: Answer) -> Result<Next, UsageError> {
        match self.allowed(answer) {
            Some(next) => Ok(next),
            None => Err(self.refusal(command)),
        }
    }

    /// What sending `answer` now does, or `None` if it is not allowed: the check of every
    /// answer, small enough to stay in registers.
    #[inline]
    fn allowed(&self, answer: Answer) -> Option<Next> {
        let Phase::Ready(q) = &self.phase else {
            return None;
        };
        if self.core.error.is_some() || q.forwarding != 0 {
            return None;
        }
        let c = q.current?;
        protocol::next(c.request, c.stage, answer)
    }

    /// Why an answer [`Server::allowed`] refused is refused.
    #[cold]
    #[inline(never)]
    fn refusal(&self, command: &'static str) -> UsageError {
        match &self.phase {
            Phase::Ready(q) if self.core.error.is_none() && q.current.is_none() => {
                UsageError::NotAllowed {
                    command,
                    state: "idle (no request to answer)",
                }
            }
            _ => self.not_allowed(command),
        }
    }

    /// Moves the request being answered on, after an answer other than a DataRow was written
    /// (which ends a Query's result set, or answers a Describe with no rows: see
    /// `src/columns.rs`).
    #[inline]
    pub(super) fn apply(&mut self, next: Next) {
        if let Phase::Ready(q) = &mut self.phase {
            if let Some(c) = q.current {
                q.columns.answered(c.request, c.id, None);
            }
        }
        self.advance(next);
    }

    /// Moves the request being answered on, after its answer was written.
    #[inline]
    fn advance(&mut self, next: Next) {
        let Phase::Ready(q) = &mut self.phase else {
            return;
        };
        let Some(c) = &mut q.current else {
            return;
        };
        match next {
            Next::Stay => {}
            Next::Go(stage) => {
                c.stage = stage;
                if stage == protocol::Stage::CopyIn && !q.behind.is_empty() {
                    // The Syncs a pipelining client sent before it learnt of the COPY reach
                    // the backend during COPY FROM STDIN, which ignores them. (During CopyBoth
                    // they would end the session: see `copy_message`.)
                    let before = q.behind.len();
                    q.behind.retain(|r| r.request != Request::Sync);
                    self.discarded += (before - q.behind.len()) as u64;
                } else if stage == protocol::Stage::CopyBoth {
                    // Whatever a pipelining client sent behind it reaches a walsender in
                    // CopyBoth, which ends the session with FATAL 08P01 on anything but
                    // CopyData, CopyDone and Terminate (as `copy_message` does for what
                    // arrives later).
                    if let Some(r) = q.behind.front() {
                        let e = crate::error::Error::UnexpectedMessage {
                            state: "in CopyBoth",
                            message: r.request.name(),
                        };
                        self.fail(e, true);
                    }
                }
            }
            Next::Done | Next::CopyEnded => q.current = q.behind.pop_front(),
            Next::Failed | Next::CopyFailed => {
                if c.request.is_extended() {
                    // The backend skips every request up to the next Sync: those handed out
                    // already get no answer; if none of them is a Sync, the machine discards
                    // what comes until one arrives.
                    while q.behind.front().is_some_and(|r| r.request != Request::Sync) {
                        q.behind.pop_front();
                    }
                    if q.behind.is_empty() {
                        q.ignore_till_sync = true;
                    }
                }
                q.current = q.behind.pop_front();
            }
        }
    }

    /// Checks `answer`, has `write` append it, and moves on: [`Server::check`], the write and
    /// [`Server::apply`] in one, the phase and the request looked up once. The common case (the
    /// answer ends its request and nothing waits behind it) takes no other step.
    #[inline(always)]
    fn answer_with(
        &mut self,
        command: &'static str,
        answer: Answer,
        write: impl FnOnce(&mut bytes::BytesMut) -> Result<(), UsageError>,
    ) -> Result<(), UsageError> {
        let Phase::Ready(q) = &mut self.phase else {
            return Err(self.refusal(command));
        };
        let next = match q.current {
            Some(c) if self.core.error.is_none() && q.forwarding == 0 => {
                protocol::next(c.request, c.stage, answer).map(|n| (c, n))
            }
            _ => None,
        };
        let Some((c, next)) = next else {
            return Err(self.refusal(command));
        };
        write(&mut self.core.out)?;
        q.columns.answered(c.request, c.id, None);
        if next == Next::Done && q.behind.is_empty() {
            q.current = None;
        } else {
            self.advance(next);
        }
        Ok(())
    }

    /// Checks, writes a message without fields (its type byte `tag` and a length of 4), and
    /// moves on.
    #[inline(always)]
    fn answer_empty(
        &mut self,
        command: &'static str,
        answer: Answer,
        tag: u8,
    ) -> Result<(), UsageError> {
        self.answer_with(command, answer, |out| {
            out.extend_from_slice(&[tag, 0, 0, 0, 4]);
            Ok(())
        })
    }

    /// ParseComplete: answers Parse.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn parse_complete(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send ParseComplete", Reply::None);
        }
        self.answer_empty(
            "send ParseComplete",
            Answer::ParseComplete,
            btag::PARSE_COMPLETE,
        )
    }

    /// BindComplete: answers Bind.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn bind_complete(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send BindComplete", Reply::None);
        }
        self.answer_empty(
            "send BindComplete",
            Answer::BindComplete,
            btag::BIND_COMPLETE,
        )
    }

    /// CloseComplete: answers Close.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn close_complete(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send CloseComplete", Reply::None);
        }
        self.answer_empty(
            "send CloseComplete",
            Answer::CloseComplete,
            btag::CLOSE_COMPLETE,
        )
    }

    /// ParameterDescription: first half of the answer to Describe of a statement.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; with
    /// [`UsageError::Encode`] when there are more than 65,535 types.
    pub fn parameter_description(&mut self, types: &[u32]) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send ParameterDescription", Reply::None);
        }
        self.answer_with(
            "send ParameterDescription",
            Answer::ParameterDescription,
            |out| {
                ParameterDescription::new(types)?.encode(out);
                Ok(())
            },
        )
    }

    /// RowDescription: answers Describe (after ParameterDescription for a statement), or starts
    /// a result set of a simple Query.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn row_description(&mut self, description: &RowDescription) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send RowDescription", Reply::RowDescription(description));
        }
        let next = self.check("send RowDescription", Answer::RowDescription)?;
        description.encode(&mut self.core.out);
        if let Phase::Ready(q) = &mut self.phase {
            if let Some(c) = q.current {
                // INVARIANT: a RowDescription has at most i16::MAX fields.
                let n = u16::try_from(description.len()).unwrap_or(u16::MAX);
                q.columns.answered(c.request, c.id, Some(n));
            }
        }
        self.advance(next);
        Ok(())
    }

    /// NoData: answers Describe of something that returns no rows.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn no_data(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send NoData", Reply::None);
        }
        self.answer_empty("send NoData", Answer::NoData, btag::NO_DATA)
    }

    /// DataRow: one row of a Query's or an Execute's result. `None` is NULL.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; with
    /// [`UsageError::FieldCount`] when the row's column count is not the one announced (in a
    /// Query, by this result set's RowDescription; for an Execute of the portal described just
    /// before it, by that Describe's answer; otherwise by the result's first row), which a
    /// client would refuse; with [`UsageError::Encode`] when there are more than 65,535 values
    /// or the row is longer than a message's 32-bit length word allows. Nothing is sent then.
    #[inline]
    pub fn data_row(&mut self, values: &[Option<&[u8]>]) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send DataRow", Reply::DataRow(values));
        }
        let next = self.check("send DataRow", Answer::DataRow)?;
        if let Phase::Ready(q) = &mut self.phase {
            // More than 65,535 values: `encode_values` refuses the row below.
            if let (Some(c), Ok(count)) = (q.current, u16::try_from(values.len())) {
                q.columns
                    .check_row(c.request, c.id, c.described, count)
                    .map_err(|m| UsageError::FieldCount {
                        expected: m.expected,
                        received: m.received,
                    })?;
            }
        }
        DataRow::encode_values(&mut self.core.out, values)?;
        self.advance(next);
        Ok(())
    }

    /// CommandComplete: ends a statement of a Query, answers Execute, or ends a COPY.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; with
    /// [`UsageError::Encode`] when `tag` contains NUL or is too long for one message.
    pub fn command_complete(&mut self, tag: &str) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send CommandComplete", Reply::CommandComplete(tag));
        }
        self.answer_with("send CommandComplete", Answer::CommandComplete, |out| {
            Ok(CommandComplete::encode_str(out, tag)?)
        })
    }

    /// EmptyQueryResponse: the query string (or portal) was empty.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn empty_query_response(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send EmptyQueryResponse", Reply::EmptyQueryResponse);
        }
        self.answer_empty(
            "send EmptyQueryResponse",
            Answer::EmptyQueryResponse,
            btag::EMPTY_QUERY_RESPONSE,
        )
    }

    /// PortalSuspended: Execute's row limit was reached.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn portal_suspended(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send PortalSuspended", Reply::None);
        }
        self.answer_empty(
            "send PortalSuspended",
            Answer::PortalSuspended,
            btag::PORTAL_SUSPENDED,
        )
    }

    /// ErrorResponse: the current request failed. After an extended-query message, the machine
    /// discards what follows until Sync. With no request in flight only a FATAL (or PANIC) is
    /// sent, and it ends the connection as [`Server::fatal`] does: PostgreSQL never sends a
    /// plain ERROR then, and exits after a FATAL. (A client that has pipelined requests the
    /// server has not read yet takes the FATAL as the first one's answer, as libpq does, so no
    /// answer may follow it.)
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when [`crate::protocol`] does
    /// not allow an error in the request's current stage, or when no request is in flight and
    /// the severity is not FATAL or PANIC; and with [`UsageError::Closed`] once the connection
    /// has failed or been closed.
    pub fn error_response(&mut self, fields: &ErrorFields) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send ErrorResponse", Reply::ErrorResponse(fields));
        }
        if !matches!(self.phase, Phase::Ready(_)) || self.core.error.is_some() {
            return Err(self.not_allowed("send ErrorResponse"));
        }
        let in_flight = matches!(
            self.phase,
            Phase::Ready(super::Serving {
                current: Some(_),
                ..
            })
        );
        let next = if in_flight {
            Some(self.check("send ErrorResponse", Answer::ErrorResponse)?)
        } else {
            // PostgreSQL sends an ERROR only in answer to a request; a client would pin one
            // sent while idle on its next request. A FATAL (before closing) is fine.
            let severity = fields.severity_nonlocalized().or(fields.severity());
            if !matches!(severity, Some(b"FATAL" | b"PANIC")) {
                return Err(UsageError::NotAllowed {
                    command: "send ErrorResponse",
                    state: "idle (no request to answer: only a FATAL may be sent)",
                });
            }
            None
        };
        BackendMessage::ErrorResponse(fields.clone()).encode(&mut self.core.out);
        match next {
            Some(next) => self.apply(next),
            None => self.phase = Phase::Closed,
        }
        Ok(())
    }

    /// ReadyForQuery: answers Query, Sync or FunctionCall.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn ready_for_query(&mut self, status: TransactionStatus) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send ReadyForQuery", Reply::ReadyForQuery(status));
        }
        self.answer_with("send ReadyForQuery", Answer::ReadyForQuery, |out| {
            out.extend_from_slice(&[btag::READY_FOR_QUERY, 0, 0, 0, 5, status.byte()]);
            Ok(())
        })?;
        self.status = status;
        Ok(())
    }

    /// FunctionCallResponse: the result of a FunctionCall (`None` for NULL); ReadyForQuery
    /// follows.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; with
    /// [`UsageError::Encode`] when `value` is longer than an Int32 length allows.
    pub fn function_call_response(&mut self, value: Option<&[u8]>) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply(
                "send FunctionCallResponse",
                Reply::FunctionCallResponse(value),
            );
        }
        self.answer_with(
            "send FunctionCallResponse",
            Answer::FunctionCallResponse,
            |out| {
                if let Some(v) = value {
                    crate::codec::check_value_len("result", v.len())?;
                }
                BackendMessage::FunctionCallResponse(value.map(Bytes::copy_from_slice)).encode(out);
                Ok(())
            },
        )
    }

    /// CopyInResponse: starts COPY FROM STDIN; CopyData, CopyDone or CopyFail events follow.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn copy_in_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("start COPY", Reply::CopyInResponse(response.format()));
        }
        self.answer_with("start COPY", Answer::CopyInResponse, |out| {
            BackendMessage::CopyInResponse(response.clone()).encode(out);
            Ok(())
        })
    }

    /// CopyOutResponse: starts COPY TO STDOUT; send [`Server::copy_data`], then
    /// [`Server::copy_done`] and [`Server::command_complete`].
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn copy_out_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("start COPY", Reply::CopyOutResponse(response.format()));
        }
        self.answer_with("start COPY", Answer::CopyOutResponse, |out| {
            BackendMessage::CopyOutResponse(response.clone()).encode(out);
            Ok(())
        })
    }

    /// CopyBothResponse: starts a two-way copy (streaming replication). If requests were handed
    /// out behind the one it answers ([`ServerConfig::pipeline_depth`](crate::ServerConfig)
    /// above 1), they would reach a backend in CopyBoth: the session ends after this answer with
    /// FATAL 08P01, as PostgreSQL's walsender ends it, and [`Server::poll_event`] reports
    /// [`Error::UnexpectedMessage`](crate::Error::UnexpectedMessage).
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn copy_both_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("start COPY", Reply::None);
        }
        self.answer_with("start COPY", Answer::CopyBothResponse, |out| {
            BackendMessage::CopyBothResponse(response.clone()).encode(out);
            Ok(())
        })
    }

    /// CopyData from the server, during COPY TO STDOUT or CopyBoth.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; with
    /// [`UsageError::Encode`] when `data` is too long for one message.
    pub fn copy_data(&mut self, data: &[u8]) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send CopyData", Reply::CopyData(data));
        }
        self.answer_with("send CopyData", Answer::CopyData, |out| {
            crate::codec::check_body("CopyData", data.len())?;
            crate::codec::tagged(out, b'd', data.len(), |o| bytes::BufMut::put_slice(o, data));
            Ok(())
        })
    }

    /// One replication message in a CopyData from the server (XLogData, a keepalive, a
    /// BASE_BACKUP message; see [`crate::replication`]), during COPY TO STDOUT or CopyBoth:
    /// what [`Server::copy_data`] sends, written without building the payload first.
    ///
    /// Fails as [`Server::copy_data`] does, except that the message always fits (its
    /// constructor checked).
    pub fn copy_payload(
        &mut self,
        message: &impl crate::replication::Payload,
    ) -> Result<(), UsageError> {
        self.answer_with("send CopyData", Answer::CopyData, |out| {
            message.encode_copy_data(out);
            Ok(())
        })
    }

    /// CopyDone from the server.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, when no request is being
    /// answered, or when [`crate::protocol`] does not allow this answer now, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn copy_done(&mut self) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_reply("send CopyDone", Reply::CopyDone);
        }
        self.answer_empty("send CopyDone", Answer::CopyDone, btag::COPY_DONE)
    }
}
