//! The logic of the cargo-fuzz targets in `fuzz/fuzz_targets/`, built only with `--cfg fuzzing`
//! (which cargo-fuzz sets). Each target is one call to a function here, so the logic is compiled
//! and checked with the crate (`RUSTFLAGS='--cfg fuzzing' cargo check --lib`), while still using
//! the public API only. Not a stable API: hidden from the documentation.
//!
//! Every function takes the fuzzer's input and panics on a failed check. The input layouts and
//! the checks are described on each function's module and in `fuzz/README.md`.

/// Arbitrary bytes through `FrontendDecoder`, fed in chunks: every message re-encodes to its
/// frame, and errors are sticky.
pub fn decode_frontend(data: &[u8]) {
    decode_frontend::run(data)
}

/// Arbitrary bytes through `BackendDecoder`, fed in chunks, read with `next()` and `next_ref()`
/// in lockstep.
pub fn decode_backend(data: &[u8]) {
    decode_backend::run(data)
}

/// A server's bytes through a `Client` following the run-loop contract.
pub fn client_session(data: &[u8]) {
    client_session::run(data)
}

/// A client's bytes through a `Server` answered by a scripted application.
pub fn server_session(data: &[u8]) {
    server_session::run(data)
}

/// A `Client` and a `Server` driven against each other in memory, both through their borrowed
/// events, with fuzz-chosen commands, answers and read sizes.
pub fn pair_borrowed(data: &[u8]) {
    pair::run(data)
}

/// Both directions' bytes through a `Tracer` in fuzz-chosen chunks, and every chunk through the
/// `Formatter` as a frame.
pub fn trace(data: &[u8]) {
    trace::run(data)
}

/// Arbitrary bytes through the protocol-2.0 `v2::BackendDecoder`, in chunks and whole.
pub fn v2_decode_backend(data: &[u8]) {
    v2::backend(data)
}

/// Arbitrary bytes through the protocol-2.0 `v2::FrontendDecoder`, in chunks and whole.
pub fn v2_decode_frontend(data: &[u8]) {
    v2::frontend(data)
}

/// Arbitrary text through `conninfo::ConnInfo::parse` (keyword/value and URI forms): no panic,
/// `client_config` decides without panicking either, and what parsed comes back the same when
/// written again (`Display`: quoted keyword/value pairs).
pub fn conninfo(data: &[u8]) {
    use crate::conninfo::ConnInfo;
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(info) = ConnInfo::parse(s) else {
        return;
    };
    let _ = info.client_config();
    let text = info.to_string();
    let again = ConnInfo::parse(&text).expect("a written connection string parses");
    assert_eq!(again, info, "{text}");
}

/// Checks that `msg` re-encodes to `input[done..done + encoded_len]`, inside the bytes fed so
/// far, and returns the end of its frame (the decoding targets of both protocol versions).
fn check_frame<M: crate::Encode + std::fmt::Debug>(
    msg: &M,
    input: &[u8],
    done: usize,
    fed: usize,
) -> usize {
    let len = msg.encoded_len();
    let end = done + len;
    assert!(
        end <= fed,
        "{msg:?} claims {len} bytes at offset {done}, but only {fed} bytes were fed"
    );
    let mut out = bytes::BytesMut::new();
    msg.encode(&mut out);
    assert_eq!(
        out.len(),
        len,
        "encoded_len() disagrees with encode() for {msg:?}"
    );
    assert!(
        out[..] == input[done..end],
        "re-encoding {msg:?} does not give its frame back:\n  frame: {:02x?}\n  again: {:02x?}",
        &input[done..end],
        &out[..]
    );
    end
}

mod v2;
/// CopyData payloads through the replication decoders (streaming replication, BASE_BACKUP,
/// pgoutput with options from the input), and text through the replication command, LSN and
/// timestamp parsers.
pub fn decode_replication(data: &[u8]) {
    replication::run(data)
}

mod replication;

mod decode_frontend {
    //! Arbitrary bytes through [`FrontendDecoder`], fed in chunks.
    //!
    //! Input layout: byte 0 chooses the context (bit 0: start-up phase or already past it; the rest,
    //! modulo 5: which `AuthResponseKind` a `p` frame is, or none), byte 1 the chunk size (0 means
    //! everything at once), the rest is the stream a client sent.
    //!
    //! Checks, for every message decoded: encoding it gives back exactly the bytes of its frame
    //! (frames are consumed in order, so the running sum of `encoded_len()` locates each frame in the
    //! input), and the decoder holds exactly the bytes not yet decoded. After an error: the same error
    //! again, even after more input arrives (errors are sticky).

    use std::hint::black_box;

    use super::check_frame;
    use crate::{AuthResponseKind, FrontendDecoder, FrontendMessage, Limits};

    const KINDS: [AuthResponseKind; 4] = [
        AuthResponseKind::Password,
        AuthResponseKind::SaslInitial,
        AuthResponseKind::Sasl,
        AuthResponseKind::Gss,
    ];

    pub(super) fn run(data: &[u8]) {
        let [ctx, chunk, ref input @ ..] = *data else {
            return;
        };
        let mut dec = if ctx & 1 == 0 {
            FrontendDecoder::new()
        } else {
            FrontendDecoder::after_startup(Limits::default())
        };
        let kind = match (ctx >> 1) % 5 {
            0 => None,
            k => Some(KINDS[k as usize - 1]),
        };
        dec.expect_auth_response(kind);
        let chunk = if chunk == 0 {
            input.len().max(1)
        } else {
            chunk as usize
        };

        // `fed`: bytes given to the decoder; `done`: bytes of the frames decoded so far.
        let mut fed = 0;
        let mut done = 0;
        for piece in input.chunks(chunk) {
            dec.receive(black_box(piece));
            fed += piece.len();
            loop {
                match dec.next() {
                    Ok(Some(msg)) => {
                        let end = check_frame(&msg, input, done, fed);
                        // A `p` frame decoded without its kind must re-encode the same way once the
                        // kind is known.
                        if let FrontendMessage::UntypedAuthResponse(ref m) = msg {
                            for k in KINDS {
                                if let Ok(typed) = m.decode_as(k) {
                                    assert_eq!(check_frame(&typed, input, done, fed), end);
                                }
                            }
                        }
                        black_box(msg);
                        done = end;
                    }
                    Ok(None) => {
                        assert_eq!(
                            dec.buffered_len(),
                            fed - done,
                            "buffered bytes lost or invented"
                        );
                        break;
                    }
                    Err(e) => {
                        assert_eq!(dec.next(), Err(e.clone()), "error is not sticky");
                        dec.receive(&input[fed..]);
                        assert_eq!(dec.next(), Err(e), "error is not sticky after more input");
                        return;
                    }
                }
            }
        }
    }
}

mod decode_backend {
    //! Arbitrary bytes through [`BackendDecoder`], fed in chunks, read both with `next()` and with
    //! `next_ref()`.
    //!
    //! Input layout: byte 0 chooses the context (bits 0-1: 1 expects an SSLRequest answer, 2 a
    //! GSSENCRequest answer, otherwise tagged messages; bit 2: protocol 3.2 instead of 3.0), byte 1
    //! the chunk size (0 means everything at once), the rest is the stream a server sent.
    //!
    //! Two decoders get the same chunks in lockstep. Checks, for every message: the `next()` one
    //! re-encodes to exactly the bytes of its frame (the running sum of `encoded_len()` locates each
    //! frame in the input), `next_ref()` yields the same message (DataRow columns and CopyData bytes
    //! equal), and both decoders hold exactly the bytes not yet decoded. On an error: both fail the
    //! same way, and keep failing the same way, even after more input arrives (errors are sticky).

    use std::hint::black_box;

    use super::check_frame;
    use crate::{BackendDecoder, BackendMessage, DecodeError, ProtocolVersion};

    fn decoder(ctx: u8) -> BackendDecoder {
        let mut dec = BackendDecoder::new();
        match ctx & 3 {
            1 => dec.expect_ssl_response(),
            2 => dec.expect_gssenc_response(),
            _ => {}
        }
        if ctx & 4 != 0 {
            dec.set_protocol_version(ProtocolVersion::V3_2);
        }
        dec
    }

    /// What one lockstep call on both decoders gave.
    enum Step {
        Message(usize),
        NeedMore,
        Failed(DecodeError),
    }

    pub(super) fn run(data: &[u8]) {
        let [ctx, chunk, ref input @ ..] = *data else {
            return;
        };
        let mut owned = decoder(ctx);
        let mut by_ref = decoder(ctx);
        let chunk = if chunk == 0 {
            input.len().max(1)
        } else {
            chunk as usize
        };

        // `fed`: bytes given to the decoders; `done`: bytes of the frames decoded so far.
        let mut fed = 0;
        let mut done = 0;
        for piece in input.chunks(chunk) {
            owned.receive(black_box(piece));
            by_ref.receive(black_box(piece));
            fed += piece.len();
            loop {
                let step = match (owned.next(), by_ref.next_ref()) {
                    (Ok(Some(msg)), Ok(Some(r))) => {
                        let end = check_frame(&msg, input, done, fed);
                        same(&msg, &r);
                        black_box((msg, r));
                        Step::Message(end)
                    }
                    (Ok(None), Ok(None)) => Step::NeedMore,
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "next() and next_ref() fail differently");
                        Step::Failed(a)
                    }
                    (a, b) => panic!("next() gave {a:?} but next_ref() gave {b:?}"),
                };
                match step {
                    Step::Message(end) => done = end,
                    Step::NeedMore => {
                        assert_eq!(
                            owned.buffered_len(),
                            fed - done,
                            "next(): bytes lost or invented"
                        );
                        assert_eq!(
                            by_ref.buffered_len(),
                            fed - done,
                            "next_ref(): bytes lost or invented"
                        );
                        break;
                    }
                    Step::Failed(e) => {
                        assert_eq!(owned.next(), Err(e.clone()), "next() error is not sticky");
                        assert_eq!(
                            by_ref.next_ref().err(),
                            Some(e.clone()),
                            "next_ref() error is not sticky"
                        );
                        owned.receive(&input[fed..]);
                        by_ref.receive(&input[fed..]);
                        assert_eq!(
                            owned.next(),
                            Err(e.clone()),
                            "next() error is not sticky after more input"
                        );
                        assert_eq!(
                            by_ref.next_ref().err(),
                            Some(e),
                            "next_ref() error is not sticky after more input"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Checks that the borrowed view is the same message as the owned one.
    fn same(msg: &BackendMessage, r: &BackendMessage<'_>) {
        match (msg, r) {
            (BackendMessage::DataRow(row), BackendMessage::DataRow(view)) => {
                assert_eq!(row.len(), view.len(), "DataRow column counts differ");
                assert!(
                    row.columns().eq(view.columns()),
                    "DataRow columns differ: {row:?} vs {view:?}"
                );
            }
            (BackendMessage::CopyData(c), BackendMessage::CopyData(view)) => {
                assert_eq!(c.data(), view.data(), "CopyData bytes differ");
            }
            (BackendMessage::DataRow(_) | BackendMessage::CopyData(_), _) => {
                panic!("next() gave {msg:?} but next_ref() gave {r:?}")
            }
            (_, m) => assert_eq!(msg, m, "next() and next_ref() differ"),
        }
    }
}

mod client_session {
    //! Arbitrary bytes from a "server", in chunks, through a [`Client`]: `receive`, then
    //! `poll_event` until `Ok(None)`, then `poll_transmit`, as the run-loop contract says. The
    //! application side plays along: it finishes the TLS or GSS "handshake" when the server accepts,
    //! sends a query once connected and after every ReadyForQuery, copies data when COPY FROM STDIN
    //! starts, and (with some configurations) tries commands at random moments.
    //!
    //! Input layout: byte 0 is the configuration, byte 1 the chunk size (0: everything at once), the
    //! rest is the stream the server sent.
    //!
    //! - bits 0-1: encryption: 0 none, 1 SSLRequest (refusal allowed), 2 GSSENCRequest (refusal
    //!   allowed), 3 SSLRequest (required);
    //! - bit 2: ask for protocol 3.2 (else 3.0);
    //! - bit 3: a password is configured;
    //! - bit 4: `channel_binding=require` (else prefer);
    //! - bit 5: the TLS layer hands over a certificate hash (for SCRAM-SHA-256-PLUS);
    //! - bits 6-7: what the application sends: 0 simple queries, 1 extended-query pipelines, 2 simple
    //!   queries plus a random command after every chunk, 3 pipelines plus random commands.
    //!
    //! Checks: no panic; the client never holds more undecoded bytes than it was given; every byte it
    //! sends decodes as frontend messages; an error is returned again by every later `poll_event`,
    //! even after more input, and every command then fails with `UsageError` (never a panic).

    use std::hint::black_box;

    use crate::{
        BackendMessage, Bind, ChannelBindingPolicy, Client, ClientConfig, ClientEvent, Encryption,
        FrontendDecoder, FrontendMessage, ProtocolVersion, Target, UsageError,
    };

    /// The most requests the application starts, so that a long stream of ReadyForQuery cannot make
    /// the pipeline (and the run) grow without bound.
    const MAX_REQUESTS: u32 = 64;

    struct App {
        c: Client,
        /// Decodes everything the client sends.
        sent: FrontendDecoder,
        policy: u8,
        end_point: Option<Vec<u8>>,
        requests: u32,
    }

    impl App {
        fn new(ctx: u8) -> Self {
            let mut config = ClientConfig::new("alice");
            config.database = Some("db".into());
            config.encryption = match ctx & 3 {
                0 => Encryption::None,
                1 => Encryption::Ssl { required: false },
                2 => Encryption::Gss { required: false },
                _ => Encryption::Ssl { required: true },
            };
            if ctx & 4 != 0 {
                config.max_protocol_version = ProtocolVersion::V3_2;
            }
            if ctx & 8 != 0 {
                config.password = Some(b"pencil".to_vec());
            }
            if ctx & 16 != 0 {
                config.channel_binding = ChannelBindingPolicy::Require;
            }
            // Deterministic runs, and no hostile iteration count that takes seconds.
            config.scram_nonce = Some("fyko+d2lbbFgONRv9qkxdawL".into());
            config.max_scram_iterations = 4096;
            let c = Client::new(config).expect("a valid configuration");
            let mut app = Self {
                c,
                sent: FrontendDecoder::new(),
                policy: ctx >> 6,
                end_point: (ctx & 32 != 0).then(|| vec![0xab; 32]),
                requests: 0,
            };
            app.transmit();
            app
        }

        /// Drains the bytes to send, which must decode as frontend messages.
        fn transmit(&mut self) {
            while let Some(b) = self.c.poll_transmit() {
                assert!(!b.is_empty(), "poll_transmit returned empty bytes");
                self.sent.receive(&b);
            }
            loop {
                match self.sent.next() {
                    Ok(Some(m)) => {
                        black_box(m);
                    }
                    Ok(None) => break,
                    Err(e) => panic!("the client sent a malformed message: {e}"),
                }
            }
        }

        /// Sends what the application sends when the connection is ready: a query, or a pipeline.
        fn request(&mut self) {
            // Events decoded before an error are still delivered; by then commands are refused.
            if self.requests >= MAX_REQUESTS || !self.c.is_ready() {
                return;
            }
            self.requests += 1;
            if self.policy & 1 == 0 {
                self.c.query("SELECT 1").expect("ready for a query");
                return;
            }
            let bind = Bind::new("", "", &[], &[Some(&b"1"[..]), None], &[]).expect("a valid Bind");
            // The shape pgbench -M extended sends, so that its captures make good seeds.
            self.c.parse("", "SELECT $1, $2", &[23, 25]).expect("ready");
            self.c.bind(&bind).expect("ready");
            self.c.describe(Target::Portal, "").expect("ready");
            self.c.execute("", 0).expect("ready");
            self.c.sync().expect("ready");
        }

        /// Tries a command chosen by `k`: whatever the state, it succeeds or returns a
        /// `UsageError`, and never panics.
        fn probe(&mut self, k: usize) {
            let r: Result<(), UsageError> = match k % 10 {
                0 => self.c.query("SELECT 2").map(drop),
                1 => self.c.parse("s", "SELECT 3", &[]).map(drop),
                2 => self.c.execute("", 1).map(drop),
                3 => self.c.sync().map(drop),
                4 => self.c.flush(),
                5 => self.c.copy_data(b"1\t2\n"),
                6 => self.c.copy_done(),
                7 => self.c.copy_fail("stop"),
                8 => self.c.close(Target::Statement, "s").map(drop),
                _ => self.c.tls_established(self.end_point.clone()),
            };
            black_box(r.ok());
        }

        fn event(&mut self, e: ClientEvent) {
            match &e {
                ClientEvent::SslResponse { accepted: true } => {
                    // The I/O layer's TLS handshake "succeeds" at once.
                    let _ = self.c.tls_established(self.end_point.clone());
                }
                ClientEvent::GssEncResponse { accepted: true } => {
                    let _ = self.c.gss_established();
                }
                ClientEvent::AuthenticationRequest(_) => {
                    let token = FrontendMessage::GssResponse(
                        crate::GssResponse::new(&b"token"[..]).expect("a short token"),
                    );
                    let _ = self.c.send_auth_response(&token);
                }
                ClientEvent::Connected { .. } => self.request(),
                ClientEvent::Response { message, .. } => match message {
                    BackendMessage::ReadyForQuery(_) if self.c.pending_sync_points() == 0 => {
                        self.request()
                    }
                    BackendMessage::CopyInResponse(_) | BackendMessage::CopyBothResponse(_) => {
                        let _ = self.c.copy_data(b"1\t2\n");
                        let _ = self.c.copy_done();
                    }
                    _ => {}
                },
                _ => {}
            }
            black_box(e);
        }
    }

    pub(super) fn run(data: &[u8]) {
        let [ctx, chunk, ref input @ ..] = *data else {
            return;
        };
        let mut app = App::new(ctx);
        let chunk = if chunk == 0 {
            input.len().max(1)
        } else {
            chunk as usize
        };
        let mut fed = 0;
        for (i, piece) in input.chunks(chunk).enumerate() {
            app.c.receive(black_box(piece));
            fed += piece.len();
            loop {
                match app.c.poll_event() {
                    Ok(Some(e)) => {
                        let e = e.into_owned();
                        app.event(e)
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Sticky, even after more input, and every command is refused.
                        assert_eq!(
                            app.c.poll_event().map(|e| e.map(ClientEvent::into_owned)),
                            Err(e.clone()),
                            "error is not sticky"
                        );
                        app.c.receive(&input[fed..]);
                        app.c.receive_eof();
                        assert_eq!(
                            app.c.poll_event().map(|e| e.map(ClientEvent::into_owned)),
                            Err(e.clone()),
                            "error is not sticky after more input"
                        );
                        assert!(app.c.query("SELECT 1").is_err());
                        assert!(app.c.sync().is_err());
                        assert!(app.c.copy_data(b"x").is_err());
                        assert!(!app.c.is_ready());
                        app.transmit();
                        black_box(e);
                        return;
                    }
                }
                app.transmit();
            }
            assert!(
                app.c.buffered_len() <= fed,
                "the client holds {} undecoded bytes but was given {fed}",
                app.c.buffered_len()
            );
            if app.policy & 2 != 0 {
                app.probe(i + piece.len());
            }
            app.transmit();
        }
        // The server hangs up.
        app.c.receive_eof();
        loop {
            match app.c.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    app.event(e)
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(
                        app.c.poll_event().map(|e| e.map(ClientEvent::into_owned)),
                        Err(e),
                        "error is not sticky after EOF"
                    );
                    break;
                }
            }
            app.transmit();
        }
        app.transmit();
    }
}

mod server_session {
    //! Arbitrary bytes from a "client", in chunks, through a [`Server`]: `receive`, then
    //! `poll_event` until `Ok(None)`, then `poll_transmit`, as the run-loop contract says. The
    //! application answers every event with a scripted policy: it accepts or refuses encryption,
    //! authenticates, and answers each frontend message generically (Query with CommandComplete and
    //! ReadyForQuery, Parse with ParseComplete, Bind with BindComplete, Describe with NoData, Execute
    //! with CommandComplete or PortalSuspended, Close with CloseComplete, Sync with ReadyForQuery,
    //! FunctionCall with a result and ReadyForQuery, COPY in both directions...). Every one of those
    //! answers must be accepted: the server hands out a message only when it can be answered.
    //!
    //! Input layout: byte 0 is the policy, byte 1 the chunk size (0: everything at once), the rest is
    //! the stream the client sent.
    //!
    //! - bits 0-1: authentication: 0 trust, 1 SCRAM-SHA-256 (-PLUS over TLS), 2 MD5, 3 cleartext;
    //! - bit 2: newest protocol 3.2 (else 3.0);
    //! - bit 3: accept SSLRequest (the TLS "handshake" then succeeds at once, with a certificate
    //!   hash); else refuse it;
    //! - bit 4: accept GSSENCRequest; else refuse it;
    //! - bit 5: results carry a row, and Execute with a row limit is suspended;
    //! - bit 6: a notice and a ParameterStatus after every answer;
    //! - bit 7: after every chunk, an answer chosen at random (right or wrong: it succeeds or returns
    //!   a `UsageError`, and never panics).
    //!
    //! A Query's text picks its answer: empty: EmptyQueryResponse; holding `/0`: an error; `COPY`
    //! with `STDIN`: COPY FROM STDIN; other `COPY`: COPY TO STDOUT; `BEGIN` starts a transaction
    //! (`T`, `E` after an error), `COMMIT`, `ROLLBACK` and `END` end it; anything else: a result. A
    //! Parse whose query holds `/0` or `no_such` fails, and the server discards what follows until
    //! Sync. (The captures used as seeds say `SELECT 1/0` and `SELECT no_such_column`.)
    //!
    //! After every chunk the session is suspended if it is idle (`Server::suspend`) and resumed at
    //! once, so the chunks that follow go to a resumed session.
    //!
    //! Checks: no panic; the server never holds more undecoded bytes than it was given; an error is
    //! returned again by every later `poll_event`, even after more input, and every answer is then
    //! refused with `UsageError::Closed`; a resumed session is ready, with nothing in flight, and
    //! keeps its transaction status and protocol version.

    use std::hint::black_box;
    use std::sync::OnceLock;

    use crate::auth::{md5, ScramVerifier};
    use crate::{
        CopyResponse, ErrorFields, FieldCode, FieldDescription, Format, FrontendMessage,
        ProtocolVersion, RowDescription, Server, ServerAuth, ServerConfig, ServerEvent, Target,
        TransactionStatus, UsageError,
    };

    fn verifier() -> ScramVerifier {
        static V: OnceLock<ScramVerifier> = OnceLock::new();
        V.get_or_init(|| {
            ScramVerifier::new("pencil", b"0123456789abcdef", 4096).expect("a valid verifier")
        })
        .clone()
    }

    fn config(max_3_2: bool) -> std::sync::Arc<ServerConfig> {
        static C: OnceLock<[std::sync::Arc<ServerConfig>; 2]> = OnceLock::new();
        let c = C.get_or_init(|| {
            // A fixed secret: doomed exchanges and runs are reproducible.
            let old = ServerConfig {
                max_protocol_version: ProtocolVersion::V3_0,
                mock_auth_secret: [7; 32],
                ..ServerConfig::default()
            };
            let mut new = old.clone();
            new.max_protocol_version = ProtocolVersion::V3_2;
            [old.into(), new.into()]
        });
        c[usize::from(max_3_2)].clone()
    }

    fn fields(severity: &str, code: &str) -> ErrorFields {
        ErrorFields::new([
            (FieldCode::Severity, severity),
            (FieldCode::Code, code),
            (FieldCode::Message, "scripted"),
        ])
        .expect("valid fields")
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
        .expect("a valid description")
    }

    /// The result of `tls_established` or `gss_established` right after accepting: success, or
    /// `Closed` when accepting found plaintext bytes already buffered (CVE-2021-23214).
    fn established(r: Result<(), UsageError>) {
        match r {
            Ok(()) | Err(UsageError::Closed) => {}
            Err(e) => panic!("{OK}: {e}"),
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    struct App {
        s: Server,
        policy: u8,
        status: TransactionStatus,
    }

    const OK: &str = "the server refused a valid answer";

    impl App {
        fn auth(&self) -> ServerAuth {
            match self.policy & 3 {
                0 => ServerAuth::Trust,
                1 => ServerAuth::Scram {
                    verifier: Some(verifier()),
                },
                2 => ServerAuth::Md5 {
                    stored: Some(md5::stored_hash("alice", "pencil")),
                },
                _ => ServerAuth::Password {
                    stored: Some(md5::stored_hash("alice", "pencil")),
                },
            }
        }

        fn event(&mut self, e: ServerEvent) {
            let s = &mut self.s;
            match &e {
                ServerEvent::SslRequest => {
                    let accept = self.policy & 8 != 0;
                    s.accept_ssl(accept).expect(OK);
                    if accept {
                        // With plaintext buffered behind the request, accepting already failed the
                        // connection (the error comes from poll_event): then this is refused.
                        established(s.tls_established(Some(vec![0xab; 32])));
                    }
                }
                ServerEvent::GssEncRequest => {
                    let accept = self.policy & 16 != 0;
                    s.accept_gssenc(accept).expect(OK);
                    if accept {
                        established(s.gss_established());
                    }
                }
                ServerEvent::DirectTls => {
                    black_box(s.take_buffered());
                    s.tls_established(Some(vec![0xab; 32])).expect(OK);
                }
                ServerEvent::Startup { .. } => {
                    let auth = self.auth();
                    self.s.authenticate(auth).expect(OK);
                }
                ServerEvent::AuthResponse(_) => self.s.auth_succeeded().expect(OK),
                ServerEvent::Message(m) => {
                    self.answer(m);
                    if self.policy & 64 != 0 {
                        self.s.notice(&fields("NOTICE", "00000")).expect(OK);
                        self.s.parameter_status("TimeZone", "UTC").expect(OK);
                    }
                }
                _ => {}
            }
            black_box(e);
        }

        fn ready(&mut self) {
            self.s.ready_for_query(self.status).expect(OK);
        }

        fn fail(&mut self, code: &str) {
            self.s.error_response(&fields("ERROR", code)).expect(OK);
            if self.status == TransactionStatus::InTransaction {
                self.status = TransactionStatus::Failed;
            }
        }

        fn answer(&mut self, m: &FrontendMessage) {
            let rows = self.policy & 32 != 0;
            match m {
                FrontendMessage::Query(q) => {
                    let sql = q.sql();
                    let copy = CopyResponse::new(Format::Text, &[]).expect("a few column formats");
                    if sql.is_empty() {
                        self.s.empty_query_response().expect(OK);
                    } else if contains(sql, b"/0") {
                        self.fail("22012");
                    } else if sql.starts_with(b"COPY") && contains(sql, b"STDIN") {
                        // The Query goes on with the client's CopyData, CopyDone or CopyFail.
                        self.s.copy_in_response(&copy).expect(OK);
                        return;
                    } else if sql.starts_with(b"COPY") {
                        self.s.copy_out_response(&copy).expect(OK);
                        self.s.copy_data(b"1\n").expect(OK);
                        self.s.copy_done().expect(OK);
                        self.s.command_complete("COPY 1").expect(OK);
                    } else {
                        if sql.starts_with(b"BEGIN") {
                            self.status = TransactionStatus::InTransaction;
                        } else if [&b"COMMIT"[..], b"ROLLBACK", b"END"]
                            .iter()
                            .any(|w| sql.starts_with(w))
                        {
                            self.status = TransactionStatus::Idle;
                        }
                        if rows {
                            self.s.row_description(&row_description()).expect(OK);
                            self.s.data_row(&[Some(b"1")]).expect(OK);
                        }
                        self.s.command_complete("SELECT 1").expect(OK);
                    }
                    self.ready();
                }
                FrontendMessage::Parse(p) => {
                    if contains(p.query(), b"/0") || contains(p.query(), b"no_such") {
                        self.fail("42703");
                    } else {
                        self.s.parse_complete().expect(OK);
                    }
                }
                FrontendMessage::Bind(_) => self.s.bind_complete().expect(OK),
                FrontendMessage::Describe(d) => {
                    if d.target() == Target::Statement {
                        self.s.parameter_description(&[23]).expect(OK);
                    }
                    if rows {
                        self.s.row_description(&row_description()).expect(OK);
                    } else {
                        self.s.no_data().expect(OK);
                    }
                }
                FrontendMessage::Execute(e) => {
                    // One column, as the RowDescription of a Describe answers (the client
                    // checks DataRow counts against it).
                    if rows {
                        self.s.data_row(&[None]).expect(OK);
                    }
                    if rows && e.max_rows() > 0 {
                        self.s.portal_suspended().expect(OK);
                    } else {
                        self.s.command_complete("SELECT 1").expect(OK);
                    }
                }
                FrontendMessage::Close(_) => self.s.close_complete().expect(OK),
                FrontendMessage::Sync => self.ready(),
                FrontendMessage::Flush => {}
                FrontendMessage::FunctionCall(_) => {
                    self.s.function_call_response(Some(b"42")).expect(OK);
                    self.ready();
                }
                FrontendMessage::CopyData(_) => {}
                FrontendMessage::CopyDone => {
                    self.s.command_complete("COPY 1").expect(OK);
                    self.ready();
                }
                FrontendMessage::CopyFail(_) => {
                    self.fail("57014");
                    self.ready();
                }
                other => panic!("the server handed out {other:?} to answer"),
            }
        }

        /// An answer chosen by `k`, right or wrong for the current state.
        fn probe(&mut self, k: usize) {
            let s = &mut self.s;
            let r: Result<(), UsageError> = match k % 12 {
                0 => s.ready_for_query(TransactionStatus::Idle),
                1 => s.data_row(&[None]),
                2 => s.command_complete("SELECT 0"),
                3 => s.parse_complete(),
                4 => s.bind_complete(),
                5 => s.no_data(),
                6 => s.error_response(&fields("ERROR", "XX000")),
                7 => s.copy_data(b"x"),
                8 => s.copy_done(),
                9 => s.authenticate(ServerAuth::Trust),
                10 => s.accept_ssl(false),
                _ => s.notification(1, "c", "p"),
            };
            black_box(r.ok());
        }
    }

    pub(super) fn run(data: &[u8]) {
        let [policy, chunk, ref input @ ..] = *data else {
            return;
        };
        let mut app = App {
            s: Server::new(config(policy & 4 != 0)),
            policy,
            status: TransactionStatus::Idle,
        };
        let chunk = if chunk == 0 {
            input.len().max(1)
        } else {
            chunk as usize
        };
        let mut fed = 0;
        for (i, piece) in input.chunks(chunk).enumerate() {
            app.s.receive(black_box(piece));
            fed += piece.len();
            loop {
                match app.s.poll_event() {
                    Ok(Some(e)) => {
                        let e = e.into_owned();
                        app.event(e)
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(
                            app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)),
                            Err(e.clone()),
                            "error is not sticky"
                        );
                        app.s.receive(&input[fed..]);
                        app.s.receive_eof();
                        assert_eq!(
                            app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)),
                            Err(e.clone()),
                            "error is not sticky after more input"
                        );
                        assert!(!app.s.is_ready());
                        let closed = Err(UsageError::Closed);
                        assert_eq!(app.s.ready_for_query(TransactionStatus::Idle), closed);
                        assert_eq!(app.s.data_row(&[None]), closed);
                        assert_eq!(app.s.notice(&fields("NOTICE", "00000")), closed);
                        assert_eq!(app.s.authenticate(ServerAuth::Trust), closed);
                        // The FATAL ErrorResponse (if any) can still be flushed.
                        while let Some(b) = app.s.poll_transmit() {
                            black_box(b);
                        }
                        assert!(app.s.poll_transmit().is_none());
                        black_box(e);
                        return;
                    }
                }
            }
            assert!(
                app.s.buffered_len() <= fed,
                "the server holds {} undecoded bytes but was given {fed}",
                app.s.buffered_len()
            );
            if policy & 128 != 0 {
                app.probe(i + piece.len());
            }
            while let Some(b) = app.s.poll_transmit() {
                assert!(!b.is_empty(), "poll_transmit returned empty bytes");
                black_box(b);
            }
            // Suspended whenever idle, and resumed at once: the chunks that follow go to the
            // resumed session.
            let s = std::mem::replace(&mut app.s, Server::new(config(false)));
            app.s = match s.suspend() {
                Ok(idle) => {
                    let status = idle.transaction_status();
                    let version = idle.protocol_version();
                    let s = idle.resume();
                    assert!(s.is_ready() && s.in_flight() == 0 && s.buffered_len() == 0);
                    assert_eq!(s.transaction_status(), status);
                    assert_eq!(s.protocol_version(), version);
                    s
                }
                Err(s) => s,
            };
        }
        // The client hangs up.
        app.s.receive_eof();
        loop {
            match app.s.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    app.event(e)
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(
                        app.s.poll_event().map(|e| e.map(ServerEvent::into_owned)),
                        Err(e),
                        "error is not sticky after EOF"
                    );
                    break;
                }
            }
        }
        while let Some(b) = app.s.poll_transmit() {
            black_box(b);
        }
    }
}

mod pair;

mod trace {
    //! Both directions' bytes through a [`Tracer`], and each chunk through the [`Formatter`].
    //!
    //! Input layout: byte 0 chooses the tracer (bit 0 regress mode, bit 1 timestamps from a fixed
    //! clock, bits 2-7 the most bytes kept per message, 5 + 8 * n), then chunks: one byte (bit 7
    //! the direction, set for the backend; bits 0-6 the length) and that many bytes.
    //!
    //! Checks: no panic; every line is a message line (`F` or `B` after the optional timestamp)
    //! or libpq's `mismatched message length` line; the tracer keeps at most the cap per
    //! direction.

    use std::sync::{Arc, Mutex};

    use crate::trace::{Direction, Formatter, Timestamp, TraceFlags, TraceSink, Tracer};

    struct Sink {
        lines: Arc<Mutex<Vec<Vec<u8>>>>,
        clock: bool,
    }

    impl TraceSink for Sink {
        fn line(&mut self, line: &[u8]) {
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.to_vec());
        }
        fn now(&mut self) -> Option<Timestamp> {
            self.clock.then(|| Timestamp::new(1_738_326_896, 1))
        }
    }

    pub(super) fn run(data: &[u8]) {
        let Some((&config, mut rest)) = data.split_first() else {
            return;
        };
        let regress = config & 1 != 0;
        let clock = config & 2 != 0;
        let max = 5 + 8 * usize::from(config >> 2);
        let flags = if regress {
            TraceFlags::REGRESS_MODE
        } else {
            TraceFlags::empty()
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut tracer = Tracer::new(Sink {
            lines: Arc::clone(&lines),
            clock,
        })
        .with_flags(flags)
        .with_max_message_len(max);
        let formatter = Formatter::new(flags);
        let mut line = Vec::new();
        while let Some((&head, tail)) = rest.split_first() {
            let n = usize::from(head & 0x7f).min(tail.len());
            let (chunk, after) = tail.split_at(n);
            rest = after;
            let direction = if head & 0x80 != 0 {
                Direction::Backend
            } else {
                Direction::Frontend
            };
            match direction {
                Direction::Frontend => tracer.frontend(chunk),
                Direction::Backend => tracer.backend(chunk),
            }
            assert!(
                tracer.buffer_capacity() <= 2 * max,
                "the tracer kept too much"
            );
            line.clear();
            let _ = formatter.message(&mut line, direction, chunk, None);
            line.clear();
            formatter.startup_packet(&mut line, chunk);
        }
        let stamp = b"2025-01-31 12:34:56.000001\t";
        for l in lines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let l = if clock && l.starts_with(stamp) {
                &l[stamp.len()..]
            } else {
                &l[..]
            };
            assert!(
                l.starts_with(b"F\t")
                    || l.starts_with(b"B\t")
                    || l.starts_with(b"mismatched message length: "),
                "not a trace line: {:?}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
