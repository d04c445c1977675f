//! The correlation queue: which request each frame an upstream server sends answers, and what
//! to do with it.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::error::Error;
use crate::message::backend::{name as backend_name, tag as btag};
use crate::message::common::TransactionStatus;
use crate::protocol::{self, Answer, CopyStream, Next, Request, Stage};
use crate::relay::FramePiece;

/// What to do with the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The request was sent upstream for the client: its answer goes to the client.
    Forward,
    /// The request was sent upstream by the application itself (a Parse the upstream
    /// connection lacks, a Close, a `SET`): its answer is dropped. An ErrorResponse to an
    /// extended-query request (Parse, Bind, Describe, Execute, Close) is the exception and goes to
    /// the client: the upstream server now skips the client's requests up to the next Sync, and
    /// the client must learn why. Errors of a skipped Query, Sync or FunctionCall are dropped.
    Skip,
    /// The request was not sent upstream: the application answers it with these bytes (whole
    /// frames, for example ParseComplete), which [`Correlator::poll_event`] hands out as soon as
    /// every answer before it has gone to the client, or never, if an earlier error makes the
    /// upstream server skip the requests up to the next Sync (the client's server would have
    /// skipped this one too). They must be a success: a synthesized error would not make the
    /// upstream server skip what follows.
    Synthesize(Bytes),
}

/// Where a frame from upstream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the client.
    Forward,
    /// Nowhere: it answers a request the application sent itself.
    Drop,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (for a synthesized answer: handed out).
    Answered,
    /// Answered with an ErrorResponse (or, for a COPY, ended by one).
    Failed,
    /// Never answered: the upstream server skipped it (after an extended-query error, or a Sync
    /// during COPY FROM STDIN), and a synthesized answer was not handed out.
    Skipped,
}

/// What the [`Correlator`] tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrelatorEvent<T> {
    /// A synthesized answer is due: send these bytes to the client now.
    Synthesized(Bytes),
    /// A request ended, with the data it was pushed with.
    Finished {
        /// The request.
        request: Request,
        /// How it ended.
        outcome: Outcome,
        /// What the application pushed with it.
        data: T,
    },
}

#[derive(Debug)]
struct Entry<T> {
    request: Request,
    action: Action,
    data: T,
}

/// The requests sent to an upstream server (or answered by the application) in order, each
/// with an [`Action`]: PgBouncer's outstanding-request list, on the protocol table the
/// [`Client`](crate::Client) and [`Server`](crate::Server) follow.
///
/// The application pushes each request as it writes it upstream ([`Correlator::push`]), calls
/// [`Correlator::copy_ended`] when it writes CopyDone or CopyFail, and routes every frame it
/// reads from upstream ([`Correlator::route`]): the frame goes to the client or is dropped.
/// After every push and every route it drains [`Correlator::poll_event`] (synthesized answers
/// to send, requests finished). It follows the server's rules: after an error in an
/// extended-query request, the requests up to the next Sync are skipped; Syncs sent before a
/// COPY FROM STDIN began are ignored; NoticeResponse, ParameterStatus and
/// NotificationResponse answer nothing and always go to the client, and so does an
/// ErrorResponse with nothing in flight (a FATAL error: the server closes next).
///
/// ```
/// use bytes::Bytes;
/// use pgproto::pooler::{Action, Correlator, CorrelatorEvent, Outcome, Route};
/// use pgproto::protocol::Request;
/// use pgproto::FramePiece;
///
/// let mut c = Correlator::new();
/// // The client's Parse of a statement the upstream connection already has: answered here.
/// c.push(Request::Parse, Action::Synthesize(Bytes::from_static(b"1\0\0\0\x04")), "parse");
/// // A Parse the upstream connection lacked, injected before the client's Bind.
/// c.push(Request::Parse, Action::Skip, "injected");
/// c.push(Request::Bind, Action::Forward, "bind");
/// c.push(Request::Sync, Action::Forward, "sync");
/// assert_eq!(c.poll_event(), Some(CorrelatorEvent::Synthesized(Bytes::from_static(b"1\0\0\0\x04"))));
/// assert!(matches!(c.poll_event(), Some(CorrelatorEvent::Finished { data: "parse", .. })));
///
/// let route = |c: &mut Correlator<&str>, frame: &[u8]| c.route(&FramePiece::whole(frame).unwrap()).unwrap();
/// assert_eq!(route(&mut c, b"1\0\0\0\x04"), Route::Drop); // the injected Parse's answer
/// assert_eq!(route(&mut c, b"2\0\0\0\x04"), Route::Forward); // BindComplete
/// assert_eq!(route(&mut c, b"Z\0\0\0\x05I"), Route::Forward);
/// let finished: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
/// assert_eq!(finished.len(), 3);
/// assert!(c.is_idle()); // the upstream connection can serve another client
/// ```
#[derive(Debug)]
pub struct Correlator<T = ()> {
    queue: VecDeque<Entry<T>>,
    /// Where the request at the front is.
    stage: Stage,
    /// An extended-query request failed and no Sync has been pushed since.
    discarding: bool,
    /// The route of a frame whose first piece was routed and whose last was not.
    open: Option<Route>,
    events: VecDeque<CorrelatorEvent<T>>,
    status: Option<TransactionStatus>,
    error: Option<Error>,
}

impl<T> Default for Correlator<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Correlator<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            stage: Stage::Start,
            discarding: false,
            open: None,
            events: VecDeque::new(),
            status: None,
            error: None,
        }
    }

    /// The number of requests not yet finished.
    #[inline]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no request waits for its answer.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The transaction status of the last ReadyForQuery routed; `None` before the first.
    pub fn transaction_status(&self) -> Option<TransactionStatus> {
        self.status
    }

    /// Whether the upstream connection is between transactions with nothing in flight: no
    /// request waits, no frame is half routed, the last ReadyForQuery said idle (`I`), and the
    /// server is not skipping messages until a Sync (after an extended-query error with no Sync
    /// pushed yet, the next client's requests would be skipped). A transaction pooler releases
    /// the connection then.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.open.is_none()
            && self.status == Some(TransactionStatus::Idle)
            && self.error.is_none()
            && !self.discarding
    }

    /// Whether a frame's first piece was routed and its last was not.
    pub fn in_frame(&self) -> bool {
        self.open.is_some()
    }

    /// Records a request: written upstream (with [`Action::Forward`] or [`Action::Skip`]), or
    /// answered by the application ([`Action::Synthesize`]). `data` comes back in
    /// [`CorrelatorEvent::Finished`].
    ///
    /// A request pushed while the upstream server skips until Sync (after an extended-query
    /// error), or a Sync pushed during COPY FROM STDIN, finishes at once as
    /// [`Outcome::Skipped`].
    pub fn push(&mut self, request: Request, action: Action, data: T) {
        let copying = !self.queue.is_empty() && self.stage.frontend_sending();
        if (self.discarding && request != Request::Sync) || (copying && request == Request::Sync) {
            self.events.push_back(CorrelatorEvent::Finished {
                request,
                outcome: Outcome::Skipped,
                data,
            });
            return;
        }
        if request == Request::Sync {
            self.discarding = false;
        }
        self.queue.push_back(Entry {
            request,
            action,
            data,
        });
        self.settle();
    }

    /// Records that CopyDone or CopyFail was written upstream: the COPY FROM STDIN (or the
    /// frontend's side of a CopyBoth) is over and its CommandComplete or ErrorResponse comes
    /// next. Ignored outside a COPY.
    pub fn copy_ended(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        if let Some(stage) = protocol::next_frontend(self.stage, CopyStream::CopyDone) {
            self.stage = stage;
        }
    }

    /// Where a frame from upstream goes; call it for every piece (a piece after the first
    /// goes where the first went).
    ///
    /// Fails with [`Error::UnexpectedMessage`] when the frame answers no request in flight, or
    /// not the way the protocol allows (the upstream server broke the protocol, or the
    /// application pushed the wrong requests); the error is sticky.
    pub fn route(&mut self, piece: &FramePiece<'_>) -> Result<Route, Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !piece.is_first() {
            return match self.open {
                Some(route) => {
                    if piece.is_last() {
                        self.open = None;
                    }
                    Ok(route)
                }
                None => Err(self.fail(piece.header().tag())),
            };
        }
        let tag = piece.header().tag();
        let route = match tag {
            btag::NOTICE_RESPONSE | btag::PARAMETER_STATUS | btag::NOTIFICATION_RESPONSE => {
                Route::Forward
            }
            // With nothing in flight, only a FATAL error can come (the server is going away,
            // say after pg_terminate_backend): it goes to the client, which must learn why.
            btag::ERROR_RESPONSE if self.queue.is_empty() => Route::Forward,
            _ => self.answer(tag, piece)?,
        };
        if !piece.is_last() {
            self.open = Some(route);
        }
        self.settle();
        Ok(route)
    }

    /// The next event: a synthesized answer due, or a request finished.
    #[inline]
    pub fn poll_event(&mut self) -> Option<CorrelatorEvent<T>> {
        self.events.pop_front()
    }

    fn fail(&mut self, tag: u8) -> Error {
        let e = Error::UnexpectedMessage {
            state: self.state_name(),
            message: backend_name(tag),
        };
        self.error = Some(e.clone());
        e
    }

    fn state_name(&self) -> &'static str {
        match self.queue.front() {
            None => "no request in flight upstream",
            Some(_) if self.stage.in_copy() => "an upstream COPY",
            Some(e) => match e.request {
                Request::Query => "answering Query upstream",
                Request::Parse => "answering Parse upstream",
                Request::Bind => "answering Bind upstream",
                Request::DescribeStatement | Request::DescribePortal => {
                    "answering Describe upstream"
                }
                Request::Execute => "answering Execute upstream",
                Request::Close => "answering Close upstream",
                Request::Sync => "answering Sync upstream",
                Request::FunctionCall => "answering FunctionCall upstream",
            },
        }
    }

    /// Routes an answer to the request at the front and moves it on.
    fn answer(&mut self, tag: u8, piece: &FramePiece<'_>) -> Result<Route, Error> {
        let Some(answer) = Answer::of_tag(tag) else {
            return Err(self.fail(tag));
        };
        let Some(head) = self.queue.front() else {
            return Err(self.fail(tag));
        };
        let request = head.request;
        let Some(next) = protocol::next(request, self.stage, answer) else {
            return Err(self.fail(tag));
        };
        if answer == Answer::ReadyForQuery {
            let status = piece
                .body()
                .filter(|b| b.len() == 1)
                .and_then(|b| TransactionStatus::from_byte(b[0]));
            match status {
                Some(s) => self.status = Some(s),
                None => return Err(self.fail(tag)),
            }
        }
        let route = match &head.action {
            Action::Forward => Route::Forward,
            Action::Skip if answer == Answer::ErrorResponse && request.is_extended() => {
                Route::Forward
            }
            Action::Skip | Action::Synthesize(_) => Route::Drop,
        };
        match next {
            Next::Stay => {}
            Next::Go(stage) => {
                self.stage = stage;
                if stage.frontend_sending() {
                    self.skip_syncs_behind_front();
                }
            }
            Next::Done | Next::CopyEnded => self.finish(Outcome::Answered),
            Next::Failed | Next::CopyFailed => {
                self.finish(Outcome::Failed);
                if request.is_extended() {
                    self.discard_until_sync();
                }
            }
        }
        Ok(route)
    }

    /// Pops the front request.
    fn finish(&mut self, outcome: Outcome) {
        self.stage = Stage::Start;
        if let Some(e) = self.queue.pop_front() {
            self.events.push_back(CorrelatorEvent::Finished {
                request: e.request,
                outcome,
                data: e.data,
            });
        }
    }

    /// After an extended-query error: the requests up to the next Sync are skipped.
    fn discard_until_sync(&mut self) {
        while self
            .queue
            .front()
            .is_some_and(|e| e.request != Request::Sync)
        {
            self.finish(Outcome::Skipped);
        }
        if self.queue.is_empty() {
            self.discarding = true;
        }
    }

    /// The server ignores Sync during COPY FROM STDIN: those sent before the COPY began get
    /// no answer.
    fn skip_syncs_behind_front(&mut self) {
        let mut i = 1;
        while i < self.queue.len() {
            if self.queue[i].request == Request::Sync {
                if let Some(e) = self.queue.remove(i) {
                    self.events.push_back(CorrelatorEvent::Finished {
                        request: e.request,
                        outcome: Outcome::Skipped,
                        data: e.data,
                    });
                }
            } else {
                i += 1;
            }
        }
    }

    /// Hands out the synthesized answers now at the front. Called after every push and route:
    /// the check, inlined, is all it costs when none is due (the common case).
    #[inline]
    fn settle(&mut self) {
        if self.stage == Stage::Start
            && self
                .queue
                .front()
                .is_some_and(|e| matches!(e.action, Action::Synthesize(_)))
        {
            self.settle_synthesized();
        }
    }

    fn settle_synthesized(&mut self) {
        while self.stage == Stage::Start
            && self
                .queue
                .front()
                .is_some_and(|e| matches!(e.action, Action::Synthesize(_)))
        {
            let Some(e) = self.queue.pop_front() else {
                return;
            };
            if let Action::Synthesize(bytes) = e.action {
                self.events.push_back(CorrelatorEvent::Synthesized(bytes));
            }
            self.events.push_back(CorrelatorEvent::Finished {
                request: e.request,
                outcome: Outcome::Answered,
                data: e.data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<T>(c: &mut Correlator<T>, frame: &[u8]) -> Result<Route, Error> {
        c.route(&FramePiece::whole(frame).unwrap())
    }

    fn events<T>(c: &mut Correlator<T>) -> Vec<CorrelatorEvent<T>> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn finished<T: Copy>(c: &mut Correlator<T>) -> Vec<(T, Outcome)> {
        events(c)
            .into_iter()
            .filter_map(|e| match e {
                CorrelatorEvent::Finished { data, outcome, .. } => Some((data, outcome)),
                _ => None,
            })
            .collect()
    }

    const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
    const ERROR: &[u8] = b"E\0\0\0\x0cC42P01\0\0";

    #[test]
    fn error_skips_until_sync_and_drops_synthesized() {
        let mut c = Correlator::new();
        c.push(Request::Bind, Action::Forward, 1);
        c.push(
            Request::Parse,
            Action::Synthesize(Bytes::from_static(PARSE_COMPLETE)),
            2,
        );
        c.push(Request::Execute, Action::Forward, 3);
        c.push(Request::Sync, Action::Forward, 4);
        assert!(events(&mut c).is_empty()); // the synthesized answer waits for the Bind's
        assert_eq!(route(&mut c, ERROR), Ok(Route::Forward));
        assert_eq!(
            finished(&mut c),
            [
                (1, Outcome::Failed),
                (2, Outcome::Skipped),
                (3, Outcome::Skipped)
            ]
        );
        assert_eq!(route(&mut c, b"Z\0\0\0\x05I"), Ok(Route::Forward));
        assert_eq!(finished(&mut c), [(4, Outcome::Answered)]);
        assert!(c.is_idle());
    }

    #[test]
    fn synthesized_answer_comes_after_the_answers_before_it() {
        let mut c = Correlator::new();
        c.push(Request::Bind, Action::Forward, 1);
        c.push(
            Request::Parse,
            Action::Synthesize(Bytes::from_static(PARSE_COMPLETE)),
            2,
        );
        assert!(events(&mut c).is_empty());
        assert_eq!(route(&mut c, b"2\0\0\0\x04"), Ok(Route::Forward));
        let ev = events(&mut c);
        assert_eq!(
            ev[1],
            CorrelatorEvent::Synthesized(Bytes::from_static(PARSE_COMPLETE))
        );
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn skipped_request_errors_reach_the_client_only_for_extended_requests() {
        let mut c = Correlator::new();
        c.push(Request::Parse, Action::Skip, 1);
        c.push(Request::Bind, Action::Forward, 2);
        c.push(Request::Sync, Action::Forward, 3);
        assert_eq!(route(&mut c, ERROR), Ok(Route::Forward));
        assert_eq!(
            finished(&mut c),
            [(1, Outcome::Failed), (2, Outcome::Skipped)]
        );

        let mut c = Correlator::new();
        c.push(Request::Query, Action::Skip, 1);
        assert_eq!(route(&mut c, ERROR), Ok(Route::Drop));
        assert_eq!(route(&mut c, b"Z\0\0\0\x05I"), Ok(Route::Drop));
        assert_eq!(finished(&mut c), [(1, Outcome::Answered)]);
    }

    #[test]
    fn not_idle_while_the_server_skips_until_sync() {
        let mut c = Correlator::new();
        c.push(Request::Sync, Action::Forward, 0);
        route(&mut c, b"Z\0\0\0\x05I").unwrap();
        assert_eq!(finished(&mut c), [(0, Outcome::Answered)]);
        assert!(c.is_idle());
        // An Execute fails and the client has not sent its Sync yet: PostgreSQL now skips
        // everything up to a Sync, so the connection must not serve another client.
        c.push(Request::Execute, Action::Forward, 1);
        assert_eq!(route(&mut c, ERROR), Ok(Route::Forward));
        assert_eq!(finished(&mut c), [(1, Outcome::Failed)]);
        assert!(c.is_empty());
        assert!(!c.is_idle());
        c.push(Request::Sync, Action::Forward, 2);
        assert!(!c.is_idle());
        assert_eq!(route(&mut c, b"Z\0\0\0\x05I"), Ok(Route::Forward));
        assert_eq!(finished(&mut c), [(2, Outcome::Answered)]);
        assert!(c.is_idle());
    }

    #[test]
    fn pushed_while_discarding_is_skipped_at_once() {
        let mut c = Correlator::new();
        c.push(Request::Execute, Action::Forward, 1);
        assert_eq!(route(&mut c, ERROR), Ok(Route::Forward));
        c.push(Request::Bind, Action::Forward, 2);
        c.push(Request::Sync, Action::Forward, 3);
        assert_eq!(
            finished(&mut c),
            [(1, Outcome::Failed), (2, Outcome::Skipped)]
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn copy_in_ignores_syncs_and_waits_for_copy_end() {
        let mut c = Correlator::new();
        c.push(Request::Execute, Action::Forward, 1);
        c.push(Request::Sync, Action::Forward, 2);
        assert_eq!(route(&mut c, b"G\0\0\0\x07\0\0\0"), Ok(Route::Forward));
        assert_eq!(finished(&mut c), [(2, Outcome::Skipped)]);
        c.push(Request::Sync, Action::Forward, 3); // during COPY: ignored
        assert_eq!(finished(&mut c), [(3, Outcome::Skipped)]);
        // CommandComplete before CopyDone was written: the protocol does not allow it.
        let mut early = Correlator::<()>::new();
        early.push(Request::Query, Action::Forward, ());
        route(&mut early, b"G\0\0\0\x07\0\0\0").unwrap();
        assert!(route(&mut early, b"C\0\0\0\x0bCOPY 1\0").is_err());
        assert!(route(&mut early, b"Z\0\0\0\x05I").is_err()); // sticky
        c.copy_ended();
        c.push(Request::Sync, Action::Forward, 4);
        assert_eq!(route(&mut c, b"C\0\0\0\x0bCOPY 1\0"), Ok(Route::Forward));
        assert_eq!(route(&mut c, b"Z\0\0\0\x05I"), Ok(Route::Forward));
        assert_eq!(
            finished(&mut c),
            [(1, Outcome::Answered), (4, Outcome::Answered)]
        );
    }

    #[test]
    fn asynchronous_messages_and_pieces() {
        let mut c = Correlator::<()>::new();
        assert_eq!(route(&mut c, b"S\0\0\0\x08a\0b\0"), Ok(Route::Forward));
        // A FATAL error while idle: the server is going away.
        assert_eq!(route(&mut c, ERROR), Ok(Route::Forward));
        assert!(route(&mut c, b"2\0\0\0\x04").is_err()); // answers nothing
        let mut c = Correlator::new();
        c.push(Request::Query, Action::Skip, ());
        let row = b"D\0\0\0\x0a\0\x01\0\0\0\0";
        let first = crate::relay::tests_support::piece(row, 0, 6);
        let rest = crate::relay::tests_support::piece(row, 6, row.len());
        assert_eq!(c.route(&first), Ok(Route::Drop));
        assert!(c.in_frame());
        assert_eq!(c.route(&rest), Ok(Route::Drop));
        assert!(!c.in_frame());
        assert_eq!(c.transaction_status(), None);
    }
}
