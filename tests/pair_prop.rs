//! Property tests of a `Client` and a `Server` of this crate talking to each other in memory (the
//! shared `Pair` of `tests/support/pair.rs`), through the public API only, with every transfer
//! split at random points (down to one byte).
//!
//! The server side answers through a tiny scripted "database" ([`Db`]): statements are named by
//! their text (`SELECT n`, `BEGIN`, `COMMIT`, `ROLLBACK`, `FAIL`, `FAIL LATER`, `COPY IN`,
//! `COPY OUT n`, the empty query), prepared statements and portals are tracked as PostgreSQL does
//! closely enough to produce PortalSuspended, 26000/34000/42P03/42P05 errors and 25P02 in an
//! aborted transaction, and the transaction status (I/T/E) follows BEGIN/COMMIT/ROLLBACK and errors.
//!
//! The expected responses come from a second `Db` driven by the requests the client sent, with
//! the protocol's discard-until-Sync rule applied by the test itself: the machines' own
//! bookkeeping (which request each response belongs to, which requests the server skips) is what
//! is checked. Invariants: every request gets exactly its responses, in order, or `Skipped`; the
//! asynchronous messages the server injects (notices, notifications, ParameterStatus, both when
//! idle and in the middle of responses) reach the client in order; both sides agree on the
//! transaction status; `pending_requests()` returns to 0; neither side fails.

use std::collections::BTreeMap;

mod support;

use pgproto::auth::{md5, ScramVerifier};
use pgproto::{
    AuthError, AuthMethod, BackendMessage, Bind, Client, ClientConfig, ClientEvent, CopyResponse,
    Encryption, Error, ErrorFields, FieldCode, FieldDescription, Format, FrontendMessage,
    FunctionCall, ProtocolVersion, RequestId, RowDescription, Server, ServerAuth, ServerConfig,
    ServerEvent, Target, TransactionStatus,
};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The scripted database
// ---------------------------------------------------------------------------------------------

/// A statement, named by its SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stmt {
    Empty,
    Begin,
    Commit,
    Rollback,
    /// Returns `n` rows.
    Select(u8),
    /// Fails when parsed (extended) or run (simple).
    Fail,
    /// Parses, then fails when run.
    FailLater,
    CopyIn,
    CopyOut(u8),
}

impl Stmt {
    fn sql(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::Begin => "BEGIN".into(),
            Self::Commit => "COMMIT".into(),
            Self::Rollback => "ROLLBACK".into(),
            Self::Select(n) => format!("SELECT {n}"),
            Self::Fail => "FAIL".into(),
            Self::FailLater => "FAIL LATER".into(),
            Self::CopyIn => "COPY IN".into(),
            Self::CopyOut(n) => format!("COPY OUT {n}"),
        }
    }

    fn parse(sql: &str) -> Self {
        let num = |s: &str| s.parse::<u8>().expect("a row count");
        match sql {
            "" => Self::Empty,
            "BEGIN" => Self::Begin,
            "COMMIT" => Self::Commit,
            "ROLLBACK" => Self::Rollback,
            "FAIL" => Self::Fail,
            "FAIL LATER" => Self::FailLater,
            "COPY IN" => Self::CopyIn,
            s if s.starts_with("SELECT ") => Self::Select(num(&s[7..])),
            s if s.starts_with("COPY OUT ") => Self::CopyOut(num(&s[9..])),
            other => panic!("the database does not know {other:?}"),
        }
    }

    /// Transaction-ending statements run even in an aborted transaction.
    fn ends_transaction(&self) -> bool {
        matches!(self, Self::Commit | Self::Rollback)
    }
}

/// A response as the test compares it (the client's `Response`/`Skipped` events are mapped to
/// this, and the database produces it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resp {
    RowDescription,
    DataRow(Vec<u8>),
    Command(String),
    EmptyQuery,
    Error(String),
    ParseComplete,
    BindComplete,
    ParameterDescription,
    NoData,
    Suspended,
    CloseComplete,
    Ready(TransactionStatus),
    CopyIn,
    CopyOut,
    CopyData(Vec<u8>),
    CopyDone,
    FunctionResult(Option<Vec<u8>>),
    Skipped,
}

#[derive(Debug, Clone)]
struct Portal {
    stmt: Stmt,
    sent: u8,
}

#[derive(Debug)]
struct Db {
    status: TransactionStatus,
    statements: BTreeMap<String, Stmt>,
    portals: BTreeMap<String, Portal>,
    /// Rows received so far by a COPY FROM STDIN in progress.
    copy_in: Option<u32>,
}

impl Db {
    fn new() -> Self {
        Self {
            status: TransactionStatus::Idle,
            statements: BTreeMap::new(),
            portals: BTreeMap::new(),
            copy_in: None,
        }
    }

    fn error(&mut self, out: &mut Vec<Resp>, code: &str) {
        if self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
        out.push(Resp::Error(code.into()));
    }

    fn aborted(&self, stmt: &Stmt) -> bool {
        self.status == TransactionStatus::Failed && !stmt.ends_transaction()
    }

    /// The end of an implicit transaction (a Sync or a simple Query outside a block): portals go.
    fn end_implicit(&mut self) {
        if self.status == TransactionStatus::Idle {
            self.portals.clear();
        }
    }

    /// Runs one statement; returns `false` if it failed.
    fn run(&mut self, stmt: &Stmt, out: &mut Vec<Resp>) -> bool {
        if self.aborted(stmt) {
            self.error(out, "25P02");
            return false;
        }
        match stmt {
            Stmt::Empty => out.push(Resp::EmptyQuery),
            Stmt::Begin => {
                if self.status == TransactionStatus::Idle {
                    self.status = TransactionStatus::InTransaction;
                }
                out.push(Resp::Command("BEGIN".into()));
            }
            Stmt::Commit | Stmt::Rollback => {
                let tag = if *stmt == Stmt::Commit && self.status != TransactionStatus::Failed {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                self.status = TransactionStatus::Idle;
                self.portals.clear();
                out.push(Resp::Command(tag.into()));
            }
            Stmt::Select(n) => {
                out.push(Resp::RowDescription);
                for i in 0..*n {
                    out.push(Resp::DataRow(i.to_string().into_bytes()));
                }
                out.push(Resp::Command(format!("SELECT {n}")));
            }
            Stmt::Fail | Stmt::FailLater => {
                self.error(out, "42P01");
                return false;
            }
            Stmt::CopyIn => {
                self.copy_in = Some(0);
                out.push(Resp::CopyIn);
            }
            Stmt::CopyOut(n) => {
                out.push(Resp::CopyOut);
                for i in 0..*n {
                    out.push(Resp::CopyData(format!("{i}\n").into_bytes()));
                }
                out.push(Resp::CopyDone);
                out.push(Resp::Command(format!("COPY {n}")));
            }
        }
        true
    }

    fn query(&mut self, sql: &str) -> Vec<Resp> {
        let mut out = Vec::new();
        // A simple Query drops the unnamed statement, as PostgreSQL does.
        self.statements.remove("");
        if sql.is_empty() {
            out.push(Resp::EmptyQuery);
        } else {
            for s in sql.split("; ") {
                let stmt = Stmt::parse(s);
                if !self.run(&stmt, &mut out) {
                    break;
                }
                if self.copy_in.is_some() {
                    // The Query continues when the client ends the COPY.
                    return out;
                }
            }
        }
        self.end_implicit();
        out.push(Resp::Ready(self.status));
        out
    }

    fn parse(&mut self, name: &str, sql: &str) -> Vec<Resp> {
        let mut out = Vec::new();
        let stmt = Stmt::parse(sql);
        if self.aborted(&stmt) {
            self.error(&mut out, "25P02");
        } else if stmt == Stmt::Fail {
            self.error(&mut out, "42601");
        } else if !name.is_empty() && self.statements.contains_key(name) {
            self.error(&mut out, "42P05");
        } else {
            self.statements.insert(name.into(), stmt);
            out.push(Resp::ParseComplete);
        }
        out
    }

    fn bind(&mut self, portal: &str, statement: &str) -> Vec<Resp> {
        let mut out = Vec::new();
        match self.statements.get(statement).cloned() {
            None => self.error(&mut out, "26000"),
            Some(stmt) if self.aborted(&stmt) => self.error(&mut out, "25P02"),
            Some(_) if !portal.is_empty() && self.portals.contains_key(portal) => {
                self.error(&mut out, "42P03")
            }
            Some(stmt) => {
                self.portals.insert(portal.into(), Portal { stmt, sent: 0 });
                out.push(Resp::BindComplete);
            }
        }
        out
    }

    fn describe(&mut self, target: Target, name: &str) -> Vec<Resp> {
        let mut out = Vec::new();
        let stmt = match target {
            Target::Statement => self.statements.get(name).cloned(),
            Target::Portal => self.portals.get(name).map(|p| p.stmt.clone()),
        };
        let Some(stmt) = stmt else {
            let code = match target {
                Target::Statement => "26000",
                Target::Portal => "34000",
            };
            self.error(&mut out, code);
            return out;
        };
        if target == Target::Statement {
            out.push(Resp::ParameterDescription);
        }
        out.push(match stmt {
            Stmt::Select(_) => Resp::RowDescription,
            _ => Resp::NoData,
        });
        out
    }

    fn execute(&mut self, portal: &str, max_rows: i32) -> Vec<Resp> {
        let mut out = Vec::new();
        let Some(p) = self.portals.get(portal).cloned() else {
            self.error(&mut out, "34000");
            return out;
        };
        if self.aborted(&p.stmt) {
            self.error(&mut out, "25P02");
            return out;
        }
        match p.stmt {
            Stmt::Select(n) => {
                let left = n - p.sent;
                let k = if max_rows > 0 {
                    left.min(max_rows as u8)
                } else {
                    left
                };
                for i in p.sent..p.sent + k {
                    out.push(Resp::DataRow(i.to_string().into_bytes()));
                }
                if let Some(p) = self.portals.get_mut(portal) {
                    p.sent += k;
                }
                // As PostgreSQL: suspended whenever the row limit was reached, even if no row is
                // left; the next Execute then completes with the rest (maybe none).
                if max_rows > 0 && i32::from(k) == max_rows {
                    out.push(Resp::Suspended);
                } else {
                    out.push(Resp::Command(format!("SELECT {k}")));
                }
            }
            stmt => {
                self.run(&stmt, &mut out);
            }
        }
        out
    }

    fn close(&mut self, target: Target, name: &str) -> Vec<Resp> {
        match target {
            Target::Statement => self.statements.remove(name).map(drop),
            Target::Portal => self.portals.remove(name).map(drop),
        };
        vec![Resp::CloseComplete]
    }

    fn sync(&mut self) -> Vec<Resp> {
        self.end_implicit();
        vec![Resp::Ready(self.status)]
    }

    fn function_call(&mut self, arg: Option<&[u8]>) -> Vec<Resp> {
        let mut out = Vec::new();
        if self.status == TransactionStatus::Failed {
            self.error(&mut out, "25P02");
        } else {
            out.push(Resp::FunctionResult(arg.map(<[u8]>::to_vec)));
        }
        self.end_implicit();
        out.push(Resp::Ready(self.status));
        out
    }

    fn copy_data(&mut self) {
        if let Some(n) = &mut self.copy_in {
            *n += 1;
        }
    }

    fn copy_end(&mut self, failed: bool) -> Vec<Resp> {
        let rows = self.copy_in.take().expect("in COPY FROM STDIN");
        let mut out = Vec::new();
        if failed {
            self.error(&mut out, "57014");
        } else {
            out.push(Resp::Command(format!("COPY {rows}")));
        }
        self.end_implicit();
        out.push(Resp::Ready(self.status));
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// An asynchronous message the server sends on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Async {
    Notice(String),
    Notification(i32, String, String),
    Parameter(String, String),
}

/// One request the client sends in a pipelined batch.
#[derive(Debug, Clone)]
enum Req {
    /// A simple Query of these statements (none: the empty query).
    Query(Vec<Stmt>),
    Parse(&'static str, Stmt),
    Bind(&'static str, &'static str),
    Describe(Target, &'static str),
    Execute(&'static str, i32),
    Close(Target, &'static str),
    Sync,
    Flush,
    FunctionCall(Option<Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Op {
    /// Requests sent back to back, then the pair is driven until it settles.
    Batch(Vec<Req>),
    /// COPY FROM STDIN with these CopyData chunks, ended by CopyDone or (with `fail`) CopyFail.
    CopyIn { chunks: Vec<Vec<u8>>, fail: bool },
    /// COPY TO STDOUT of `n` rows.
    CopyOut(u8),
    /// The server sends an asynchronous message while idle.
    Inject(Async),
}

fn async_msg() -> impl Strategy<Value = Async> {
    prop_oneof![
        "[a-z ]{0,12}".prop_map(Async::Notice),
        (1..1000i32, "[a-z]{1,6}", "[a-z0-9]{0,8}")
            .prop_map(|(p, c, m)| Async::Notification(p, c, m)),
        (
            "(TimeZone|application_name|is_superuser)",
            "[A-Za-z/]{0,10}"
        )
            .prop_map(|(k, v)| Async::Parameter(k, v)),
    ]
}

/// Statements of a simple Query. COPY TO STDOUT may be pipelined like any other; COPY FROM STDIN
/// is an op of its own (the client must wait for CopyInResponse before it sends anything else).
fn query_stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        3 => (0..4u8).prop_map(Stmt::Select),
        1 => (0..3u8).prop_map(Stmt::CopyOut),
        2 => Just(Stmt::Begin),
        1 => Just(Stmt::Commit),
        1 => Just(Stmt::Rollback),
        1 => Just(Stmt::Fail),
        1 => Just(Stmt::FailLater),
    ]
}

/// Statements for Parse.
fn parse_stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        6 => (0..5u8).prop_map(Stmt::Select),
        1 => Just(Stmt::Empty),
        1 => Just(Stmt::Begin),
        1 => Just(Stmt::Commit),
        1 => Just(Stmt::Rollback),
        1 => Just(Stmt::Fail),
        1 => Just(Stmt::FailLater),
    ]
}

fn stmt_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 1 => Just("s1")]
}

fn portal_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 1 => Just("p1")]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Statement), Just(Target::Portal)]
}

/// A coherent Parse, Bind, (Describe), Execute... chain, or one loose extended message.
fn ext_chain() -> impl Strategy<Value = Vec<Req>> {
    let chain = (
        stmt_name(),
        portal_name(),
        parse_stmt(),
        0..4u8,
        vec(0..4i32, 1..4),
        0..4u8,
    )
        .prop_map(|(s, p, stmt, describe, executes, tail)| {
            let mut v = vec![Req::Parse(s, stmt)];
            if describe == 1 {
                v.push(Req::Describe(Target::Statement, s));
            }
            v.push(Req::Bind(p, s));
            if describe == 2 {
                v.push(Req::Describe(Target::Portal, p));
            }
            v.extend(executes.into_iter().map(|max| Req::Execute(p, max)));
            match tail {
                0 | 1 => v.push(Req::Sync),
                2 => v.push(Req::Close(Target::Statement, s)),
                _ => {}
            }
            v
        });
    let single = prop_oneof![
        (stmt_name(), parse_stmt()).prop_map(|(s, st)| Req::Parse(s, st)),
        (portal_name(), stmt_name()).prop_map(|(p, s)| Req::Bind(p, s)),
        (target(), stmt_name(), portal_name()).prop_map(|(t, s, p)| match t {
            Target::Statement => Req::Describe(t, s),
            Target::Portal => Req::Describe(t, p),
        }),
        (portal_name(), 0..3i32).prop_map(|(p, m)| Req::Execute(p, m)),
        (target(), stmt_name(), portal_name()).prop_map(|(t, s, p)| match t {
            Target::Statement => Req::Close(t, s),
            Target::Portal => Req::Close(t, p),
        }),
        Just(Req::Sync),
        Just(Req::Flush),
    ];
    prop_oneof![
        4 => chain,
        2 => single.prop_map(|r| vec![r]),
        1 => prop_oneof![
            2 => vec(query_stmt(), 0..4).prop_map(Req::Query),
            1 => proptest::option::of(vec(any::<u8>(), 0..6)).prop_map(Req::FunctionCall),
        ]
        .prop_map(|r| vec![r]),
    ]
}

fn batch() -> impl Strategy<Value = Vec<Req>> {
    (vec(ext_chain(), 1..5), 0..6u8).prop_map(|(chains, end)| {
        let mut v: Vec<Req> = chains.into_iter().flatten().collect();
        // Usually end with a Sync, sometimes with a Flush or nothing at all (the next batch
        // then continues the same extended-query segment).
        match end {
            0 => v.push(Req::Flush),
            1 => {}
            _ => v.push(Req::Sync),
        }
        v
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => batch().prop_map(Op::Batch),
        3 => vec(query_stmt(), 0..3).prop_map(|s| Op::Batch(vec![Req::Query(s)])),
        2 => (vec(vec(any::<u8>(), 0..20), 0..5), prop::bool::weighted(0.3))
            .prop_map(|(chunks, fail)| Op::CopyIn { chunks, fail }),
        1 => (0..4u8).prop_map(Op::CopyOut),
        2 => async_msg().prop_map(Op::Inject),
    ]
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// SplitMix64: chunk sizes and injection decisions, from one proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Splits `len` bytes into pieces: all at once, one byte at a time, small or random pieces.
    fn pieces(&mut self, len: usize) -> Vec<usize> {
        let mode = self.below(4);
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = match mode {
                0 => left,
                1 => 1,
                2 => 1 + self.below(7) as usize,
                _ => 1 + self.below(left as u64) as usize,
            }
            .min(left);
            out.push(n);
            left -= n;
        }
        out
    }
}

fn fields(severity: &str, code: &str, message: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, severity),
        (FieldCode::Code, code),
        (FieldCode::Message, message),
    ])
    .unwrap()
}

fn row_description() -> RowDescription {
    RowDescription::new(&[FieldDescription {
        name: b"n",
        table_oid: 0,
        column_id: 0,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: Format::Text,
    }])
    .unwrap()
}

fn summarize(m: BackendMessage<'static>) -> Resp {
    match m {
        BackendMessage::RowDescription(_) => Resp::RowDescription,
        BackendMessage::DataRow(r) => {
            Resp::DataRow(r.get(0).unwrap().unwrap().unwrap_or_default().to_vec())
        }
        BackendMessage::CommandComplete(c) => Resp::Command(c.as_str().unwrap().into()),
        BackendMessage::EmptyQueryResponse => Resp::EmptyQuery,
        BackendMessage::ErrorResponse(f) => {
            Resp::Error(String::from_utf8(f.code().unwrap().to_vec()).unwrap())
        }
        BackendMessage::ParseComplete => Resp::ParseComplete,
        BackendMessage::BindComplete => Resp::BindComplete,
        BackendMessage::ParameterDescription(_) => Resp::ParameterDescription,
        BackendMessage::NoData => Resp::NoData,
        BackendMessage::PortalSuspended => Resp::Suspended,
        BackendMessage::CloseComplete => Resp::CloseComplete,
        BackendMessage::ReadyForQuery(s) => Resp::Ready(s),
        BackendMessage::CopyInResponse(_) => Resp::CopyIn,
        BackendMessage::CopyOutResponse(_) => Resp::CopyOut,
        BackendMessage::CopyData(d) => Resp::CopyData(d.data().to_vec()),
        BackendMessage::CopyDone => Resp::CopyDone,
        BackendMessage::FunctionCallResponse(v) => Resp::FunctionResult(v.map(|b| b.to_vec())),
        other => panic!("the client delivered {other:?} as a response"),
    }
}

/// How the server authenticates, with what the client is expected to end up with.
#[derive(Debug, Clone)]
struct Auth {
    server: ServerAuth,
    ssl: Option<bool>,
}

/// The pair of machines, with the scripted database answering for the server.
type Pair = support::pair::Pair<Backend>;

/// The server's application: the database, and asynchronous messages injected at random.
struct Backend {
    rng: Rng,
    /// The database behind the server.
    db: Db,
    /// How often (out of 8) the server injects an asynchronous message before a response.
    inject_rate: u64,
    injected: Vec<Async>,
    auth: Option<Auth>,
}

/// A pair whose transfers are cut at random points, and whose server answers from a [`Db`].
fn new_pair(config: ClientConfig, server: ServerConfig, auth: Auth, seed: u64) -> Pair {
    let backend = Backend {
        rng: Rng(seed),
        db: Db::new(),
        inject_rate: seed % 3,
        injected: Vec::new(),
        auth: Some(auth),
    };
    let mut p = Pair::new(Client::new(config).unwrap(), Server::new(server), backend);
    let mut rng = Rng(seed ^ 0x5eed_5eed_5eed_5eed);
    p.split = Box::new(move |_, len| rng.pieces(len));
    p
}

/// What the client reported, sorted: responses (with `Skipped`), asynchronous messages after
/// start-up, and the other events.
fn responses(p: &Pair) -> Vec<(RequestId, Resp)> {
    p.client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { request, message } => {
                Some((*request, summarize(message.clone())))
            }
            ClientEvent::Skipped { request } => Some((*request, Resp::Skipped)),
            _ => None,
        })
        .collect()
}

/// Whether `e` is an asynchronous message; ParameterStatus counts once the client is connected.
fn as_async(e: &ClientEvent, connected: bool) -> Option<Async> {
    match e {
        ClientEvent::Notice(f) => Some(Async::Notice(
            String::from_utf8(f.message().unwrap().to_vec()).unwrap(),
        )),
        ClientEvent::Notification(n) => Some(Async::Notification(
            n.process_id(),
            String::from_utf8(n.channel().to_vec()).unwrap(),
            String::from_utf8(n.payload().to_vec()).unwrap(),
        )),
        ClientEvent::ParameterStatus(p) if connected => Some(Async::Parameter(
            p.name_str().unwrap().into(),
            p.value_str().unwrap().into(),
        )),
        _ => None,
    }
}

/// The asynchronous messages the client reported, and the events that are neither those nor
/// responses.
fn asyncs_and_other(p: &Pair) -> (Vec<Async>, Vec<ClientEvent>) {
    let (mut asyncs, mut other) = (Vec::new(), Vec::new());
    let mut connected = false;
    for e in &p.client_events {
        if let Some(a) = as_async(e, connected) {
            asyncs.push(a);
        } else if !matches!(
            e,
            ClientEvent::Response { .. } | ClientEvent::Skipped { .. }
        ) {
            other.push(e.clone());
        }
        connected |= matches!(e, ClientEvent::Connected { .. });
    }
    (asyncs, other)
}

fn asyncs(p: &Pair) -> Vec<Async> {
    asyncs_and_other(p).0
}

fn other(p: &Pair) -> Vec<ClientEvent> {
    asyncs_and_other(p).1
}

impl support::pair::Answer for Backend {
    fn answer(&mut self, s: &mut Server, e: &ServerEvent) {
        match e {
            ServerEvent::SslRequest => {
                let accept = self.auth.as_ref().and_then(|a| a.ssl).unwrap_or(false);
                s.accept_ssl(accept).unwrap();
                if accept {
                    // The "TLS handshake" happens here; both sides learn the certificate hash.
                    s.tls_established(Some(support::pair::END_POINT.to_vec()))
                        .unwrap();
                }
            }
            ServerEvent::Startup { .. } => {
                let auth = self.auth.take().expect("one StartupMessage");
                s.authenticate(auth.server).unwrap();
            }
            ServerEvent::Message(m) => {
                let resps = self.respond(m);
                self.emit(s, resps);
            }
            _ => {}
        }
    }
}

impl Backend {
    /// What the database answers.
    fn respond(&mut self, m: &FrontendMessage) -> Vec<Resp> {
        let text = |b: &[u8]| std::str::from_utf8(b).unwrap().to_string();
        match m {
            FrontendMessage::Query(q) => self.db.query(q.as_str().unwrap()),
            FrontendMessage::Parse(p) => self.db.parse(&text(p.name()), &text(p.query())),
            FrontendMessage::Bind(b) => self.db.bind(&text(b.portal()), &text(b.statement())),
            FrontendMessage::Describe(d) => self.db.describe(d.target(), &text(d.name())),
            FrontendMessage::Execute(e) => self.db.execute(&text(e.portal()), e.max_rows()),
            FrontendMessage::Close(c) => self.db.close(c.target(), &text(c.name())),
            FrontendMessage::Sync => self.db.sync(),
            FrontendMessage::Flush => Vec::new(),
            FrontendMessage::FunctionCall(f) => {
                let arg = f.args().iter().next().flatten();
                self.db.function_call(arg)
            }
            FrontendMessage::CopyData(_) => {
                self.db.copy_data();
                Vec::new()
            }
            FrontendMessage::CopyDone => self.db.copy_end(false),
            FrontendMessage::CopyFail(_) => self.db.copy_end(true),
            other => panic!("the server delivered {other:?}"),
        }
    }

    fn inject(&mut self, s: &mut Server, a: Async) {
        match &a {
            Async::Notice(m) => s.notice(&fields("NOTICE", "00000", m)).unwrap(),
            Async::Notification(p, c, m) => s.notification(*p, c, m).unwrap(),
            Async::Parameter(k, v) => s.parameter_status(k, v).unwrap(),
        }
        self.injected.push(a);
    }

    fn emit(&mut self, s: &mut Server, resps: Vec<Resp>) {
        for r in resps {
            if self.rng.below(8) < self.inject_rate {
                let n = self.rng.next();
                let a = match n % 3 {
                    0 => Async::Notice(format!("notice {n}")),
                    1 => Async::Notification((n % 100) as i32, "chan".into(), format!("{n}")),
                    _ => Async::Parameter("TimeZone".into(), format!("Zone{}", n % 10)),
                };
                self.inject(s, a);
            }
            match r {
                Resp::RowDescription => s.row_description(&row_description()),
                Resp::DataRow(v) => s.data_row(&[Some(&v)]),
                Resp::Command(tag) => s.command_complete(&tag),
                Resp::EmptyQuery => s.empty_query_response(),
                Resp::Error(code) => s.error_response(&fields("ERROR", &code, "it failed")),
                Resp::ParseComplete => s.parse_complete(),
                Resp::BindComplete => s.bind_complete(),
                Resp::ParameterDescription => s.parameter_description(&[]),
                Resp::NoData => s.no_data(),
                Resp::Suspended => s.portal_suspended(),
                Resp::CloseComplete => s.close_complete(),
                Resp::Ready(status) => s.ready_for_query(status),
                Resp::CopyIn => s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap()),
                Resp::CopyOut => {
                    s.copy_out_response(&CopyResponse::new(Format::Text, &[]).unwrap())
                }
                Resp::CopyData(d) => s.copy_data(&d),
                Resp::CopyDone => s.copy_done(),
                Resp::FunctionResult(v) => s.function_call_response(v.as_deref()),
                Resp::Skipped => unreachable!("the database never skips"),
            }
            .unwrap_or_else(|e| panic!("the server refused an answer: {e}"));
        }
    }
}

/// The expected side: a second database, fed what the client sends, and the discard rule.
struct Model {
    db: Db,
    /// After an extended-query error and until Sync, the server discards requests.
    discarding: bool,
    expected: Vec<(RequestId, Resp)>,
    /// Messages the server is expected to have discarded.
    discarded: u64,
}

impl Model {
    fn expect(&mut self, id: Option<RequestId>, req: &Req) {
        if self.discarding && !matches!(req, Req::Sync) {
            self.discarded += 1;
            if let Some(id) = id {
                self.expected.push((id, Resp::Skipped));
            }
            return;
        }
        let text = |s: &Stmt| s.sql();
        let resps = match req {
            Req::Query(stmts) => self
                .db
                .query(&stmts.iter().map(Stmt::sql).collect::<Vec<_>>().join("; ")),
            Req::Parse(name, stmt) => self.db.parse(name, &text(stmt)),
            Req::Bind(portal, stmt) => self.db.bind(portal, stmt),
            Req::Describe(t, name) => self.db.describe(*t, name),
            Req::Execute(portal, max) => self.db.execute(portal, *max),
            Req::Close(t, name) => self.db.close(*t, name),
            Req::Sync => {
                self.discarding = false;
                self.db.sync()
            }
            Req::Flush => Vec::new(),
            Req::FunctionCall(arg) => self.db.function_call(arg.as_deref()),
        };
        let extended = !matches!(req, Req::Query(_) | Req::Sync | Req::FunctionCall(_));
        if extended && resps.iter().any(|r| matches!(r, Resp::Error(_))) {
            self.discarding = true;
        }
        if let Some(id) = id {
            self.expected.extend(resps.into_iter().map(|r| (id, r)));
        }
    }

    fn expect_resps(&mut self, id: RequestId, resps: Vec<Resp>) {
        self.expected.extend(resps.into_iter().map(|r| (id, r)));
    }
}

fn send(c: &mut Client, req: &Req) -> Option<RequestId> {
    let r = match req {
        Req::Query(stmts) => c.query(&stmts.iter().map(Stmt::sql).collect::<Vec<_>>().join("; ")),
        Req::Parse(name, stmt) => c.parse(name, &stmt.sql(), &[]),
        Req::Bind(portal, stmt) => c.bind(&Bind::new(portal, stmt, &[], &[], &[]).unwrap()),
        Req::Describe(t, name) => c.describe(*t, name),
        Req::Execute(portal, max) => c.execute(portal, *max),
        Req::Close(t, name) => c.close(*t, name),
        Req::Sync => c.sync(),
        Req::Flush => {
            c.flush().unwrap();
            return None;
        }
        Req::FunctionCall(arg) => {
            c.function_call(&FunctionCall::new(42, &[], &[arg.as_deref()], Format::Binary).unwrap())
        }
    };
    Some(r.unwrap_or_else(|e| panic!("the client refused {req:?}: {e}")))
}

fn check_settled(p: &Pair, m: &Model, context: &str) {
    assert!(
        p.client_error.is_none(),
        "{context}: client error {:?}",
        p.client_error
    );
    assert!(
        p.server_error.is_none(),
        "{context}: server error {:?}",
        p.server_error
    );
    assert_eq!(responses(p), m.expected, "{context}: responses");
    assert_eq!(
        asyncs(p),
        p.answer.injected,
        "{context}: asynchronous messages"
    );
    assert_eq!(
        p.client.pending_requests(),
        0,
        "{context}: pending requests"
    );
    assert_eq!(
        p.client.pending_sync_points(),
        0,
        "{context}: pending sync points"
    );
    assert_eq!(
        p.client.transaction_status(),
        Some(p.server.transaction_status()),
        "{context}: transaction status"
    );
    assert!(
        p.client.is_ready() && p.server.is_ready(),
        "{context}: ready"
    );
    assert_eq!(
        p.server.discarded(),
        m.discarded,
        "{context}: discarded count"
    );
    assert!(
        !p.client.wants_write() && !p.server.wants_write(),
        "{context}: idle"
    );
}

fn run_session(ops: &[Op], seed: u64, v3_2: bool) {
    let mut config = ClientConfig::new("alice");
    if v3_2 {
        config.max_protocol_version = ProtocolVersion::V3_2;
    }
    let auth = Auth {
        server: ServerAuth::Trust,
        ssl: None,
    };
    let mut p = new_pair(config, ServerConfig::default(), auth, seed);
    // Decides where pipelines are cut (a stream of its own, apart from the pair's).
    let mut rng = Rng(seed.rotate_left(17));
    p.drive();
    assert!(
        matches!(other(&p).last(), Some(ClientEvent::Connected { .. })),
        "{:?} {:?}",
        other(&p),
        p.client_error
    );
    let mut m = Model {
        db: Db::new(),
        discarding: false,
        expected: Vec::new(),
        discarded: 0,
    };
    check_settled(&p, &m, "after start-up");

    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Batch(reqs) => {
                for r in reqs {
                    let id = send(&mut p.client, r);
                    m.expect(id, r);
                    // Sometimes let the pair run between requests, so that pipelines are cut at
                    // random places.
                    if rng.below(4) == 0 {
                        p.step();
                    }
                }
                p.drive();
            }
            Op::CopyIn { chunks, fail } => {
                let req = Req::Query(vec![Stmt::CopyIn]);
                let id = send(&mut p.client, &req).unwrap();
                m.expect(Some(id), &req);
                p.drive();
                if m.db.copy_in.is_some() {
                    assert!(
                        matches!(responses(&p).last(), Some((r, Resp::CopyIn)) if *r == id),
                        "op {i}: COPY FROM STDIN did not start"
                    );
                    assert_eq!(p.client.pending_requests(), 1);
                    for chunk in chunks {
                        p.client.copy_data(chunk).unwrap();
                        m.db.copy_data();
                        if rng.below(2) == 0 {
                            p.step();
                        }
                    }
                    if *fail {
                        p.client.copy_fail("stopped").unwrap();
                    } else {
                        p.client.copy_done().unwrap();
                    }
                    let resps = m.db.copy_end(*fail);
                    m.expect_resps(id, resps);
                    p.drive();
                }
            }
            Op::CopyOut(n) => {
                let req = Req::Query(vec![Stmt::CopyOut(*n)]);
                let id = send(&mut p.client, &req);
                m.expect(id, &req);
                p.drive();
            }
            Op::Inject(a) => {
                p.answer.inject(&mut p.server, a.clone());
                p.drive();
            }
        }
        check_settled(&p, &m, &format!("after op {i} ({op:?})"));
        if let Some((_, v)) = asyncs(&p).iter().rev().find_map(|a| match a {
            Async::Parameter(k, v) if k == "TimeZone" => Some((k, v)),
            _ => None,
        }) {
            assert_eq!(p.client.parameter("TimeZone"), Some(v.as_str()));
        }
    }

    // Terminate: the server reports it, the client reports the close once the server hangs up.
    p.client.terminate().unwrap();
    p.drive();
    assert!(matches!(
        p.server_events.last(),
        Some(ServerEvent::Terminate)
    ));
    p.client.receive_eof();
    p.drain();
    assert!(p.client_error.is_none(), "{:?}", p.client_error);
    assert!(matches!(other(&p).last(), Some(ClientEvent::Closed)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_keep_both_sides_in_step(
        ops in vec(op(), 1..20),
        seed in any::<u64>(),
        v3_2 in any::<bool>(),
    ) {
        run_session(&ops, seed, v3_2);
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------

fn verifier() -> ScramVerifier {
    static V: std::sync::OnceLock<ScramVerifier> = std::sync::OnceLock::new();
    V.get_or_init(|| ScramVerifier::new("secret", b"0123456789abcdef", 4096).unwrap())
        .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Trust,
    Password,
    Md5,
    Scram,
    /// SCRAM for a user that does not exist (a doomed exchange).
    ScramUnknownUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pw {
    Right,
    Wrong,
    Missing,
}

/// `ssl`: None sends no SSLRequest; Some(accept) sends one, which the server accepts or refuses.
fn run_startup(
    method: Method,
    pw: Pw,
    client_3_2: bool,
    server_3_2: bool,
    ssl: Option<bool>,
    seed: u64,
) {
    let mut config = ClientConfig::new("alice");
    config.password = match pw {
        Pw::Right => Some(b"secret".to_vec()),
        Pw::Wrong => Some(b"Secret".to_vec()),
        Pw::Missing => None,
    };
    if client_3_2 {
        config.max_protocol_version = ProtocolVersion::V3_2;
    }
    if ssl.is_some() {
        config.encryption = Encryption::Ssl { required: false };
    }
    let mut server_config = ServerConfig::default();
    if !server_3_2 {
        server_config.max_protocol_version = ProtocolVersion::V3_0;
    }
    let server = match method {
        Method::Trust => ServerAuth::Trust,
        Method::Password => ServerAuth::Password {
            stored: Some(if seed & 1 == 0 {
                verifier().to_string()
            } else {
                md5::stored_hash("alice", "secret")
            }),
        },
        Method::Md5 => ServerAuth::Md5 {
            stored: Some(md5::stored_hash("alice", "secret")),
        },
        Method::Scram => ServerAuth::Scram {
            verifier: Some(verifier()),
        },
        Method::ScramUnknownUser => ServerAuth::Scram { verifier: None },
    };
    let mut p = new_pair(config, server_config, Auth { server, ssl }, seed);
    p.drive();

    let tls = ssl == Some(true);
    let succeeds = match (method, pw) {
        (Method::Trust, _) => true,
        (Method::ScramUnknownUser, _) => false,
        (_, pw) => pw == Pw::Right,
    };
    if succeeds {
        assert!(
            p.client_error.is_none() && p.server_error.is_none(),
            "{:?} {:?}",
            p.client_error,
            p.server_error
        );
        assert!(p.client.is_ready() && p.server.is_ready());
        let expected = match method {
            Method::Trust => AuthMethod::None,
            Method::Password => AuthMethod::Password,
            Method::Md5 => AuthMethod::Md5,
            Method::Scram if tls => AuthMethod::ScramSha256Plus,
            _ => AuthMethod::ScramSha256,
        };
        assert_eq!(p.client.auth_method(), Some(expected));
        assert!(other(&p).contains(&ClientEvent::Authenticated { method: expected }));
        assert_eq!(p.client.is_tls(), tls);
        assert_eq!(p.server.is_tls(), tls);
        let version = if client_3_2 && server_3_2 {
            ProtocolVersion::V3_2
        } else {
            ProtocolVersion::V3_0
        };
        assert_eq!(p.client.protocol_version(), version);
        assert_eq!(p.server.protocol_version(), version);
        let negotiated = other(&p)
            .iter()
            .any(|e| matches!(e, ClientEvent::ProtocolNegotiated { .. }));
        assert_eq!(negotiated, client_3_2 && !server_3_2);
        assert_eq!(p.client.backend_key(), p.server.backend_key());
        let key_len = if version == ProtocolVersion::V3_2 {
            32
        } else {
            4
        };
        assert_eq!(p.client.backend_key().unwrap().secret_key().len(), key_len);
        assert_eq!(p.client.parameter("session_authorization"), Some("alice"));
        assert_eq!(p.client.transaction_status(), Some(TransactionStatus::Idle));
        // And the connection works.
        let id = p.client.query("SELECT 1").unwrap();
        p.drive();
        let rs = responses(&p);
        let got: Vec<_> = rs.iter().filter(|(r, _)| *r == id).collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(p.client_error.is_none() && p.server_error.is_none());
    } else if pw == Pw::Missing && method != Method::ScramUnknownUser {
        // The client cannot answer; the server still waits.
        assert_eq!(
            p.client_error,
            Some(Error::Auth(AuthError::MissingPassword)),
            "{:?}",
            p.client_error
        );
        assert!(p.server_error.is_none(), "{:?}", p.server_error);
        assert!(!p.client.is_ready() && !p.server.is_ready());
    } else if pw == Pw::Missing {
        assert_eq!(
            p.client_error,
            Some(Error::Auth(AuthError::MissingPassword))
        );
    } else {
        // A wrong password or an unknown user: the server fails with 28P01 and tells the client.
        let Some(Error::Server(f)) = &p.client_error else {
            panic!("client: {:?}", p.client_error)
        };
        assert_eq!(f.code(), Some(&b"28P01"[..]));
        assert_eq!(f.severity(), Some(&b"FATAL"[..]));
        assert!(
            matches!(p.server_error, Some(Error::Auth(_))),
            "{:?}",
            p.server_error
        );
        assert_eq!(p.server_error.as_ref().unwrap().sqlstate(), "28P01");
        assert!(!p.client.is_ready() && !p.server.is_ready());
        assert!(p.client.query("SELECT 1").is_err());
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Trust),
        Just(Method::Password),
        Just(Method::Md5),
        Just(Method::Scram),
        Just(Method::ScramUnknownUser),
    ]
}

fn password() -> impl Strategy<Value = Pw> {
    prop_oneof![3 => Just(Pw::Right), 2 => Just(Pw::Wrong), 1 => Just(Pw::Missing)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_startups_agree_on_method_version_and_key(
        method in method(),
        pw in password(),
        client_3_2 in any::<bool>(),
        server_3_2 in any::<bool>(),
        ssl in proptest::option::of(any::<bool>()),
        seed in any::<u64>(),
    ) {
        run_startup(method, pw, client_3_2, server_3_2, ssl, seed);
    }
}
