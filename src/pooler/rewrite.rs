//! What a transaction pooler sends upstream for each message of a client: the message itself,
//! with the client's statement names replaced by the pooler's, the Parse an upstream connection
//! lacks injected before it, and the answers it gives itself.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::correlator::{Action, Correlator, Outcome};
use super::statements::{
    ClientStatements, Statement, StatementRegistry, TooManyStatements, UpstreamStatements,
};
use crate::codec::Encode;
use crate::error::EncodeError;
use crate::message::common::Target;
use crate::message::frontend::FrontendMessage;
use crate::protocol::Request;

/// ParseComplete, as the pooler answers a Parse the upstream connection does not need.
const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
/// CloseComplete, as the pooler answers a Close of a client's statement.
const CLOSE_COMPLETE: &[u8] = b"3\0\0\0\x04";

/// What the pooler pushes into its [`Correlator`] with each request, so that
/// [`Rewrite::finished`] can set the statement maps right when a request fails or is skipped.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum StatementNote {
    /// Nothing to set right.
    #[default]
    None,
    /// The client's Parse of a named statement (recorded in the client's map at once, and in
    /// the upstream connection's if it was sent there).
    ClientParse {
        /// The client's name.
        name: Box<[u8]>,
        /// The statement.
        statement: Arc<Statement>,
        /// Whether the Parse was sent upstream (rather than answered by the pooler).
        upstream: bool,
    },
    /// The client's Close of a named statement (removed from its map at once).
    ClientClose {
        /// The client's name.
        name: Box<[u8]>,
        /// The statement.
        statement: Arc<Statement>,
    },
    /// A Parse the pooler injected (recorded in the upstream connection's set at once).
    UpstreamParse {
        /// The statement.
        statement: Arc<Statement>,
    },
    /// A Close the pooler injected to make room (removed from the set at once).
    UpstreamClose {
        /// The statement.
        statement: Arc<Statement>,
    },
}

/// Why a message could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The client has as many statements as allowed.
    #[error(transparent)]
    TooManyStatements(#[from] TooManyStatements),
    /// A renamed message would not fit its length word.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A transaction pooler's rewriting of one client's messages for the upstream connection that
/// serves it now: the statement maps it reads and updates.
///
/// For each frontend message the client sends, [`Rewrite::message`] writes what goes upstream
/// and pushes into the connection's [`Correlator`] what each request written (or answered) is:
///
/// | client sends | upstream gets | answered by |
/// | --- | --- | --- |
/// | Parse of a named statement the connection has | nothing | the pooler (ParseComplete) |
/// | Parse of a named statement the connection lacks | Parse under the pooler's name | upstream |
/// | Parse of a name the client already uses | Parse of its statement's pooler name, which the connection has (injected if need be) | upstream: ERROR 42P05, as PostgreSQL |
/// | Bind, Describe of a named statement | Parse if the connection lacks it (answer dropped), then the message under the pooler's name | upstream |
/// | Close of a named statement | nothing (the statement stays prepared upstream for other clients) | the pooler (CloseComplete) |
/// | anything else (the unnamed statement, portals, Query, Sync, COPY data...) | the message as received | upstream |
///
/// A connection that is full (its [`UpstreamStatements`] capacity) gets a Close of its least
/// recently used statement first. Named statements a client does not have pass through
/// unchanged, so that the server reports them as it would (26000).
///
/// ```
/// use bytes::BytesMut;
/// use pgproto::pooler::{
///     ClientStatements, Correlator, CorrelatorEvent, Rewrite, StatementRegistry, UpstreamStatements,
/// };
/// use pgproto::{FrontendDecoder, Limits};
///
/// let registry = StatementRegistry::new("pool_");
/// let mut client = ClientStatements::default();
/// let mut upstream = UpstreamStatements::new(100);
/// let mut correlator = Correlator::new();
/// let mut out = BytesMut::new();
///
/// // The client prepares P_0 and executes it: Parse, Bind, Execute, Sync.
/// let mut dec = FrontendDecoder::after_startup(Limits::default());
/// dec.receive(b"P\0\0\0\x13P_0\0SELECT 1\0\0\0B\0\0\0\x0f\0P_0\0\0\0\0\0\0\0E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04");
/// let mut rewrite = Rewrite { registry: &registry, client: &mut client, upstream: &mut upstream };
/// while let Some(m) = dec.next_ref().unwrap() {
///     rewrite.message(&m, &mut out, &mut correlator).unwrap();
/// }
/// assert!(out.starts_with(b"P\0\0\0\x16pool_1\0SELECT 1\0\0\0"));
/// assert_eq!(&out[23..36], b"B\0\0\0\x12\0pool_1\0");
/// assert_eq!(correlator.len(), 4);
/// assert!(upstream.contains(client.get(b"P_0").unwrap()));
/// ```
#[derive(Debug)]
pub struct Rewrite<'a> {
    /// The pool's statements.
    pub registry: &'a StatementRegistry,
    /// The client's.
    pub client: &'a mut ClientStatements,
    /// The upstream connection's.
    pub upstream: &'a mut UpstreamStatements,
}

impl Rewrite<'_> {
    /// Appends to `out` what goes upstream for `message`, and pushes into `correlator` every
    /// request written or answered (see the [type documentation](Self)). CopyDone and CopyFail
    /// also end the COPY in `correlator`; Flush and the COPY data stream are written as
    /// received. Terminate is written as received too: a pooler normally keeps it.
    ///
    /// Fails when the client would have more statements than its limit, or a renamed message
    /// would be too long; nothing is written or pushed then.
    pub fn message(
        &mut self,
        message: &FrontendMessage<'_>,
        out: &mut BytesMut,
        correlator: &mut Correlator<StatementNote>,
    ) -> Result<(), RewriteError> {
        use FrontendMessage as M;
        match message {
            M::Parse(p) if !p.name().is_empty() => {
                let name = p.name();
                if let Some(existing) = self.client.get(name).cloned() {
                    // As PostgreSQL: the name is taken. The connection gets a Parse of the
                    // existing statement's name, which it has, and answers 42P05.
                    self.ensure(&existing, out, correlator);
                    p.encode_renamed(out, existing.name().as_bytes())?;
                    correlator.push(Request::Parse, Action::Forward, StatementNote::None);
                    return Ok(());
                }
                let statement = self.registry.intern(p);
                self.client.insert(name, statement.clone())?;
                let upstream = !self.upstream.contains(&statement);
                if upstream {
                    // The Close of an evicted statement first, in the bytes as in the queue.
                    self.make_room(out, correlator);
                    if let Err(e) = p.encode_renamed(out, statement.name().as_bytes()) {
                        self.client.remove(name);
                        return Err(e.into());
                    }
                    self.upstream.insert(statement.clone());
                } else {
                    self.upstream.touch(&statement);
                }
                let action = if upstream {
                    Action::Forward
                } else {
                    Action::Synthesize(Bytes::from_static(PARSE_COMPLETE))
                };
                let note = StatementNote::ClientParse {
                    name: name.into(),
                    statement,
                    upstream,
                };
                correlator.push(Request::Parse, action, note);
            }
            M::Bind(b) if !b.statement().is_empty() => match self.client.get(b.statement()) {
                Some(s) => {
                    let s = s.clone();
                    self.ensure(&s, out, correlator);
                    b.encode_renamed(out, s.name().as_bytes())?;
                    correlator.push(Request::Bind, Action::Forward, StatementNote::None);
                }
                None => self.pass(message, out, correlator),
            },
            M::Describe(d) if d.target() == Target::Statement && !d.name().is_empty() => {
                match self.client.get(d.name()) {
                    Some(s) => {
                        let s = s.clone();
                        self.ensure(&s, out, correlator);
                        d.encode_renamed(out, s.name().as_bytes())?;
                        correlator.push(
                            Request::DescribeStatement,
                            Action::Forward,
                            StatementNote::None,
                        );
                    }
                    None => self.pass(message, out, correlator),
                }
            }
            M::Close(c) if c.target() == Target::Statement && !c.name().is_empty() => {
                let note = match self.client.remove(c.name()) {
                    Some(statement) => StatementNote::ClientClose {
                        name: c.name().into(),
                        statement,
                    },
                    None => StatementNote::None,
                };
                let answer = Action::Synthesize(Bytes::from_static(CLOSE_COMPLETE));
                correlator.push(Request::Close, answer, note);
            }
            M::CopyDone | M::CopyFail(_) => {
                message.encode(out);
                correlator.copy_ended();
            }
            _ => self.pass(message, out, correlator),
        }
        Ok(())
    }

    /// Sets the statement maps right when a request pushed by [`Rewrite::message`] finished
    /// other than answered: call it with every
    /// [`CorrelatorEvent::Finished`](super::CorrelatorEvent::Finished).
    #[inline]
    pub fn finished(&mut self, note: StatementNote, outcome: Outcome) {
        // Inlined: most requests are answered, and that ends it.
        if outcome != Outcome::Answered {
            self.not_answered(note, outcome);
        }
    }

    fn not_answered(&mut self, note: StatementNote, outcome: Outcome) {
        match note {
            StatementNote::None => {}
            StatementNote::ClientParse {
                name,
                statement,
                upstream,
            } => {
                if self
                    .client
                    .get(&name)
                    .is_some_and(|s| Arc::ptr_eq(s, &statement))
                {
                    self.client.remove(&name);
                }
                if upstream {
                    self.upstream.remove(&statement);
                }
            }
            StatementNote::ClientClose { name, statement } => {
                // Skipped: the server would not have closed it.
                if outcome == Outcome::Skipped && self.client.get(&name).is_none() {
                    let _ = self.client.insert(&name, statement);
                }
            }
            StatementNote::UpstreamParse { statement } => {
                self.upstream.remove(&statement);
            }
            StatementNote::UpstreamClose { statement } => {
                // Not closed: it is still there.
                self.upstream.insert(statement);
            }
        }
    }

    /// The message as received.
    fn pass(
        &mut self,
        message: &FrontendMessage<'_>,
        out: &mut BytesMut,
        correlator: &mut Correlator<StatementNote>,
    ) {
        message.encode(out);
        if let Some(request) = Request::of_message(message) {
            correlator.push(request, Action::Forward, StatementNote::None);
        }
    }

    /// Prepares `statement` on the connection if it lacks it (the answer dropped).
    fn ensure(
        &mut self,
        statement: &Arc<Statement>,
        out: &mut BytesMut,
        correlator: &mut Correlator<StatementNote>,
    ) {
        if self.upstream.contains(statement) {
            self.upstream.touch(statement);
            return;
        }
        self.make_room(out, correlator);
        statement.encode_parse(out);
        self.upstream.insert(statement.clone());
        let note = StatementNote::UpstreamParse {
            statement: statement.clone(),
        };
        correlator.push(Request::Parse, Action::Skip, note);
    }

    /// Closes the least recently used statement when the connection is full.
    fn make_room(&mut self, out: &mut BytesMut, correlator: &mut Correlator<StatementNote>) {
        if let Some(evicted) = self.upstream.make_room() {
            evicted.encode_close(out);
            let note = StatementNote::UpstreamClose { statement: evicted };
            correlator.push(Request::Close, Action::Skip, note);
        }
    }
}
