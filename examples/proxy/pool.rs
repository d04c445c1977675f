//! The pool: at most `--pool-size` upstream connections, open or being opened, handed to one
//! client session at a time, first come first served.
//!
//! A semaphore holds one permit per connection the pool may have; a session takes a permit,
//! then an idle connection or, if there is none, opens one. So connections are only opened
//! while fewer than the pool size exist, and a session that waits for a permit waits its turn
//! (tokio's semaphore is fair).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::upstream::{Target, Upstream};

/// An upstream connection lent to a session, with its place in the pool.
pub(crate) struct Lease {
    pub(crate) upstream: Box<Upstream>,
    _permit: OwnedSemaphorePermit,
}

/// The pool.
pub(crate) struct Pool {
    pub(crate) target: Target,
    permits: Arc<Semaphore>,
    // Boxed: a lease moves the connection to its session and back without copying it.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Upstream>>>,
    /// The parameters the first connection reported: what clients are told at log-in.
    params: OnceLock<Vec<(String, String)>>,
}

impl Pool {
    pub(crate) fn new(target: Target, size: usize) -> Self {
        Self {
            target,
            permits: Arc::new(Semaphore::new(size.max(1))),
            idle: Mutex::new(Vec::new()),
            params: OnceLock::new(),
        }
    }

    /// A connection for a session: an idle one, or a new one; waits while the pool is at its
    /// size.
    pub(crate) async fn acquire(&self) -> Result<Lease, String> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the pool is closed".to_string())?;
        // The most recently used idle connection that is still sound (the server may have
        // closed one while it waited: a restart, pg_terminate_backend, idle timeouts).
        let idle = loop {
            let next = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match next {
                Some(mut u) => {
                    if u.conn.idle_and_open() {
                        break Some(u);
                    }
                }
                None => break None,
            }
        };
        let upstream = match idle {
            Some(u) => u,
            None => {
                let u = Box::new(self.target.connect().await?);
                if self.params.get().is_none() {
                    let _ = self.params.set(u.params.clone());
                }
                u
            }
        };
        Ok(Lease {
            upstream,
            _permit: permit,
        })
    }

    /// Gives a connection back: kept for the next session if it is sound and idle, closed
    /// otherwise.
    pub(crate) fn release(&self, lease: Lease) {
        let Lease { upstream, _permit } = lease;
        if upstream.reusable() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(upstream);
        }
        // The permit goes back when `_permit` drops, after the connection is in the idle list.
    }

    /// The upstream server's parameters, for a client's log-in (a connection is opened for
    /// them if none was yet).
    pub(crate) async fn params(&self) -> Result<Vec<(String, String)>, String> {
        if let Some(p) = self.params.get() {
            return Ok(p.clone());
        }
        let lease = self.acquire().await?;
        let p = lease.upstream.params.clone();
        self.release(lease);
        Ok(p)
    }

    /// What every client was told at log-in (the first connection's parameters; empty before
    /// any client logged in): the values a client keeps for the tracked parameters it did not
    /// set itself.
    pub(crate) fn told(&self) -> &[(String, String)] {
        self.params.get().map_or(&[], Vec::as_slice)
    }
}
