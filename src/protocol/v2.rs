//! The rules of the query phase of protocol 2.0: the second, smaller table.
//!
//! A 2.0 frontend sends one kind of request at a time: a Query (one or more statements) or a
//! FunctionCall. Each ends with ReadyForQuery; a statement's answer is CursorResponse and
//! RowDescription before its rows, CompletedResponse after them; COPY is raw lines ended by
//! `\.`, in either direction. As in 3.0, the [`Client`](crate::Client) checks what it receives
//! against the table and the [`Server`](crate::Server) checks the answers its application gives
//! (each 3.0-style answer is sent as its 2.0 form: a RowDescription as CursorResponse and
//! RowDescription, a DataRow as AsciiRow, ...). NoticeResponse and NotificationResponse belong
//! to no request and may come at any time after start-up.
//!
//! Two things PostgreSQL 7.4 to 13 do that the table follows: during COPY TO STDOUT nothing but
//! the data is sent (an error first ends the data with two newlines and `\.`, then comes as
//! ErrorResponse); and an error in COPY FROM STDIN before the server has read the frontend's
//! `\.` cannot be recovered from, since the rest of the data has no framing to skip by: the
//! ErrorResponse is followed by a FATAL one ("terminating connection because protocol
//! synchronization was lost") and the end of the connection. An error after the `\.` is
//! followed by ReadyForQuery. A frontend that sent its `\.` before the error arrived cannot
//! tell which: after an error in COPY FROM STDIN, the table allows both.
//!
//! The tables below are generated from the data; a test keeps the two equal.
//!
#![doc = include_str!("v2.md")]

use crate::v2::BackendMessage;

/// A 2.0 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Request {
    /// Query: statements' results, then ReadyForQuery.
    Query,
    /// FunctionCall: the result (or an error), then ReadyForQuery.
    FunctionCall,
}

impl Request {
    const ALL: [Self; 2] = [Self::Query, Self::FunctionCall];

    /// The name of the frontend message.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Query => "Query",
            Self::FunctionCall => "FunctionCall",
        }
    }
}

/// Where a 2.0 request is while its answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Nothing answered yet, or between a Query's statements.
    #[default]
    Start,
    /// A RowDescription came: rows until CompletedResponse.
    Rows,
    /// Answered (an error, or a function's result): ReadyForQuery to come.
    Answered,
    /// COPY FROM STDIN: the frontend sends lines.
    CopyIn,
    /// COPY FROM STDIN after the frontend's `\.`.
    CopyInDone,
    /// COPY FROM STDIN failed: ReadyForQuery to come, or, if the server lost synchronisation,
    /// a FATAL error and the end of the connection.
    CopyInFailed,
    /// COPY TO STDOUT: the backend sends lines.
    CopyOut,
    /// COPY TO STDOUT after the backend's `\.`.
    CopyOutDone,
}

impl Stage {
    const ALL: [Self; 8] = [
        Self::Start,
        Self::Rows,
        Self::Answered,
        Self::CopyIn,
        Self::CopyInDone,
        Self::CopyInFailed,
        Self::CopyOut,
        Self::CopyOutDone,
    ];

    /// A short description, for error messages and the diagram.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Rows => "rows",
            Self::Answered => "answered, ReadyForQuery to come",
            Self::CopyIn => "COPY FROM STDIN",
            Self::CopyInDone => "COPY FROM STDIN, frontend done",
            Self::CopyInFailed => "COPY FROM STDIN failed",
            Self::CopyOut => "COPY TO STDOUT",
            Self::CopyOutDone => "COPY TO STDOUT, backend done",
        }
    }
}

/// A 2.0 backend message that answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Answer {
    CursorResponse,
    RowDescription,
    AsciiRow,
    BinaryRow,
    CompletedResponse,
    EmptyQueryResponse,
    ErrorResponse,
    CopyInResponse,
    CopyOutResponse,
    CopyDataRow,
    CopyDataEnd,
    FunctionResultResponse,
    FunctionVoidResponse,
    ReadyForQuery,
}

impl Answer {
    const ALL: [Self; 14] = [
        Self::CursorResponse,
        Self::RowDescription,
        Self::AsciiRow,
        Self::BinaryRow,
        Self::CompletedResponse,
        Self::EmptyQueryResponse,
        Self::ErrorResponse,
        Self::CopyInResponse,
        Self::CopyOutResponse,
        Self::CopyDataRow,
        Self::CopyDataEnd,
        Self::FunctionResultResponse,
        Self::FunctionVoidResponse,
        Self::ReadyForQuery,
    ];

    /// The message's name as in the 2.0 documentation.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::CursorResponse => "CursorResponse",
            Self::RowDescription => "RowDescription",
            Self::AsciiRow => "AsciiRow",
            Self::BinaryRow => "BinaryRow",
            Self::CompletedResponse => "CompletedResponse",
            Self::EmptyQueryResponse => "EmptyQueryResponse",
            Self::ErrorResponse => "ErrorResponse",
            Self::CopyInResponse => "CopyInResponse",
            Self::CopyOutResponse => "CopyOutResponse",
            Self::CopyDataRow => "CopyDataRows line",
            Self::CopyDataEnd => "CopyDataRows end (`\\.`)",
            Self::FunctionResultResponse => "FunctionResultResponse",
            Self::FunctionVoidResponse => "FunctionVoidResponse",
            Self::ReadyForQuery => "ReadyForQuery",
        }
    }

    /// The answer a backend message is, if it is one.
    pub(crate) fn of(m: &BackendMessage) -> Option<Self> {
        use BackendMessage as B;
        Some(match m {
            B::CursorResponse(_) => Self::CursorResponse,
            B::RowDescription(_) => Self::RowDescription,
            B::AsciiRow(_) => Self::AsciiRow,
            B::BinaryRow(_) => Self::BinaryRow,
            B::CompletedResponse(_) => Self::CompletedResponse,
            B::EmptyQueryResponse => Self::EmptyQueryResponse,
            B::ErrorResponse(_) => Self::ErrorResponse,
            B::CopyInResponse => Self::CopyInResponse,
            B::CopyOutResponse => Self::CopyOutResponse,
            B::CopyDataRow(_) => Self::CopyDataRow,
            B::CopyDataEnd => Self::CopyDataEnd,
            B::FunctionResultResponse(_) => Self::FunctionResultResponse,
            B::FunctionVoidResponse => Self::FunctionVoidResponse,
            B::ReadyForQuery => Self::ReadyForQuery,
            _ => return None,
        })
    }
}

/// What an answer does to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// More answers follow in the same stage.
    Stay,
    /// The request moves to another stage.
    Go(Stage),
    /// The request is answered (ReadyForQuery).
    Done,
}

impl Next {
    fn describe(self) -> String {
        match self {
            Self::Stay => "stays".into(),
            Self::Go(s) => format!("→ {}", s.name()),
            Self::Done => "**ends the request**".into(),
        }
    }
}

/// A set of requests, one bit each.
type Requests = u8;

const fn bit(r: Request) -> Requests {
    1 << r as u8
}

const QUERY: Requests = bit(Request::Query);
const CALL: Requests = bit(Request::FunctionCall);

use Answer as A;
use Next as N;
use Stage as S;

/// The backend's answers in 2.0: which request, in which stage, may get which message, and
/// what it does. Anything not listed is a protocol violation.
pub(crate) const TABLE: &[(Requests, Stage, Answer, Next)] = &[
    // Query: for each statement CursorResponse, RowDescription, rows, CompletedResponse (or
    // only CompletedResponse); an error ends the string.
    (QUERY, S::Start, A::CursorResponse, N::Stay),
    (QUERY, S::Start, A::RowDescription, N::Go(S::Rows)),
    (QUERY, S::Start, A::CompletedResponse, N::Stay),
    (QUERY, S::Start, A::EmptyQueryResponse, N::Stay),
    (QUERY, S::Start, A::ErrorResponse, N::Go(S::Answered)),
    (QUERY, S::Start, A::ReadyForQuery, N::Done),
    (QUERY, S::Rows, A::AsciiRow, N::Stay),
    (QUERY, S::Rows, A::BinaryRow, N::Stay),
    (QUERY, S::Rows, A::CompletedResponse, N::Go(S::Start)),
    (QUERY, S::Rows, A::ErrorResponse, N::Go(S::Answered)),
    (QUERY, S::Answered, A::ReadyForQuery, N::Done),
    // COPY, started by a statement of a Query.
    (QUERY, S::Start, A::CopyInResponse, N::Go(S::CopyIn)),
    (QUERY, S::Start, A::CopyOutResponse, N::Go(S::CopyOut)),
    (QUERY, S::CopyIn, A::ErrorResponse, N::Go(S::CopyInFailed)),
    (QUERY, S::CopyInFailed, A::ErrorResponse, N::Stay),
    (QUERY, S::CopyInDone, A::CompletedResponse, N::Go(S::Start)),
    (
        QUERY,
        S::CopyInDone,
        A::ErrorResponse,
        N::Go(S::CopyInFailed),
    ),
    (QUERY, S::CopyInFailed, A::ReadyForQuery, N::Done),
    (QUERY, S::CopyOut, A::CopyDataRow, N::Stay),
    (QUERY, S::CopyOut, A::CopyDataEnd, N::Go(S::CopyOutDone)),
    (QUERY, S::CopyOutDone, A::CompletedResponse, N::Go(S::Start)),
    (QUERY, S::CopyOutDone, A::ErrorResponse, N::Go(S::Answered)),
    // FunctionCall: one result or one error, then ReadyForQuery.
    (
        CALL,
        S::Start,
        A::FunctionResultResponse,
        N::Go(S::Answered),
    ),
    (CALL, S::Start, A::FunctionVoidResponse, N::Go(S::Answered)),
    (CALL, S::Start, A::ErrorResponse, N::Go(S::Answered)),
    (CALL, S::Answered, A::ReadyForQuery, N::Done),
];

/// A message of the frontend's CopyDataRows stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CopyStream {
    /// A line.
    Row,
    /// The line `\.`.
    End,
}

/// The frontend's side of COPY FROM STDIN.
pub(crate) const FRONTEND_TABLE: &[(Stage, CopyStream, Stage)] = &[
    (S::CopyIn, CopyStream::Row, S::CopyIn),
    (S::CopyIn, CopyStream::End, S::CopyInDone),
];

const N_REQUESTS: usize = Request::ALL.len();
const N_STAGES: usize = Stage::ALL.len();
const N_ANSWERS: usize = Answer::ALL.len();

/// [`TABLE`] as a lookup array, built at compile time.
static LOOKUP: [[[Option<Next>; N_ANSWERS]; N_STAGES]; N_REQUESTS] = {
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

/// What `answer` does to `request` in `stage`; `None` if 2.0 does not allow it.
pub(crate) fn next(request: Request, stage: Stage, answer: Answer) -> Option<Next> {
    LOOKUP[request as usize][stage as usize][answer as usize]
}

/// The stage a line of the frontend's COPY data leads to; `None` if not allowed.
pub(crate) fn next_frontend(stage: Stage, message: CopyStream) -> Option<Stage> {
    FRONTEND_TABLE
        .iter()
        .find(|(s, m, _)| *s == stage && *m == message)
        .map(|(_, _, n)| *n)
}

/// The tables as Markdown: the text of `v2.md`, shown in the module documentation.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn diagram() -> String {
    let mut out =
        String::from("| request | stage | backend message | effect |\n| --- | --- | --- | --- |\n");
    for r in Request::ALL {
        for s in Stage::ALL {
            for a in Answer::ALL {
                if let Some(n) = next(r, s, a) {
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
        "\nThe frontend's data during COPY FROM STDIN:\n\n\
         | stage | frontend message | next stage |\n| --- | --- | --- |\n",
    );
    for (s, m, n) in FRONTEND_TABLE {
        let m = match m {
            CopyStream::Row => "CopyDataRows line",
            CopyStream::End => "CopyDataRows end (`\\.`)",
        };
        out.push_str(&format!("| {} | {m} | {} |\n", s.name(), n.name()));
    }
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
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/protocol/v2.md"),
                &generated,
            )
            .unwrap();
        }
        assert_eq!(
            include_str!("v2.md"),
            generated,
            "src/protocol/v2.md is out of date: run \
             `PGPROTO_WRITE_DIAGRAM=1 cargo test --lib protocol` and commit it"
        );
    }

    #[test]
    fn every_request_can_end_and_every_stage_is_reached() {
        let mut reached = vec![Stage::Start];
        for r in Request::ALL {
            let mut seen = vec![Stage::Start];
            let mut ends = false;
            let mut i = 0;
            while i < seen.len() {
                let s = seen[i];
                let mut go = |t: Stage| {
                    if !seen.contains(&t) {
                        seen.push(t);
                    }
                };
                for a in Answer::ALL {
                    match next(r, s, a) {
                        Some(Next::Done) => ends = true,
                        Some(Next::Go(t)) => go(t),
                        _ => {}
                    }
                }
                for m in [CopyStream::Row, CopyStream::End] {
                    if let Some(t) = next_frontend(s, m) {
                        go(t);
                    }
                }
                i += 1;
            }
            assert!(ends, "{} never ends", r.name());
            reached.extend(seen);
        }
        for s in Stage::ALL {
            assert!(reached.contains(&s), "{} is never reached", s.name());
        }
    }

    #[test]
    fn answers_of_messages() {
        use crate::v2::Text;
        assert_eq!(
            Answer::of(&BackendMessage::CompletedResponse(Text::new("X").unwrap())),
            Some(Answer::CompletedResponse)
        );
        assert_eq!(
            Answer::of(&BackendMessage::ReadyForQuery),
            Some(Answer::ReadyForQuery)
        );
        assert_eq!(
            Answer::of(&BackendMessage::NoticeResponse(Text::new("N").unwrap())),
            None
        );
    }
}
