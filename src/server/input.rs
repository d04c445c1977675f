//! The receiving side of the `Server`: cutting the client's bytes into messages and applying
//! each to the connection's phase (start-up, the query phase, COPY), with the errors a message
//! out of place or malformed gets. Split from `mod.rs` for size; the state lives there.

use super::*;

impl Server {
    pub(super) fn at_end_of_input(&mut self) -> Result<bool, Error> {
        if !self.core.eof || matches!(self.phase, Phase::Closed) {
            return Ok(false);
        }
        if self.core.decoder.buffered_len() > 0 {
            return Err(Error::UnexpectedEof {
                state: "receiving a message",
            });
        }
        self.phase = Phase::Closed;
        self.core.events.push_back(ServerEvent::Closed);
        Ok(true)
    }

    pub(super) fn step(&mut self) -> Result<Step, Error> {
        let more = |more: bool| if more { Step::Again } else { Step::Wait };
        match &mut self.phase {
            Phase::Closed => Ok(Step::Wait),
            Phase::V2(_) => self.v2_step(),
            Phase::Startup(s) => {
                if s.state.blocks_input() {
                    return Ok(Step::Wait);
                }
                if s.first_packet && self.core.decoder.peek().first() == Some(&0x16) {
                    s.first_packet = false;
                    s.state = State::AwaitDirectTls;
                    self.core.events.push_back(ServerEvent::DirectTls);
                    return Ok(Step::Again);
                }
                let Some(m) = self.core.decoder.next()? else {
                    return self.at_end_of_input().map(more);
                };
                self.startup_message(m)?;
                Ok(Step::Again)
            }
            Phase::Ready(q) => {
                let copy_in = q.current.is_some_and(|c| c.stage.frontend_sending());
                if q.current.is_some()
                    && !copy_in
                    && q.behind.len() + 1 >= self.config.pipeline_depth
                {
                    // Waiting for the application to answer.
                    return Ok(Step::Wait);
                }
                if q.ignore_till_sync && !copy_in {
                    // As a backend after an error: every message up to Sync is skipped by its
                    // header, its body never parsed.
                    if self
                        .core
                        .decoder
                        .skip_unless(&[ftag::SYNC, ftag::TERMINATE])?
                        .is_some()
                    {
                        self.discarded += 1;
                        return Ok(Step::Again);
                    }
                }
                let tag = self.core.decoder.peek().first().copied();
                let lent = match self.core.decoder.advance() {
                    Ok(Some(lent)) => lent,
                    Ok(None) => return self.at_end_of_input().map(more),
                    Err(e) => return self.malformed(tag, copy_in, e),
                };
                if copy_in {
                    self.copy_message(lent)
                } else {
                    self.query_message(lent)
                }
            }
        }
    }

    /// A message that did not decode. As PostgreSQL 18: an extended-query message whose body
    /// is malformed gets ERROR 08P01 and starts the discard until Sync (the decoder skipped its
    /// frame whole); anything else (a bad header, or another message) ends the connection.
    pub(super) fn malformed(
        &mut self,
        tag: Option<u8>,
        copy_in: bool,
        e: DecodeError,
    ) -> Result<Step, Error> {
        let extended = matches!(
            tag,
            Some(
                ftag::PARSE
                    | ftag::BIND
                    | ftag::DESCRIBE
                    | ftag::CLOSE
                    | ftag::EXECUTE
                    | ftag::FLUSH
            )
        );
        let ends_query = matches!(tag, Some(ftag::QUERY | ftag::SYNC));
        let Phase::Ready(q) = &mut self.phase else {
            return Err(e.into());
        };
        // Answered here only when nothing else is being answered (the error must not cut into
        // another request's answers), as a backend does between messages.
        if !(extended || ends_query)
            || copy_in
            || q.current.is_some()
            || self.core.decoder.is_failed()
        {
            return Err(e.into());
        }
        BackendMessage::ErrorResponse(ErrorFields::simple("ERROR", "08P01", &e.to_string()))
            .encode(&mut self.core.out);
        if ends_query {
            // As PostgreSQL: the error ends the Query (or the Sync), a transaction block is
            // now failed, and ReadyForQuery follows.
            if self.status != TransactionStatus::Idle {
                self.status = TransactionStatus::Failed;
            }
            BackendMessage::ReadyForQuery(self.status).encode(&mut self.core.out);
            q.ignore_till_sync = false;
        } else {
            q.ignore_till_sync = true;
        }
        self.discarded += 1;
        self.core.events.push_back(ServerEvent::Refused(e));
        Ok(Step::Again)
    }

    pub(super) fn unexpected(&self, m: &FrontendMessage) -> Error {
        Error::UnexpectedMessage {
            state: self.state_name(),
            message: m.name(),
        }
    }

    pub(super) fn startup_message(&mut self, m: FrontendMessage<'static>) -> Result<(), Error> {
        let unexpected = self.unexpected(&m);
        let Phase::Startup(s) = &mut self.phase else {
            return Ok(());
        };
        s.first_packet = false;
        use FrontendMessage as F;
        match (&mut s.state, m) {
            // As PostgreSQL: each encryption request is allowed once, none after encryption
            // began through the other, and inside direct TLS the request is answered `N` here
            // (the connection is encrypted already) without asking the application.
            (State::AwaitPacket, m @ (F::SslRequest | F::GssEncRequest)) => {
                let ssl = matches!(m, F::SslRequest);
                let done = if ssl { s.ssl_done } else { s.gss_done };
                if done {
                    // PostgreSQL reads the request code as a protocol version it does not
                    // speak: FATAL 0A000.
                    let code = if ssl {
                        crate::message::startup::SSL_REQUEST_CODE
                    } else {
                        crate::message::startup::GSSENC_REQUEST_CODE
                    };
                    return Err(Error::UnsupportedProtocol {
                        version: ProtocolVersion {
                            major: (code >> 16) as u16,
                            minor: (code & 0xffff) as u16,
                        },
                    });
                }
                if ssl {
                    s.ssl_done = true;
                } else {
                    s.gss_done = true;
                }
                if self.tls {
                    BackendMessage::SslResponse { accepted: false }.encode(&mut self.core.out);
                } else if ssl {
                    s.state = State::AwaitSslDecision;
                    self.core.events.push_back(ServerEvent::SslRequest);
                } else {
                    s.state = State::AwaitGssDecision;
                    self.core.events.push_back(ServerEvent::GssEncRequest);
                }
            }
            (State::AwaitPacket, F::CancelRequest(c)) => {
                // Not closed yet: the decoder refuses any byte after a CancelRequest
                // (`DataAfterEnd`), and EOF then ends the connection with `Closed`.
                s.state = State::Cancelled;
                self.core.events.push_back(ServerEvent::CancelRequest(c));
            }
            (State::AwaitPacket, F::UnsupportedStartup(u))
                if u.version().major == 2
                    && self.config.min_protocol_version == ProtocolVersion::V2_0 =>
            {
                return self.start_v2(&u);
            }
            (State::AwaitPacket, F::UnsupportedStartup(u)) => {
                let v = u.version();
                let text = format!(
                    "unsupported frontend protocol {}.{}: server supports 3.0 to 3.{}",
                    v.major, v.minor, self.config.max_protocol_version.minor
                );
                if v.major < 3 {
                    // A protocol-2 client understands only the old format.
                    self.core
                        .out
                        .extend_from_slice(&startup::legacy_error(&format!("FATAL:  {text}\n")));
                    // The error is recorded here, not returned: returning it would make
                    // `poll_event` queue a protocol-3 ErrorResponse after the old-format one.
                    self.phase = Phase::Closed;
                    self.core.error = Some(Box::new(Error::UnsupportedProtocol { version: v }));
                    return Ok(());
                }
                return Err(Error::UnsupportedProtocol { version: v });
            }
            (State::AwaitPacket, F::Startup(msg))
                if self.config.max_protocol_version == ProtocolVersion::V2_0 =>
            {
                return self.v2_only(msg.version());
            }
            (State::AwaitPacket, F::Startup(msg)) => {
                let requested = msg.version();
                let max = self.config.max_protocol_version;
                // The newest version we support that is not above the request (never 3.1).
                let version = if requested.minor >= max.minor {
                    max
                } else if requested.minor >= 2 {
                    ProtocolVersion::V3_2
                } else {
                    ProtocolVersion::V3_0
                };
                let unrecognized: Vec<&[u8]> = msg.protocol_options().map(|(k, _)| k).collect();
                // As PostgreSQL 18: NegotiateProtocolVersion only for a minor version above ours
                // or unrecognised options, carrying the newest version not above the request
                // (a 3.1 request goes on as 3.1, which behaves as 3.0: a 4-byte key).
                if requested.minor > max.minor || !unrecognized.is_empty() {
                    let newest = if requested.minor > max.minor {
                        max
                    } else {
                        requested
                    };
                    NegotiateProtocolVersion::new(newest.code() as i32, unrecognized)
                        .map_err(|reason| Error::CannotSend {
                            message: "NegotiateProtocolVersion",
                            reason,
                        })?
                        .encode(&mut self.core.out);
                }
                let Some(user) = msg.param("user").filter(|u| !u.is_empty()) else {
                    return Err(AuthError::MissingUser.into());
                };
                self.user = String::from_utf8_lossy(user).into();
                self.version = version;
                s.startup = Some(msg.clone());
                s.state = State::AwaitAuthDecision;
                self.core.events.push_back(ServerEvent::Startup {
                    message: msg,
                    version,
                });
            }
            (State::Password(check), F::PasswordMessage(p)) => {
                let ok = check.verify(self.user.as_bytes(), p.password());
                if ok {
                    self.authenticated();
                } else {
                    return Err(AuthError::PasswordMismatch.into());
                }
            }
            (
                State::Scram {
                    server,
                    plus_offered,
                    step: step @ ScramStep::AwaitInitial,
                },
                F::SaslInitialResponse(r),
            ) => {
                let mechanism = startup::scram_mechanism(r.mechanism(), *plus_offered)
                    .map_err(AuthError::Scram)?;
                let end_point = if *plus_offered {
                    s.end_point.as_deref()
                } else {
                    None
                };
                let data = r.data().unwrap_or_default();
                let reply = server
                    .handle_client_first(data, mechanism, end_point)
                    .map_err(AuthError::Scram)?;
                *step = ScramStep::AwaitFinal;
                self.core
                    .decoder
                    .expect_auth_response(Some(AuthResponseKind::Sasl));
                BackendMessage::Authentication(Authentication::SaslContinue(Bytes::from(reply)))
                    .encode(&mut self.core.out);
            }
            (
                State::Scram {
                    server,
                    step: ScramStep::AwaitFinal,
                    ..
                },
                F::SaslResponse(r),
            ) => {
                let reply = server
                    .handle_client_final(r.data())
                    .map_err(AuthError::Scram)?;
                BackendMessage::Authentication(Authentication::SaslFinal(Bytes::from(reply)))
                    .encode(&mut self.core.out);
                self.authenticated();
            }
            (
                State::External(_),
                m @ (F::GssResponse(_) | F::SaslInitialResponse(_) | F::SaslResponse(_)),
            ) => self
                .core
                .events
                .push_back(ServerEvent::AuthResponse(Box::new(m))),
            (_, F::Terminate) => {
                self.phase = Phase::Closed;
                self.core.events.push_back(ServerEvent::Terminate);
            }
            _ => return Err(unexpected),
        }
        Ok(())
    }

    pub(super) fn query_message(&mut self, lent: FrontendLent) -> Result<Step, Error> {
        use FrontendMessage as F;
        let request = match &lent.layout {
            Layout::Query(_)
            | Layout::Parse(_)
            | Layout::Bind(_)
            | Layout::Describe(_)
            | Layout::Execute(_)
            | Layout::Close(_)
            | Layout::Sync => request_of(&lent.layout),
            Layout::Flush => return Ok(Step::Deliver(lent)),
            Layout::Message(m) if matches!(**m, F::FunctionCall(_)) => Request::FunctionCall,
            Layout::Terminate => {
                self.phase = Phase::Closed;
                self.core.events.push_back(ServerEvent::Terminate);
                return Ok(Step::Again);
            }
            // CopyData, CopyDone or CopyFail outside COPY: PostgreSQL ignores them (a client
            // may send them after the server ended a COPY with an error).
            Layout::CopyData | Layout::CopyDone | Layout::CopyFail(_) => {
                self.discarded += 1;
                return Ok(Step::Again);
            }
            other => return Err(self.unexpected_layout(other)),
        };
        if let Phase::Ready(q) = &mut self.phase {
            if request == Request::Sync {
                q.ignore_till_sync = false;
            }
            q.start(request, self.core.decoder.portal_of(&lent));
        }
        Ok(Step::Deliver(lent))
    }

    pub(super) fn copy_message(&mut self, lent: FrontendLent) -> Result<Step, Error> {
        match &lent.layout {
            Layout::CopyData => return Ok(Step::Deliver(lent)),
            Layout::CopyDone | Layout::CopyFail(_) => {
                let message = if matches!(lent.layout, Layout::CopyDone) {
                    CopyStream::CopyDone
                } else {
                    CopyStream::CopyFail
                };
                if let Phase::Ready(Serving {
                    current: Some(c), ..
                }) = &mut self.phase
                {
                    if let Some(stage) = protocol::next_frontend(c.stage, message) {
                        c.stage = stage;
                    }
                }
                return Ok(Step::Deliver(lent));
            }
            // PostgreSQL ignores Flush and Sync during COPY FROM STDIN (where a client that
            // pipelined them before it learnt of the COPY sends them again after CopyDone).
            Layout::Flush | Layout::Sync if self.in_copy_from_stdin() => self.discarded += 1,
            // During CopyBoth, PostgreSQL's walsender ends the session with FATAL 08P01 on
            // anything but CopyData, CopyDone and Terminate: such a Sync would never be sent
            // again, nor answered.
            other @ (Layout::Flush | Layout::Sync) => return Err(self.unexpected_layout(other)),
            Layout::Terminate => {
                self.phase = Phase::Closed;
                self.core.events.push_back(ServerEvent::Terminate);
            }
            other => {
                // As PostgreSQL 18: an ERROR for the message, then, since only its type byte
                // was read and the stream cannot be resynchronised, FATAL 08P01 and the end.
                let tag = other.tag();
                let text = format!("unexpected message type 0x{tag:02X} during COPY from stdin");
                BackendMessage::ErrorResponse(ErrorFields::simple("ERROR", "08P01", &text))
                    .encode(&mut self.core.out);
                return Err(self.unexpected_layout(other));
            }
        }
        Ok(Step::Again)
    }

    /// Whether the request being answered is in COPY FROM STDIN (not CopyBoth).
    pub(super) fn in_copy_from_stdin(&self) -> bool {
        matches!(
            &self.phase,
            Phase::Ready(Serving { current: Some(c), .. }) if c.stage == Stage::CopyIn
        )
    }

    pub(super) fn unexpected_layout(&self, l: &Layout) -> Error {
        Error::UnexpectedMessage {
            state: self.state_name(),
            message: l.name(),
        }
    }
}
