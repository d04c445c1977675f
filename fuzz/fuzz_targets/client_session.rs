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
#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use pgproto::{
    BackendMessage, Bind, ChannelBindingPolicy, Client, ClientConfig, ClientEvent, Encryption,
    FormatCodes, FrontendDecoder, FrontendMessage, ProtocolVersion, Target, UsageError, Values,
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
        let bind = Bind::new(
            "",
            "",
            FormatCodes::default(),
            Values::new([Some(&b"1"[..]), None]).expect("two values"),
            FormatCodes::default(),
        )
        .expect("a valid Bind");
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
                    pgproto::GssResponse::new(&b"token"[..]).expect("a short token"),
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

fuzz_target!(|data: &[u8]| {
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
                    assert_eq!(app.c.poll_event().map(|e| e.map(ClientEvent::into_owned)), Err(e.clone()), "error is not sticky");
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
                assert_eq!(app.c.poll_event().map(|e| e.map(ClientEvent::into_owned)), Err(e), "error is not sticky after EOF");
                break;
            }
        }
        app.transmit();
    }
    app.transmit();
});
