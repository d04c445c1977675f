//! Answers passed through as frames: a proxy forwards what its upstream server sends without
//! decoding it, and the machine still checks each frame against the request it answers.

use bytes::Bytes;

use super::startup::State;
use super::{Phase, Server};
use crate::error::UsageError;
use crate::message::backend::tag as btag;
use crate::message::common::TransactionStatus;
use crate::message::fields::ErrorFields;
use crate::protocol::Answer;
use crate::relay::FramePiece;

impl Server {
    /// Sends a backend frame as it is: the answer an upstream server gave, or one the
    /// application built. A large frame may come in pieces ([`Relay`](crate::Relay) hands them
    /// out as they arrive); between the first piece and the last nothing else may be sent.
    ///
    /// The first piece's header is checked as every answer is ([`crate::protocol`]): an
    /// answer must fit the request being answered, and moves it on (ReadyForQuery records the
    /// transaction status, an ErrorResponse to an extended-query message starts the discard
    /// until Sync, as [`Server::error_response`] does). NoticeResponse, ParameterStatus and
    /// NotificationResponse may be forwarded at any time after start-up, the first two also
    /// while the application ends the start-up ([`StartupEnd::Application`](crate::StartupEnd)).
    /// An ErrorResponse when no request is in flight must be whole and FATAL (or PANIC), and
    /// closes the connection as [`Server::fatal`] does. The body is not decoded (but for
    /// ReadyForQuery's status byte and such an ErrorResponse): it goes out as received.
    ///
    /// Fails with [`UsageError::NotAllowed`] when the frame is not allowed now (a piece that
    /// does not continue the frame being forwarded, a message that is not an answer, an answer
    /// the request does not allow), and with [`UsageError::Closed`] once the connection has
    /// failed or been closed. Nothing is sent then.
    ///
    /// ```
    /// use pgproto::{FramePiece, FrontendMessage, Server, ServerAuth, ServerConfig, ServerEvent};
    ///
    /// let mut server = Server::new(ServerConfig::default());
    /// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    /// server.receive(b"Q\0\0\0\x0dSELECT 1\0");
    /// while let Some(event) = server.poll_event()? {
    ///     match event {
    ///         ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust)?,
    ///         ServerEvent::Message(FrontendMessage::Query(_)) => {
    ///             // What an upstream server answered, passed through frame by frame.
    ///             server.forward(&FramePiece::whole(b"I\0\0\0\x04")?)?; // EmptyQueryResponse
    ///             server.forward(&FramePiece::whole(b"Z\0\0\0\x05T")?)?;
    ///         }
    ///         _ => {}
    ///     }
    /// }
    /// assert_eq!(server.transaction_status(), pgproto::TransactionStatus::InTransaction);
    /// // A frame the request does not allow is refused, and nothing is sent.
    /// assert!(server.forward(&FramePiece::whole(b"1\0\0\0\x04")?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forward(&mut self, piece: &FramePiece<'_>) -> Result<(), UsageError> {
        if self.core.error.is_some() || matches!(self.phase, Phase::Closed) {
            return Err(UsageError::Closed);
        }
        if let Phase::Ready(q) = &mut self.phase {
            if q.forwarding != 0 {
                // Only the rest of the open frame.
                let expected = piece.header().frame_len() as u64 - q.forwarding;
                if piece.is_first() || piece.offset() as u64 != expected {
                    return Err(self.not_allowed("forward a frame"));
                }
                q.forwarding -= piece.bytes().len() as u64;
                self.core.out.extend_from_slice(piece.bytes());
                return Ok(());
            }
        }
        if !piece.is_first() {
            return Err(self.not_allowed("forward a piece of a frame not begun"));
        }
        let tag = piece.header().tag();
        let in_startup_end =
            matches!(&self.phase, Phase::Startup(s) if matches!(s.state, State::AwaitStartupEnd));
        let next = match tag {
            btag::NOTICE_RESPONSE | btag::PARAMETER_STATUS if in_startup_end => None,
            btag::NOTICE_RESPONSE | btag::PARAMETER_STATUS | btag::NOTIFICATION_RESPONSE => {
                self.after_startup("forward an asynchronous message")?;
                None
            }
            btag::ERROR_RESPONSE if self.in_flight() == 0 => {
                self.after_startup("forward ErrorResponse")?;
                let fatal = piece.body().and_then(|b| {
                    let fields = ErrorFields::decode(&Bytes::copy_from_slice(b), "ErrorResponse");
                    let fields = fields.ok()?;
                    let severity = fields.severity_nonlocalized().or(fields.severity());
                    Some(matches!(severity, Some(b"FATAL" | b"PANIC")))
                });
                if fatal != Some(true) {
                    return Err(UsageError::NotAllowed {
                        command: "forward ErrorResponse",
                        state: "idle (no request to answer: only a whole FATAL may be sent)",
                    });
                }
                self.core.out.extend_from_slice(piece.bytes());
                self.phase = Phase::Closed;
                return Ok(());
            }
            _ => {
                let Some(answer) = Answer::of_tag(tag) else {
                    return Err(self.not_allowed("forward a message that answers no request"));
                };
                let next = self.check("forward an answer", answer)?;
                if answer == Answer::ReadyForQuery {
                    let status = piece
                        .body()
                        .filter(|b| b.len() == 1)
                        .and_then(|b| TransactionStatus::from_byte(b[0]));
                    let Some(status) = status else {
                        return Err(self.not_allowed("forward a malformed ReadyForQuery"));
                    };
                    self.status = status;
                }
                Some(next)
            }
        };
        self.core.out.extend_from_slice(piece.bytes());
        if !piece.is_last() {
            if let Phase::Ready(q) = &mut self.phase {
                q.forwarding = (piece.header().frame_len() - piece.bytes().len()) as u64;
            }
        }
        if let Some(next) = next {
            self.apply(next);
        }
        Ok(())
    }

    /// Whether a frame forwarded in pieces ([`Server::forward`]) still waits for its end.
    pub fn is_forwarding(&self) -> bool {
        matches!(&self.phase, Phase::Ready(q) if q.forwarding != 0)
    }
}
