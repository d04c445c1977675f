//! The application's hold on a connection beyond answering: the configuration chosen once the
//! StartupMessage is known, the end of a start-up the application controls
//! ([`StartupEnd::Application`](crate::StartupEnd::Application)), and the requests in flight.

use super::startup::State;
use super::{Phase, Server};
use crate::error::UsageError;
use crate::message::backend::BackendKeyData;
use crate::message::common::ProtocolVersion;
use crate::message::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};
use crate::ServerConfig;

impl Server {
    /// Replaces the configuration, before authentication begins: for settings that depend on
    /// the user or the database, chosen once [`ServerEvent::Startup`](crate::ServerEvent) has
    /// told them (the parameters to report, [`StartupEnd`](crate::StartupEnd), the cancel key length, the pipeline
    /// depth, the limits of the messages still to come). Settings about the StartupMessage
    /// itself (`max_protocol_version`, `limits.startup`) only matter if set before it arrives.
    ///
    /// Fails with [`UsageError::NotAllowed`] once [`Server::authenticate`] has been called, and
    /// with [`UsageError::Closed`] once the connection has failed or been closed.
    ///
    /// ```
    /// use pgproto::{Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd};
    ///
    /// let mut server = Server::new(ServerConfig::default());
    /// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    /// let Some(ServerEvent::Startup { message, .. }) = server.poll_event()? else { panic!() };
    /// if message.param("user") == Some(&b"alice"[..]) {
    ///     let mut config = ServerConfig::default();
    ///     config.set_parameter("server_version", "18.1 (for alice)");
    ///     config.startup_end = StartupEnd::Application;
    ///     server.configure(config)?;
    /// }
    /// server.authenticate(ServerAuth::Trust)?;
    /// assert!(matches!(server.poll_event()?, Some(ServerEvent::Authenticated)));
    /// assert_eq!(server.poll_transmit().unwrap(), &b"R\0\0\0\x08\0\0\0\0"[..]); // AuthenticationOk only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn configure(
        &mut self,
        config: impl Into<std::sync::Arc<ServerConfig>>,
    ) -> Result<(), UsageError> {
        let s = self.startup_state("change the configuration")?;
        if !s.state.before_auth() {
            return Err(self.not_allowed("change the configuration"));
        }
        let config = config.into();
        self.core.decoder.set_limits(config.limits);
        self.config = config;
        Ok(())
    }

    /// Ends a start-up the application controls ([`StartupEnd::Application`](crate::StartupEnd::Application)): queues
    /// BackendKeyData and ReadyForQuery, and the query phase begins.
    ///
    /// `key` is the cancel key the client gets (a proxy chooses its own, to route cancels);
    /// `None` draws one from [`ServerConfig::random`] as the automatic start-up does. Before
    /// this, after [`ServerEvent::Authenticated`](crate::ServerEvent), the application may send
    /// [`Server::parameter_status`] and [`Server::notice`], or refuse the session with
    /// [`Server::reject`] (a FATAL error after AuthenticationOk, as PostgreSQL sends 3D000 for
    /// a database that does not exist).
    ///
    /// Fails with [`UsageError::NotAllowed`] unless AuthenticationOk was sent in application
    /// mode and the start-up is not finished, with [`UsageError::Encode`] when `key`'s secret
    /// does not fit the session's protocol version (4 bytes in 3.0, 4 to 256 in 3.2), and with
    /// [`UsageError::Closed`] once the connection has failed or been closed. If the random
    /// source fails, the connection ends with [`Error::Entropy`](crate::Error), returned by
    /// [`Server::poll_event`].
    ///
    /// ```
    /// use pgproto::{BackendKeyData, Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd};
    ///
    /// let mut config = ServerConfig::default();
    /// config.startup_end = StartupEnd::Application;
    /// let mut server = Server::new(config);
    /// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    /// while let Some(event) = server.poll_event()? {
    ///     match event {
    ///         ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust)?,
    ///         ServerEvent::Authenticated => {
    ///             server.parameter_status("server_version", "18.1")?;
    ///             server.finish_startup(Some(BackendKeyData::new(42, [1, 2, 3, 4])?))?;
    ///         }
    ///         _ => {}
    ///     }
    /// }
    /// let bytes = server.poll_transmit().unwrap();
    /// assert!(bytes.ends_with(b"K\0\0\0\x0c\0\0\0\x2a\x01\x02\x03\x04Z\0\0\0\x05I"));
    /// assert!(server.is_ready());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish_startup(&mut self, key: Option<BackendKeyData>) -> Result<(), UsageError> {
        let s = self.startup_state("finish the start-up")?;
        if !matches!(s.state, State::AwaitStartupEnd) {
            return Err(self.not_allowed("finish the start-up"));
        }
        let key = match key {
            Some(k) => {
                let len = k.secret_key().len();
                let fits = if self.version >= ProtocolVersion::V3_2 {
                    (MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&len)
                } else {
                    len == MIN_CANCEL_KEY_LEN
                };
                if !fits {
                    return Err(UsageError::Encode(crate::EncodeError::OutOfRange {
                        field: "cancel key",
                        reason: "4 bytes in protocol 3.0, 4 to 256 in 3.2",
                    }));
                }
                k
            }
            None => match self.random_key() {
                Some(k) => k,
                None => return Ok(()),
            },
        };
        self.send_key_and_ready(key);
        Ok(())
    }

    /// Whether the start-up waits for [`Server::finish_startup`] (AuthenticationOk was sent in
    /// application mode).
    pub fn awaits_startup_end(&self) -> bool {
        matches!(&self.phase, Phase::Startup(s) if matches!(s.state, State::AwaitStartupEnd))
            && self.core.error.is_none()
    }

    /// The number of requests handed out by [`Server::poll_event`] and not yet answered (at
    /// most [`ServerConfig::pipeline_depth`]); 0 when idle.
    pub fn in_flight(&self) -> usize {
        match &self.phase {
            Phase::Ready(q) => usize::from(q.current.is_some()) + q.behind.len(),
            _ => 0,
        }
    }
}
