//! The receiving side of the `Client`: decoding the server's bytes one message at a time and
//! applying each to the connection's phase (start-up, the query phase with its pipeline, COPY,
//! the fall-back to protocol 2.0). Split from `mod.rs` for size; the state lives there.

use super::*;

impl Client {
    /// Decodes and handles at most one message.
    pub(super) fn step(&mut self) -> Result<Step, Error> {
        if let Phase::V2(s) = &mut self.phase {
            let more = s.step(self.core.eof, &mut self.core.out, &mut self.core.events)?;
            return Ok(if more { Step::Again } else { Step::Wait });
        }
        if let Phase::Startup(s) = &self.phase {
            if s.blocks_input() {
                return if self.core.eof {
                    Err(Error::UnexpectedEof {
                        state: s.state_name(),
                    })
                } else {
                    Ok(Step::Wait)
                };
            }
            if let Some(r) = s.check_legacy_error(&self.core.decoder, self.core.eof) {
                return match r {
                    Err(Error::LegacyServer { message })
                        if s.config().min_protocol_version == ProtocolVersion::V2_0 =>
                    {
                        self.fall_back_to_v2(message)
                    }
                    r => r.map(|more| if more { Step::Again } else { Step::Wait }),
                };
            }
        }
        let Some(lent) = self.core.decoder.advance()? else {
            return self
                .at_end_of_input()
                .map(|more| if more { Step::Again } else { Step::Wait });
        };
        match &mut self.phase {
            Phase::Startup(_) => {
                // Rows and COPY data are refused during start-up anyway: owning them costs
                // nothing that matters.
                let msg = self.core.decoder.view(lent).into_owned();
                let Phase::Startup(s) = &mut self.phase else {
                    return Ok(Step::Again);
                };
                let done = s.handle(
                    msg,
                    &mut self.core.decoder,
                    &mut self.core.out,
                    &mut self.core.events,
                )?;
                if let Some(done) = done {
                    self.version = done.version;
                    self.auth_method = Some(done.method);
                    self.backend_key = done.backend_key;
                    self.params = done.params;
                    self.status = Some(done.status);
                    self.tls = done.tls;
                    self.phase = Phase::Ready(Session::default());
                }
                Ok(Step::Again)
            }
            Phase::Ready(_) | Phase::Terminating(_) => Ok(match self.handle_ready(lent)? {
                Some((request, lent)) => Step::Deliver(request, lent),
                None => Step::Again,
            }),
            Phase::V2(_) | Phase::Closed => Ok(Step::Again),
        }
    }

    /// The server answered the 3.x start-up in 2.0's way: wait for a new connection, then start
    /// a 2.0 session on it (libpq 13's fallback).
    #[cold]
    pub(super) fn fall_back_to_v2(&mut self, message: String) -> Result<Step, Error> {
        let Phase::Startup(s) = &self.phase else {
            return Ok(Step::Again);
        };
        let session = v2::Session::fallback(s.config().clone()).map_err(|e| Error::CannotSend {
            message: "StartupPacket",
            reason: match e {
                UsageError::Encode(e) => e,
                _ => EncodeError::OutOfRange {
                    field: "StartupPacket",
                    reason: "the configuration cannot be sent over protocol 2.0",
                },
            },
        })?;
        // Nothing more is read from this connection.
        let _ = self.core.decoder.take_buffered();
        self.phase = Phase::V2(Box::new(session));
        self.version = ProtocolVersion::V2_0;
        self.core
            .events
            .push_back(ClientEvent::FallbackToV2 { message });
        Ok(Step::Again)
    }

    pub(super) fn at_end_of_input(&mut self) -> Result<bool, Error> {
        if !self.core.eof {
            return Ok(false);
        }
        if self.core.decoder.buffered_len() > 0 {
            return Err(Error::UnexpectedEof {
                state: "receiving a message",
            });
        }
        match self.phase {
            Phase::Terminating(_) => {
                self.phase = Phase::Closed;
                self.core.events.push_back(ClientEvent::Closed);
                Ok(true)
            }
            Phase::Closed => Ok(false),
            _ => Err(Error::UnexpectedEof {
                state: self.state_name(),
            }),
        }
    }

    /// Handles a message after start-up; returns the response to hand out, if any.
    pub(super) fn handle_ready(
        &mut self,
        lent: BackendLent,
    ) -> Result<Option<(RequestId, BackendLent)>, Error> {
        use BackendMessage as B;
        // Asynchronous messages may arrive at any time after start-up.
        let lent = match lent {
            BackendLent::Message(B::NoticeResponse(f)) => {
                self.core.events.push_back(ClientEvent::Notice(f));
                return Ok(None);
            }
            BackendLent::Message(B::NotificationResponse(n)) => {
                self.core.events.push_back(ClientEvent::Notification(n));
                return Ok(None);
            }
            BackendLent::Message(B::ParameterStatus(p)) => {
                self.params.set(&p);
                self.core.events.push_back(ClientEvent::ParameterStatus(p));
                return Ok(None);
            }
            other => other,
        };
        let state = self.state_name();
        let unexpected = |lent: &BackendLent| Error::UnexpectedMessage {
            state,
            message: lent.name(),
        };
        let Some(session) = self.phase.session_mut() else {
            return Err(unexpected(&lent));
        };
        let Some(front) = session.pipeline.front() else {
            return match lent {
                BackendLent::Message(B::ErrorResponse(f)) => {
                    self.core.events.push_back(ClientEvent::UnsolicitedError(f));
                    Ok(None)
                }
                other => Err(unexpected(&other)),
            };
        };
        let next = Answer::of_tag(lent.tag())
            .and_then(|answer| protocol::next(front.kind, session.stage, answer));
        let lent = match lent {
            // A FATAL (or PANIC) where the request allows no error, for example right after a
            // Query's ERROR: the server is ending the session (PostgreSQL 18 sends ERROR then
            // FATAL 08P01 for a message pipelined behind COPY FROM STDIN; an administrator's
            // `pg_terminate_backend` may come at any point). libpq hands it out as one more
            // error; it is handed out as is, and the end of the connection follows.
            BackendLent::Message(B::ErrorResponse(f)) if next.is_none() && is_fatal(&f) => {
                self.core.events.push_back(ClientEvent::UnsolicitedError(f));
                return Ok(None);
            }
            other => other,
        };
        if next.is_some() {
            match &lent {
                BackendLent::DataRow { count, .. } => session
                    .columns
                    .check_row(front.kind, front.id.0, front.described, *count)
                    .map_err(|m| Error::UnexpectedFieldCount {
                        expected: m.expected,
                        received: m.received,
                    })?,
                BackendLent::Message(BackendMessage::RowDescription(d)) => {
                    // INVARIANT: a decoded RowDescription has at most i16::MAX fields.
                    let n = u16::try_from(d.len()).unwrap_or(u16::MAX);
                    session.columns.answered(front.kind, front.id.0, Some(n))
                }
                _ => session.columns.answered(front.kind, front.id.0, None),
            }
            if session.stage == Stage::CopyIn {
                // The server ended COPY FROM STDIN (with an error) while the client was still
                // sending: the client's data stream is over too.
                session.pipeline.resend_ignored_syncs(&mut self.core.out);
            }
        }
        match next {
            Some(Next::Stay) => {}
            Some(Next::Go(stage)) => session.stage = stage,
            Some(Next::Done) => {
                session.pipeline.pop();
                session.stage = Stage::Start;
                if let BackendLent::Message(B::ReadyForQuery(s)) = &lent {
                    self.status = Some(*s);
                    session.pipeline.shrink();
                }
            }
            Some(Next::Failed) => {
                session.pipeline.pop();
                session.stage = Stage::Start;
                if front.kind.is_extended() {
                    session.discard(&mut self.core.events);
                }
            }
            Some(Next::CopyEnded | Next::CopyFailed) | None => return Err(unexpected(&lent)),
        }
        Ok(Some((front.id, lent)))
    }
}
