//! A transaction pooler in memory, built from the pooler primitives (`pgproto::pooler`, `Relay`,
//! `Server::forward`) between this crate's `Client`s and pretend upstream servers (a `Server`
//! keeping PostgreSQL's rules for named statements: 42P05 for a name taken, 26000 for an unknown
//! one). Clients using the same statement names never clash, a statement follows its client to
//! another upstream connection, answers the pooler gives itself come in order or not at all
//! after an error, an upstream connection keeps at most its capacity of statements, and cancel
//! keys route to their session.

use std::collections::HashMap;

use bytes::BytesMut;
use pgproto::pooler::{
    cancel_packet, CancelKeys, ClientStatements, Correlator, CorrelatorEvent, Rewrite, Route,
    StatementNote, StatementRegistry, UpstreamStatements,
};
use pgproto::{
    BackendMessage, Bind, CancelRequest, Client, ClientConfig, ClientEvent, ErrorFields,
    FieldDescription, Format, FramePiece, FrontendMessage, Limits, ProtocolVersion, Relay,
    RowDescription, Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd, Target,
    TransactionStatus,
};

/// A pretend PostgreSQL backend: named statements and portals with PostgreSQL's errors, each
/// statement's rows being its query text; BEGIN and COMMIT as Query.
struct FakePg {
    server: Server,
    statements: HashMap<Vec<u8>, Vec<u8>>,
    portals: HashMap<Vec<u8>, Vec<u8>>,
    status: TransactionStatus,
    /// Parse messages received, by statement name.
    parses: Vec<Vec<u8>>,
}

impl FakePg {
    fn new() -> Self {
        let mut server = Server::new(ServerConfig::default());
        server.receive(b"\0\0\0\x14\0\x03\0\0user\0proxy\0\0");
        assert!(matches!(
            server.poll_event().unwrap(),
            Some(ServerEvent::Startup { .. })
        ));
        server.authenticate(ServerAuth::Trust).unwrap();
        assert!(matches!(
            server.poll_event().unwrap(),
            Some(ServerEvent::Authenticated)
        ));
        let _ = server.poll_transmit(); // the start-up answer, which a Client would read
        Self {
            server,
            statements: HashMap::new(),
            portals: HashMap::new(),
            status: TransactionStatus::Idle,
            parses: Vec::new(),
        }
    }

    fn error(&mut self, code: &str, text: &str) {
        self.server
            .error_response(&ErrorFields::simple("ERROR", code, text))
            .unwrap();
    }

    /// Takes bytes, answers everything, returns the answer's bytes.
    fn exchange(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.server.receive(bytes);
        while let Some(e) = self.server.poll_event().unwrap() {
            let ServerEvent::Message(m) = e.into_owned() else {
                panic!("unexpected event")
            };
            match m {
                FrontendMessage::Query(q) => {
                    match q.sql() {
                        b"BEGIN" => self.status = TransactionStatus::InTransaction,
                        b"COMMIT" => self.status = TransactionStatus::Idle,
                        _ => {}
                    }
                    self.server
                        .command_complete(std::str::from_utf8(q.sql()).unwrap())
                        .unwrap();
                    self.server.ready_for_query(self.status).unwrap();
                }
                FrontendMessage::Parse(p) => {
                    self.parses.push(p.name().to_vec());
                    if !p.name().is_empty() && self.statements.contains_key(p.name()) {
                        self.error("42P05", "prepared statement already exists");
                    } else {
                        self.statements
                            .insert(p.name().to_vec(), p.query().to_vec());
                        self.server.parse_complete().unwrap();
                    }
                }
                FrontendMessage::Bind(b) => match self.statements.get(b.statement()) {
                    Some(q) => {
                        self.portals.insert(b.portal().to_vec(), q.clone());
                        self.server.bind_complete().unwrap();
                    }
                    None => self.error("26000", "prepared statement does not exist"),
                },
                FrontendMessage::Describe(d) => {
                    let known = match d.target() {
                        Target::Statement => self.statements.contains_key(d.name()),
                        Target::Portal => self.portals.contains_key(d.name()),
                    };
                    if !known {
                        self.error("26000", "does not exist");
                        continue;
                    }
                    if d.target() == Target::Statement {
                        self.server.parameter_description(&[]).unwrap();
                    }
                    let field = FieldDescription {
                        name: b"q",
                        table_oid: 0,
                        column_id: 0,
                        type_oid: 25,
                        type_size: -1,
                        type_modifier: -1,
                        format: Format::Text,
                    };
                    self.server
                        .row_description(&RowDescription::new(&[field]).unwrap())
                        .unwrap();
                }
                FrontendMessage::Execute(e) => match self.portals.get(e.portal()).cloned() {
                    Some(q) => {
                        self.server.data_row(&[Some(&q)]).unwrap();
                        self.server.command_complete("SELECT 1").unwrap();
                    }
                    None => self.error("34000", "portal does not exist"),
                },
                FrontendMessage::Close(c) => {
                    match c.target() {
                        Target::Statement => self.statements.remove(c.name()),
                        Target::Portal => self.portals.remove(c.name()),
                    };
                    self.server.close_complete().unwrap();
                }
                FrontendMessage::Sync => self.server.ready_for_query(self.status).unwrap(),
                FrontendMessage::Flush => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut out = Vec::new();
        while let Some(b) = self.server.poll_transmit() {
            out.extend_from_slice(&b);
        }
        out
    }

    /// Named statements prepared here.
    fn named(&self) -> usize {
        self.statements.keys().filter(|k| !k.is_empty()).count()
    }
}

/// One upstream connection of the pool.
struct Upstream {
    pg: FakePg,
    relay: Relay,
    correlator: Correlator<StatementNote>,
    statements: UpstreamStatements,
}

/// One client session of the pooler.
struct Session {
    server: Server,
    statements: ClientStatements,
    upstream: Option<usize>,
}

/// The pooler: sessions, a pool of upstream connections, the statement registry, cancel keys.
struct Pooler {
    registry: StatementRegistry,
    upstreams: Vec<Upstream>,
    idle: Vec<usize>,
    sessions: Vec<Session>,
    keys: CancelKeys<usize>,
}

impl Pooler {
    fn new(pool: usize, capacity: usize) -> Self {
        Self {
            registry: StatementRegistry::new("pool_"),
            upstreams: (0..pool)
                .map(|_| Upstream {
                    pg: FakePg::new(),
                    relay: Relay::backend(Limits::default()),
                    correlator: Correlator::new(),
                    statements: UpstreamStatements::new(capacity),
                })
                .collect(),
            idle: (0..pool).rev().collect(),
            sessions: Vec::new(),
            keys: CancelKeys::new(),
        }
    }

    fn accept(&mut self) -> usize {
        let mut config = ServerConfig::default();
        config.startup_end = StartupEnd::Application;
        config.pipeline_depth = 256;
        self.sessions.push(Session {
            server: Server::new(config),
            statements: ClientStatements::default(),
            upstream: None,
        });
        self.sessions.len() - 1
    }

    /// Bytes from client `c`; returns the bytes for it.
    fn client_bytes(&mut self, c: usize, bytes: &[u8]) -> Vec<u8> {
        self.sessions[c].server.receive(bytes);
        let mut out = BytesMut::new();
        loop {
            let session = &mut self.sessions[c];
            let Some(event) = session.server.poll_event().unwrap() else {
                break;
            };
            match event {
                ServerEvent::Startup { .. } => {
                    session.server.authenticate(ServerAuth::Trust).unwrap()
                }
                ServerEvent::Authenticated => {
                    session
                        .server
                        .parameter_status("server_version", "18.1")
                        .unwrap();
                    let version = session.server.protocol_version();
                    let key = self.keys.issue(version, 32, pgproto::os_random, c).unwrap();
                    session.server.finish_startup(Some(key)).unwrap();
                }
                ServerEvent::Message(m) => {
                    let u = match session.upstream {
                        Some(u) => u,
                        None => {
                            let u = self.idle.pop().expect("an idle upstream connection");
                            session.upstream = Some(u);
                            u
                        }
                    };
                    let up = &mut self.upstreams[u];
                    Rewrite {
                        registry: &self.registry,
                        client: &mut session.statements,
                        upstream: &mut up.statements,
                    }
                    .message(&m, &mut out, &mut up.correlator)
                    .unwrap();
                    drop(m);
                    self.settle(c, u);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if let Some(u) = self.sessions[c].upstream {
            let answer = self.upstreams[u].pg.exchange(&out);
            self.upstream_bytes(c, u, &answer);
        }
        let mut back = Vec::new();
        while let Some(b) = self.sessions[c].server.poll_transmit() {
            back.extend_from_slice(&b);
        }
        back
    }

    fn upstream_bytes(&mut self, c: usize, u: usize, bytes: &[u8]) {
        let up = &mut self.upstreams[u];
        up.relay.receive(bytes);
        while let Some(piece) = up.relay.next_piece().unwrap() {
            if up.correlator.route(&piece).unwrap() == Route::Forward {
                self.sessions[c].server.forward(&piece).unwrap();
            }
            let session = &mut self.sessions[c];
            while let Some(e) = up.correlator.poll_event() {
                match e {
                    CorrelatorEvent::Synthesized(b) => session
                        .server
                        .forward(&FramePiece::whole(&b).unwrap())
                        .unwrap(),
                    CorrelatorEvent::Finished { data, outcome, .. } => Rewrite {
                        registry: &self.registry,
                        client: &mut session.statements,
                        upstream: &mut up.statements,
                    }
                    .finished(data, outcome),
                }
            }
        }
        if up.correlator.is_idle() {
            self.sessions[c].upstream = None;
            self.idle.push(u);
        }
    }

    /// The correlator's events after a push (synthesized answers due at once).
    fn settle(&mut self, c: usize, u: usize) {
        let up = &mut self.upstreams[u];
        let session = &mut self.sessions[c];
        while let Some(e) = up.correlator.poll_event() {
            match e {
                CorrelatorEvent::Synthesized(b) => session
                    .server
                    .forward(&FramePiece::whole(&b).unwrap())
                    .unwrap(),
                CorrelatorEvent::Finished { data, outcome, .. } => Rewrite {
                    registry: &self.registry,
                    client: &mut session.statements,
                    upstream: &mut up.statements,
                }
                .finished(data, outcome),
            }
        }
    }
}

/// A client of the pooler.
struct Peer {
    client: Client,
    session: usize,
}

impl Peer {
    fn connect(p: &mut Pooler) -> Self {
        let mut config = ClientConfig::new("alice");
        config.max_protocol_version = ProtocolVersion::V3_2;
        let mut peer = Self {
            client: Client::new(config).unwrap(),
            session: p.accept(),
        };
        peer.exchange(p);
        assert!(peer.client.is_ready());
        peer
    }

    /// Sends what the client queued, returns its events.
    fn exchange(&mut self, p: &mut Pooler) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        for _ in 0..10 {
            let mut sent = Vec::new();
            while let Some(b) = self.client.poll_transmit() {
                sent.extend_from_slice(&b);
            }
            let back = p.client_bytes(self.session, &sent);
            if sent.is_empty() && back.is_empty() {
                break;
            }
            self.client.receive(&back);
            while let Some(e) = self.client.poll_event().unwrap() {
                events.push(e.into_owned());
            }
        }
        events
    }

    fn prepare(&mut self, name: &str, sql: &str) {
        self.client.parse(name, sql, &[]).unwrap();
    }

    fn run(&mut self, statement: &str) {
        let bind = Bind::new("", statement, &[], &[], &[]).unwrap();
        self.client.bind(&bind).unwrap();
        self.client.execute("", 0).unwrap();
    }
}

/// The rows, errors (SQLSTATE) and skipped count of some events.
fn summary(events: &[ClientEvent]) -> (Vec<String>, Vec<String>, usize) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = 0;
    for e in events {
        match e {
            ClientEvent::Response {
                message: BackendMessage::DataRow(r),
                ..
            } => {
                let v = r.columns().next().unwrap().unwrap().unwrap();
                rows.push(String::from_utf8_lossy(v).into_owned());
            }
            ClientEvent::Response {
                message: BackendMessage::ErrorResponse(f),
                ..
            } => errors.push(String::from_utf8_lossy(f.code().unwrap()).into_owned()),
            ClientEvent::Skipped { .. } => skipped += 1,
            _ => {}
        }
    }
    (rows, errors, skipped)
}

#[test]
fn the_same_name_from_two_clients_never_clashes() {
    let mut p = Pooler::new(1, 100);
    let mut a = Peer::connect(&mut p);
    let mut b = Peer::connect(&mut p);
    a.prepare("P_0", "SELECT 'a'");
    a.run("P_0");
    a.client.sync().unwrap();
    assert_eq!(summary(&a.exchange(&mut p)).0, ["SELECT 'a'"]);
    b.prepare("P_0", "SELECT 'b'");
    b.run("P_0");
    b.client.sync().unwrap();
    assert_eq!(summary(&b.exchange(&mut p)).0, ["SELECT 'b'"]);
    a.run("P_0");
    a.client.sync().unwrap();
    assert_eq!(summary(&a.exchange(&mut p)).0, ["SELECT 'a'"]);
    // One upstream connection, two statements under the pool's names.
    let pg = &p.upstreams[0].pg;
    assert_eq!(pg.named(), 2);
    assert!(pg.statements.keys().all(|k| k.starts_with(b"pool_")));
}

#[test]
fn a_statement_follows_its_client_to_another_connection() {
    let mut p = Pooler::new(2, 100);
    let mut a = Peer::connect(&mut p);
    let mut b = Peer::connect(&mut p);
    a.prepare("s", "SELECT 1");
    a.client.sync().unwrap();
    a.exchange(&mut p);
    // B holds upstream 0 in a transaction; A's next Bind goes to upstream 1.
    b.client.query("BEGIN").unwrap();
    b.exchange(&mut p);
    assert_eq!(p.sessions[b.session].upstream, Some(0));
    a.client.describe(Target::Statement, "s").unwrap();
    a.run("s");
    a.client.sync().unwrap();
    let events = a.exchange(&mut p);
    let (rows, errors, _) = summary(&events);
    assert_eq!((rows, errors), (vec!["SELECT 1".to_string()], vec![]));
    // The injected Parse's ParseComplete was hidden: A saw only answers to its own requests.
    let parse_completes = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Response {
                    message: BackendMessage::ParseComplete,
                    ..
                }
            )
        })
        .count();
    assert_eq!(parse_completes, 0);
    assert_eq!(p.upstreams[1].pg.parses, [b"pool_1".to_vec()]);
    b.client.query("COMMIT").unwrap();
    b.exchange(&mut p);
    assert_eq!(p.idle.len(), 2);
}

#[test]
fn a_parse_the_connection_does_not_need_is_answered_by_the_pooler() {
    let mut p = Pooler::new(1, 100);
    let mut a = Peer::connect(&mut p);
    let mut b = Peer::connect(&mut p);
    a.prepare("x", "SELECT 42");
    a.client.sync().unwrap();
    a.exchange(&mut p);
    b.prepare("y", "SELECT 42"); // the same text under another name
    b.run("y");
    b.client.sync().unwrap();
    let events = b.exchange(&mut p);
    assert!(matches!(
        events[0],
        ClientEvent::Response {
            message: BackendMessage::ParseComplete,
            ..
        }
    ));
    assert_eq!(summary(&events).0, ["SELECT 42"]);
    assert_eq!(p.upstreams[0].pg.parses.len(), 1);
}

#[test]
fn after_an_error_the_pooler_answers_nothing_until_sync() {
    let mut p = Pooler::new(1, 100);
    let mut a = Peer::connect(&mut p);
    a.prepare("known", "SELECT 1");
    a.client.sync().unwrap();
    a.exchange(&mut p);
    // Bind of an unknown statement fails; the Parse behind it, which the pooler would answer
    // itself (the connection has the statement), is skipped as PostgreSQL skips it.
    a.run("unknown");
    a.prepare("again", "SELECT 1");
    a.client.sync().unwrap();
    let events = a.exchange(&mut p);
    let (rows, errors, skipped) = summary(&events);
    assert!(rows.is_empty());
    assert_eq!(errors, ["26000"]);
    assert_eq!(skipped, 2);
    assert!(p.sessions[a.session].statements.get(b"again").is_none());
    // The name the client tried twice: 42P05, from the server.
    a.prepare("known", "SELECT 2");
    a.client.sync().unwrap();
    assert_eq!(summary(&a.exchange(&mut p)).1, ["42P05"]);
}

#[test]
fn close_forgets_the_client_name_only() {
    let mut p = Pooler::new(1, 100);
    let mut a = Peer::connect(&mut p);
    a.prepare("s", "SELECT 1");
    a.client.close(Target::Statement, "s").unwrap();
    a.client.sync().unwrap();
    let events = a.exchange(&mut p);
    assert!(events.iter().any(|e| matches!(
        e,
        ClientEvent::Response {
            message: BackendMessage::CloseComplete,
            ..
        }
    )));
    a.run("s");
    a.client.sync().unwrap();
    assert_eq!(summary(&a.exchange(&mut p)).1, ["26000"]);
    assert_eq!(p.upstreams[0].pg.named(), 1); // still prepared upstream, for others
}

#[test]
fn an_upstream_connection_keeps_at_most_its_capacity() {
    let mut p = Pooler::new(1, 2);
    let mut a = Peer::connect(&mut p);
    for i in 0..5 {
        a.prepare(&format!("s{i}"), &format!("SELECT {i}"));
        a.client.sync().unwrap();
        a.exchange(&mut p);
        assert!(p.upstreams[0].pg.named() <= 2);
    }
    // The evicted ones come back when used.
    for i in 0..5 {
        a.run(&format!("s{i}"));
        a.client.sync().unwrap();
        assert_eq!(summary(&a.exchange(&mut p)).0, [format!("SELECT {i}")]);
        assert!(p.upstreams[0].pg.named() <= 2);
    }
}

#[test]
fn cancel_keys_route_to_their_session() {
    let mut p = Pooler::new(1, 10);
    let a = Peer::connect(&mut p);
    let b = Peer::connect(&mut p);
    for peer in [&a, &b] {
        let cancel = peer.client.cancel_request().unwrap();
        assert_eq!(cancel.secret_key().len(), 32);
        // The packet a client sends arrives as a CancelRequest at a new connection.
        let mut server = Server::new(ServerConfig::default());
        let key = peer.client.backend_key().unwrap();
        server.receive(&cancel_packet(key));
        let Some(ServerEvent::CancelRequest(request)) = server.poll_event().unwrap() else {
            panic!()
        };
        assert_eq!(p.keys.find(&request), Some(&peer.session));
    }
    let forged = CancelRequest::new(a.client.backend_key().unwrap().process_id(), [0u8; 32]);
    assert_eq!(p.keys.find(&forged.unwrap()), None);
}
