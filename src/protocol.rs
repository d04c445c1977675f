//! The rules of the query phase, as data.
//!
//! Everything that decides which response a request may get next lives in one table: the
//! requests a frontend sends, the stage each is in while its answer comes, which backend message
//! moves it on, and which one ends it. The table does not know which role is playing: the
//! [`Client`](crate::Client) checks the messages it receives against it, the
//! [`Server`](crate::Server) checks the answers its application gives. Both also follow
//! a second, smaller table: the frontend's side of a COPY.
//!
//! Rules of PostgreSQL's `postgres.c` and `walsender.c` sit around the table:
//!
//! - After an error in an extended-query request (Parse, Bind, Describe, Execute, Close), the
//!   backend discards every message until the next Sync.
//! - NoticeResponse, NotificationResponse and ParameterStatus may arrive at any time after
//!   start-up, whatever is in flight; they belong to no request.
//! - A walsender ends BASE_BACKUP's CopyOut, and the CopyBoth of `START_REPLICATION` on an
//!   older timeline, with a result set rather than CommandComplete, and may send CopyData
//!   after its own CopyDone (see the last rows).
//! - During COPY FROM STDIN the backend ignores Sync and Flush (a driver sends Parse, Bind,
//!   Execute, Sync before it knows the statement is a COPY). The client therefore sends again the
//!   Syncs queued right behind the request that started the COPY once its own data stream is over
//!   (after CopyDone or CopyFail, or when the backend's error ends the COPY first), as libpq
//!   does; the server side counts the ignored ones among its discarded messages.
//!
//! The tables below are generated from that data; a test keeps the two equal.
//!
#![doc = include_str!("protocol.md")]
//!
//! Protocol 2.0 follows a second, smaller table: see [`v2`].

pub mod v2;

/// A request: a frontend message the backend answers.
///
/// ```
/// use pgproto::protocol::Request;
/// use pgproto::{FrontendMessage, Parse};
///
/// let parse = FrontendMessage::Parse(Parse::decode(b"\0SELECT 1\0\0\0").unwrap());
/// assert_eq!(Request::of_message(&parse), Some(Request::Parse));
/// assert_eq!(Request::of_message(&FrontendMessage::Flush), None); // answered by nothing
/// assert!(Request::Parse.is_extended() && !Request::Sync.is_extended());
/// assert!(Request::Sync.ends_with_ready());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Request {
    /// Simple Query: any number of result sets, then ReadyForQuery.
    Query,
    /// Parse: ParseComplete.
    Parse,
    /// Bind: BindComplete.
    Bind,
    /// Describe of a statement: ParameterDescription, then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    /// Execute: DataRows, then CommandComplete, EmptyQueryResponse or PortalSuspended (or COPY).
    Execute,
    /// Close: CloseComplete.
    Close,
    /// Sync: ReadyForQuery.
    Sync,
    /// FunctionCall: FunctionCallResponse, then ReadyForQuery.
    FunctionCall,
}

impl Request {
    const ALL: [Self; 9] = [
        Self::Query,
        Self::Parse,
        Self::Bind,
        Self::DescribeStatement,
        Self::DescribePortal,
        Self::Execute,
        Self::Close,
        Self::Sync,
        Self::FunctionCall,
    ];

    /// The request a frontend message opens; `None` for the messages no answer is owed for
    /// (Flush, Terminate, the COPY data stream, start-up and authentication messages).
    pub fn of_message(message: &crate::FrontendMessage<'_>) -> Option<Self> {
        use crate::{FrontendMessage as M, Target};
        Some(match message {
            M::Query(_) => Self::Query,
            M::Parse(_) => Self::Parse,
            M::Bind(_) => Self::Bind,
            M::Describe(d) if d.target() == Target::Statement => Self::DescribeStatement,
            M::Describe(_) => Self::DescribePortal,
            M::Execute(_) => Self::Execute,
            M::Close(_) => Self::Close,
            M::Sync => Self::Sync,
            M::FunctionCall(_) => Self::FunctionCall,
            _ => return None,
        })
    }

    /// The name of the frontend message.
    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "Query",
            Self::Parse => "Parse",
            Self::Bind => "Bind",
            Self::DescribeStatement => "Describe (statement)",
            Self::DescribePortal => "Describe (portal)",
            Self::Execute => "Execute",
            Self::Close => "Close",
            Self::Sync => "Sync",
            Self::FunctionCall => "FunctionCall",
        }
    }

    /// Whether an error in this request makes the backend discard messages until Sync (Parse,
    /// Bind, Describe, Execute, Close).
    pub fn is_extended(self) -> bool {
        matches!(
            self,
            Self::Parse
                | Self::Bind
                | Self::DescribeStatement
                | Self::DescribePortal
                | Self::Execute
                | Self::Close
        )
    }

    /// Whether ReadyForQuery ends this request (Query, Sync, FunctionCall).
    pub fn ends_with_ready(self) -> bool {
        matches!(self, Self::Query | Self::Sync | Self::FunctionCall)
    }

    /// Whether the backend skips this request while it discards until Sync (all but Sync).
    pub(crate) fn skipped_after_error(self) -> bool {
        self != Self::Sync
    }
}

/// Where a request is while its answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Nothing answered yet (for Query: between result sets).
    #[default]
    Start,
    /// Describe (statement): ParameterDescription sent, RowDescription or NoData to come.
    Described,
    /// FunctionCall: the result (or an error) sent, ReadyForQuery to come. Query or Sync: an
    /// error ended it, only ReadyForQuery may follow (the rest of a query string is skipped).
    Answered,
    /// COPY FROM STDIN: the frontend sends data.
    CopyIn,
    /// COPY FROM STDIN after the frontend's CopyDone or CopyFail.
    CopyInDone,
    /// COPY TO STDOUT: the backend sends data.
    CopyOut,
    /// COPY TO STDOUT after the backend's CopyDone.
    CopyOutDone,
    /// CopyBoth: both send data.
    CopyBoth,
    /// CopyBoth after the backend's CopyDone: only the frontend still sends.
    CopyBothBackendDone,
    /// CopyBoth after the frontend's CopyDone: only the backend still sends.
    CopyBothFrontendDone,
    /// CopyBoth after both CopyDones.
    CopyBothDone,
}

impl Stage {
    const ALL: [Self; 11] = [
        Self::Start,
        Self::Described,
        Self::Answered,
        Self::CopyIn,
        Self::CopyInDone,
        Self::CopyOut,
        Self::CopyOutDone,
        Self::CopyBoth,
        Self::CopyBothBackendDone,
        Self::CopyBothFrontendDone,
        Self::CopyBothDone,
    ];

    /// A short description, for error messages and the diagram.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Described => "parameters described",
            Self::Answered => "answered, ReadyForQuery to come",
            Self::CopyIn => "COPY FROM STDIN",
            Self::CopyInDone => "COPY FROM STDIN, frontend done",
            Self::CopyOut => "COPY TO STDOUT",
            Self::CopyOutDone => "COPY TO STDOUT, backend done",
            Self::CopyBoth => "CopyBoth",
            Self::CopyBothBackendDone => "CopyBoth, backend done",
            Self::CopyBothFrontendDone => "CopyBoth, frontend done",
            Self::CopyBothDone => "CopyBoth, both done",
        }
    }

    /// Whether the request is in a COPY.
    pub(crate) fn in_copy(self) -> bool {
        !matches!(self, Self::Start | Self::Described | Self::Answered)
    }

    /// Whether the frontend's data stream of a COPY is open (it may send CopyData, CopyDone,
    /// CopyFail).
    pub(crate) fn frontend_sending(self) -> bool {
        matches!(
            self,
            Self::CopyIn | Self::CopyBoth | Self::CopyBothBackendDone
        )
    }
}

/// A backend message that answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Answer {
    ParseComplete,
    BindComplete,
    CloseComplete,
    ParameterDescription,
    RowDescription,
    NoData,
    DataRow,
    CommandComplete,
    EmptyQueryResponse,
    PortalSuspended,
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    CopyData,
    CopyDone,
    FunctionCallResponse,
    ErrorResponse,
    ReadyForQuery,
}

impl Answer {
    const ALL: [Self; 18] = [
        Self::ParseComplete,
        Self::BindComplete,
        Self::CloseComplete,
        Self::ParameterDescription,
        Self::RowDescription,
        Self::NoData,
        Self::DataRow,
        Self::CommandComplete,
        Self::EmptyQueryResponse,
        Self::PortalSuspended,
        Self::CopyInResponse,
        Self::CopyOutResponse,
        Self::CopyBothResponse,
        Self::CopyData,
        Self::CopyDone,
        Self::FunctionCallResponse,
        Self::ErrorResponse,
        Self::ReadyForQuery,
    ];

    /// The message's name as in the PostgreSQL documentation.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ParseComplete => "ParseComplete",
            Self::BindComplete => "BindComplete",
            Self::CloseComplete => "CloseComplete",
            Self::ParameterDescription => "ParameterDescription",
            Self::RowDescription => "RowDescription",
            Self::NoData => "NoData",
            Self::DataRow => "DataRow",
            Self::CommandComplete => "CommandComplete",
            Self::EmptyQueryResponse => "EmptyQueryResponse",
            Self::PortalSuspended => "PortalSuspended",
            Self::CopyInResponse => "CopyInResponse",
            Self::CopyOutResponse => "CopyOutResponse",
            Self::CopyBothResponse => "CopyBothResponse",
            Self::CopyData => "CopyData",
            Self::CopyDone => "CopyDone",
            Self::FunctionCallResponse => "FunctionCallResponse",
            Self::ErrorResponse => "ErrorResponse",
            Self::ReadyForQuery => "ReadyForQuery",
        }
    }

    /// The answer a backend message is, if it is one (by type byte).
    pub(crate) fn of_tag(tag: u8) -> Option<Self> {
        use crate::message::backend::tag as t;
        Some(match tag {
            t::PARSE_COMPLETE => Self::ParseComplete,
            t::BIND_COMPLETE => Self::BindComplete,
            t::CLOSE_COMPLETE => Self::CloseComplete,
            t::PARAMETER_DESCRIPTION => Self::ParameterDescription,
            t::ROW_DESCRIPTION => Self::RowDescription,
            t::NO_DATA => Self::NoData,
            t::DATA_ROW => Self::DataRow,
            t::COMMAND_COMPLETE => Self::CommandComplete,
            t::EMPTY_QUERY_RESPONSE => Self::EmptyQueryResponse,
            t::PORTAL_SUSPENDED => Self::PortalSuspended,
            t::COPY_IN_RESPONSE => Self::CopyInResponse,
            t::COPY_OUT_RESPONSE => Self::CopyOutResponse,
            t::COPY_BOTH_RESPONSE => Self::CopyBothResponse,
            t::COPY_DATA => Self::CopyData,
            t::COPY_DONE => Self::CopyDone,
            t::FUNCTION_CALL_RESPONSE => Self::FunctionCallResponse,
            t::ERROR_RESPONSE => Self::ErrorResponse,
            t::READY_FOR_QUERY => Self::ReadyForQuery,
            _ => return None,
        })
    }
}

/// A message of the frontend's data stream during COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)] // the messages' own names
pub(crate) enum CopyStream {
    CopyData,
    CopyDone,
    CopyFail,
}

impl CopyStream {
    #[cfg_attr(not(test), allow(dead_code))]
    fn name(self) -> &'static str {
        match self {
            Self::CopyData => "CopyData",
            Self::CopyDone => "CopyDone",
            Self::CopyFail => "CopyFail",
        }
    }
}

/// What an answer does to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The request stays where it is (more answers follow).
    Stay,
    /// The request moves to another stage.
    Go(Stage),
    /// The request is answered.
    Done,
    /// The request failed: answered, and after an extended-query request the backend discards
    /// what follows until Sync.
    Failed,
    /// The COPY is over: a simple Query goes on (more statements may follow, then
    /// ReadyForQuery); an Execute is answered.
    CopyEnded,
    /// The COPY failed: a simple Query has only its ReadyForQuery to come (the rest of the query
    /// string is skipped); an Execute failed.
    CopyFailed,
}

impl Next {
    /// What `self` comes to for `request`, with the COPY outcomes resolved.
    #[inline]
    pub(crate) const fn resolve(self, request: Request) -> Self {
        match (self, request) {
            (Self::CopyEnded, Request::Query) => Self::Go(Stage::Start),
            (Self::CopyFailed, Request::Query) => Self::Go(Stage::Answered),
            (Self::CopyEnded, _) => Self::Done,
            (Self::CopyFailed, _) => Self::Failed,
            (other, _) => other,
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    fn describe(self) -> String {
        match self {
            Self::Stay => "stays".into(),
            Self::Go(s) => format!("→ {}", s.name()),
            Self::Done => "**ends the request**".into(),
            Self::Failed => "**fails the request**".into(),
            Self::CopyEnded => "ends the COPY".into(),
            Self::CopyFailed => "fails the COPY".into(),
        }
    }
}

/// A set of requests, one bit each.
type Requests = u16;

const fn bit(r: Request) -> Requests {
    1 << r as u8
}

const QUERY: Requests = bit(Request::Query);
const EXECUTE: Requests = bit(Request::Execute);
const EXTENDED: Requests = bit(Request::Parse)
    | bit(Request::Bind)
    | bit(Request::DescribeStatement)
    | bit(Request::DescribePortal)
    | bit(Request::Execute)
    | bit(Request::Close);
/// The requests that can turn into a COPY.
const COPY: Requests = QUERY | EXECUTE;

use Answer as A;
use Next as N;
use Request as R;
use Stage as S;

/// The backend's answers: which requests, in which stage, may get which message, and what it
/// does to them. Anything not listed is a protocol violation.
pub(crate) const TABLE: &[(Requests, Stage, Answer, Next)] = &[
    // Simple Query: result sets until ReadyForQuery; an error ends only the statement.
    (QUERY, S::Start, A::RowDescription, N::Stay),
    (QUERY, S::Start, A::DataRow, N::Stay),
    (QUERY, S::Start, A::CommandComplete, N::Stay),
    (QUERY, S::Start, A::EmptyQueryResponse, N::Stay),
    (QUERY, S::Start, A::ErrorResponse, N::Go(S::Answered)),
    (QUERY, S::Start, A::ReadyForQuery, N::Done),
    (QUERY, S::Answered, A::ReadyForQuery, N::Done),
    // The extended-query requests.
    (bit(R::Parse), S::Start, A::ParseComplete, N::Done),
    (bit(R::Bind), S::Start, A::BindComplete, N::Done),
    (bit(R::Close), S::Start, A::CloseComplete, N::Done),
    (
        bit(R::DescribeStatement),
        S::Start,
        A::ParameterDescription,
        N::Go(S::Described),
    ),
    (
        bit(R::DescribeStatement),
        S::Described,
        A::RowDescription,
        N::Done,
    ),
    (bit(R::DescribeStatement), S::Described, A::NoData, N::Done),
    (
        bit(R::DescribeStatement),
        S::Described,
        A::ErrorResponse,
        N::Failed,
    ),
    (bit(R::DescribePortal), S::Start, A::RowDescription, N::Done),
    (bit(R::DescribePortal), S::Start, A::NoData, N::Done),
    (EXECUTE, S::Start, A::DataRow, N::Stay),
    (EXECUTE, S::Start, A::CommandComplete, N::Done),
    (EXECUTE, S::Start, A::EmptyQueryResponse, N::Done),
    (EXECUTE, S::Start, A::PortalSuspended, N::Done),
    (EXTENDED, S::Start, A::ErrorResponse, N::Failed),
    // Sync: ReadyForQuery (after an error, for example a failed commit).
    (bit(R::Sync), S::Start, A::ErrorResponse, N::Go(S::Answered)),
    (bit(R::Sync), S::Answered, A::ReadyForQuery, N::Done),
    (bit(R::Sync), S::Start, A::ReadyForQuery, N::Done),
    // FunctionCall: one result or one error, then ReadyForQuery.
    (
        bit(R::FunctionCall),
        S::Start,
        A::FunctionCallResponse,
        N::Go(S::Answered),
    ),
    (
        bit(R::FunctionCall),
        S::Start,
        A::ErrorResponse,
        N::Go(S::Answered),
    ),
    (bit(R::FunctionCall), S::Answered, A::ReadyForQuery, N::Done),
    // COPY, started by a simple Query's statement or by an Execute.
    (COPY, S::Start, A::CopyInResponse, N::Go(S::CopyIn)),
    (COPY, S::Start, A::CopyOutResponse, N::Go(S::CopyOut)),
    (COPY, S::Start, A::CopyBothResponse, N::Go(S::CopyBoth)),
    (COPY, S::CopyIn, A::ErrorResponse, N::CopyFailed),
    (COPY, S::CopyInDone, A::CommandComplete, N::CopyEnded),
    (COPY, S::CopyInDone, A::ErrorResponse, N::CopyFailed),
    (COPY, S::CopyOut, A::CopyData, N::Stay),
    (COPY, S::CopyOut, A::CopyDone, N::Go(S::CopyOutDone)),
    (COPY, S::CopyOut, A::ErrorResponse, N::CopyFailed),
    (COPY, S::CopyOutDone, A::CommandComplete, N::CopyEnded),
    (COPY, S::CopyOutDone, A::ErrorResponse, N::CopyFailed),
    (COPY, S::CopyBoth, A::CopyData, N::Stay),
    (
        COPY,
        S::CopyBoth,
        A::CopyDone,
        N::Go(S::CopyBothBackendDone),
    ),
    (COPY, S::CopyBoth, A::ErrorResponse, N::CopyFailed),
    (
        COPY,
        S::CopyBothBackendDone,
        A::ErrorResponse,
        N::CopyFailed,
    ),
    (COPY, S::CopyBothFrontendDone, A::CopyData, N::Stay),
    (
        COPY,
        S::CopyBothFrontendDone,
        A::CopyDone,
        N::Go(S::CopyBothDone),
    ),
    (
        COPY,
        S::CopyBothFrontendDone,
        A::ErrorResponse,
        N::CopyFailed,
    ),
    (COPY, S::CopyBothDone, A::CommandComplete, N::CopyEnded),
    (COPY, S::CopyBothDone, A::ErrorResponse, N::CopyFailed),
    // A walsender (replication connections take simple Queries only) ends some COPYs with a
    // result set instead of CommandComplete: BASE_BACKUP sends the backup's end position right
    // after its CopyDone, and START_REPLICATION on a timeline that is not the latest sends the
    // next timeline after both CopyDones.
    (QUERY, S::CopyOutDone, A::RowDescription, N::Go(S::Start)),
    (QUERY, S::CopyBothDone, A::RowDescription, N::Go(S::Start)),
    // A walsender may still send CopyData after its own CopyDone (a keepalive, or the rest of
    // a transaction the output plugin is writing when the client's CopyDone arrives); libpq
    // drops such CopyData silently.
    (COPY, S::CopyBothBackendDone, A::CopyData, N::Stay),
    (COPY, S::CopyBothDone, A::CopyData, N::Stay),
];

/// The frontend's side of a COPY: which stages accept which message of its data stream.
/// During COPY FROM STDIN the backend ignores Flush and Sync.
pub(crate) const FRONTEND_TABLE: &[(Stage, CopyStream, Stage)] = &[
    (S::CopyIn, CopyStream::CopyData, S::CopyIn),
    (S::CopyIn, CopyStream::CopyDone, S::CopyInDone),
    (S::CopyIn, CopyStream::CopyFail, S::CopyInDone),
    (S::CopyBoth, CopyStream::CopyData, S::CopyBoth),
    (S::CopyBoth, CopyStream::CopyDone, S::CopyBothFrontendDone),
    (S::CopyBoth, CopyStream::CopyFail, S::CopyBothFrontendDone),
    (
        S::CopyBothBackendDone,
        CopyStream::CopyData,
        S::CopyBothBackendDone,
    ),
    (
        S::CopyBothBackendDone,
        CopyStream::CopyDone,
        S::CopyBothDone,
    ),
    (
        S::CopyBothBackendDone,
        CopyStream::CopyFail,
        S::CopyBothDone,
    ),
];

const N_REQUESTS: usize = Request::ALL.len();
const N_STAGES: usize = Stage::ALL.len();
const N_ANSWERS: usize = Answer::ALL.len();

/// [`TABLE`] as a lookup array, built at compile time, each rule as written.
const RULES: [[[Option<Next>; N_ANSWERS]; N_STAGES]; N_REQUESTS] = {
    let mut t = [[[None; N_ANSWERS]; N_STAGES]; N_REQUESTS];
    let mut i = 0;
    while i < TABLE.len() {
        let (requests, stage, answer, next) = TABLE[i];
        let mut r = 0;
        while r < N_REQUESTS {
            if requests & (1 << r) != 0 {
                assert!(
                    t[r][stage as usize][answer as usize].is_none(),
                    "a rule is listed twice"
                );
                t[r][stage as usize][answer as usize] = Some(next);
            }
            r += 1;
        }
        i += 1;
    }
    t
};

/// [`RULES`] with the COPY outcomes resolved for each request ([`Next::resolve`]): one load per
/// answer checked.
static LOOKUP: [[[Option<Next>; N_ANSWERS]; N_STAGES]; N_REQUESTS] = {
    let mut t = RULES;
    let mut r = 0;
    while r < N_REQUESTS {
        let mut s = 0;
        while s < N_STAGES {
            let mut a = 0;
            while a < N_ANSWERS {
                if let Some(n) = t[r][s][a] {
                    t[r][s][a] = Some(n.resolve(Request::ALL[r]));
                }
                a += 1;
            }
            s += 1;
        }
        r += 1;
    }
    t
};

/// What `answer` does to `request` in `stage`, the COPY outcomes resolved ([`Next::resolve`]);
/// `None` if the protocol does not allow it.
#[inline]
pub(crate) fn next(request: Request, stage: Stage, answer: Answer) -> Option<Next> {
    LOOKUP[request as usize][stage as usize][answer as usize]
}

/// The rule of the table for `answer` to `request` in `stage`, as written (a COPY's end not
/// yet resolved for the request): what the diagram shows.
#[cfg_attr(not(test), allow(dead_code))]
fn rule(request: Request, stage: Stage, answer: Answer) -> Option<Next> {
    RULES[request as usize][stage as usize][answer as usize]
}

/// The stage a message of the frontend's COPY stream leads to; `None` if not allowed.
pub(crate) fn next_frontend(stage: Stage, message: CopyStream) -> Option<Stage> {
    FRONTEND_TABLE
        .iter()
        .find(|(s, m, _)| *s == stage && *m == message)
        .map(|(_, _, n)| *n)
}

/// The tables as Markdown: the text of `protocol.md`, shown in the module documentation.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn diagram() -> String {
    let mut out =
        String::from("| request | stage | backend message | effect |\n| --- | --- | --- | --- |\n");
    for r in Request::ALL {
        for s in Stage::ALL {
            for a in Answer::ALL {
                if let Some(n) = rule(r, s, a) {
                    out.push_str(&format!(
                        "| {} | {} | {} | {} |\n",
                        r.name(),
                        s.name(),
                        a.name(),
                        n.describe()
                    ));
                }
            }
        }
    }
    out.push_str(
        "\nThe frontend's data stream during COPY (Flush and Sync are ignored during COPY FROM \
         STDIN):\n\n| stage | frontend message | next stage |\n| --- | --- | --- |\n",
    );
    for (s, m, n) in FRONTEND_TABLE {
        out.push_str(&format!("| {} | {} | {} |\n", s.name(), m.name(), n.name()));
    }
    out.push_str(
        "\nA COPY that ends returns a simple Query to its start (more statements may follow, \
         then ReadyForQuery) and ends an Execute; a COPY that fails leaves a simple Query only \
         its ReadyForQuery and fails an Execute. After a failed extended-query request, the \
         backend discards every message until Sync.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_diagram_is_the_table() {
        let generated = diagram();
        if std::env::var_os("PGPROTO_WRITE_DIAGRAM").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/protocol.md"),
                &generated,
            )
            .unwrap();
        }
        assert_eq!(
            include_str!("protocol.md"),
            generated,
            "src/protocol.md is out of date: run \
             `PGPROTO_WRITE_DIAGRAM=1 cargo test --lib protocol` and commit it"
        );
    }

    #[test]
    fn every_request_can_end() {
        // From its start, every request reaches Done (or Failed) by some answer sequence.
        for r in Request::ALL {
            let mut seen = vec![Stage::Start];
            let mut ends = false;
            let mut i = 0;
            while i < seen.len() {
                let s = seen[i];
                for a in Answer::ALL {
                    match next(r, s, a) {
                        Some(Next::Done | Next::Failed) => ends = true,
                        Some(Next::Go(t)) if !seen.contains(&t) => seen.push(t),
                        _ => {}
                    }
                }
                for m in [
                    CopyStream::CopyData,
                    CopyStream::CopyDone,
                    CopyStream::CopyFail,
                ] {
                    if let Some(t) = next_frontend(s, m) {
                        if !seen.contains(&t) {
                            seen.push(t);
                        }
                    }
                }
                i += 1;
            }
            assert!(ends, "{} never ends", r.name());
        }
    }

    #[test]
    fn answers_by_tag() {
        for a in Answer::ALL {
            let tag = match a {
                Answer::ParseComplete => b'1',
                Answer::BindComplete => b'2',
                Answer::CloseComplete => b'3',
                Answer::ParameterDescription => b't',
                Answer::RowDescription => b'T',
                Answer::NoData => b'n',
                Answer::DataRow => b'D',
                Answer::CommandComplete => b'C',
                Answer::EmptyQueryResponse => b'I',
                Answer::PortalSuspended => b's',
                Answer::CopyInResponse => b'G',
                Answer::CopyOutResponse => b'H',
                Answer::CopyBothResponse => b'W',
                Answer::CopyData => b'd',
                Answer::CopyDone => b'c',
                Answer::FunctionCallResponse => b'V',
                Answer::ErrorResponse => b'E',
                Answer::ReadyForQuery => b'Z',
            };
            assert_eq!(Answer::of_tag(tag), Some(a));
        }
        assert_eq!(Answer::of_tag(b'N'), None);
    }
}
