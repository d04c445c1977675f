//! The SQL functions added to SQLite (`pg_sleep`, `pg_notify`, `current_setting`, `version`,
//! `pg_backend_pid`) and the busy handler that makes a connection wait for another's lock.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use crate::session::Local;

/// Counts the times any connection may have released a lock; SQLite waits on it.
static RELEASED: Mutex<u64> = Mutex::new(0);

static WAKE: Condvar = Condvar::new();

/// How long a statement waits for another connection's lock before it fails with "database
/// is locked".
const LOCK_WAIT: Duration = Duration::from_secs(10);

thread_local! {
    /// The cancel flag of the session running on this thread (see [`enter`]).
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };

    /// When the current wait for a lock began.
    static WAITING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes `cancel` the flag the busy handler checks on this thread: call it before a session's
/// work on a thread of the blocking pool (a session runs on any of them, one at a time).
pub(crate) fn enter(cancel: &Arc<AtomicBool>) {
    CANCEL.with(|c| *c.borrow_mut() = Some(cancel.clone()));
}

/// Wakes every connection waiting for a lock: call after a statement or transaction ends.
pub(crate) fn released() {
    *RELEASED.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    WAKE.notify_all();
}

/// SQLite's busy handler: instead of sleeping in growing steps, wait until some connection
/// ends a statement or transaction (at most 10 ms a try), for [`LOCK_WAIT`] in all (counted
/// in time: under load, releases come faster than every 10 ms), or until a cancel.
fn busy(count: i32) -> bool {
    let cancelled = CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    });
    let now = Instant::now();
    let since = WAITING_SINCE.with(|w| {
        let since = match w.get() {
            Some(t) if count > 0 => t,
            _ => now,
        };
        w.set(Some(since));
        since
    });
    if cancelled || now.duration_since(since) >= LOCK_WAIT {
        return false;
    }
    let seen = RELEASED.lock().unwrap_or_else(PoisonError::into_inner);
    let start = *seen;
    let _ = WAKE.wait_timeout_while(seen, Duration::from_millis(10), |n| *n == start);
    true
}

fn user_error(message: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

/// Adds `pg_sleep`, `pg_notify`, `current_setting`, `version` and `pg_backend_pid` to `db`.
pub(crate) fn register_functions(
    db: &Connection,
    pid: i32,
    local: &Arc<Mutex<Local>>,
    cancel: &Arc<AtomicBool>,
) -> rusqlite::Result<()> {
    enter(cancel);
    db.busy_handler(Some(busy))?;
    let flags = FunctionFlags::SQLITE_UTF8;
    let flag = cancel.clone();
    db.create_scalar_function("pg_sleep", 1, flags, move |ctx| {
        let secs = match ctx.get_raw(0) {
            ValueRef::Integer(i) => i as f64,
            ValueRef::Real(f) => f,
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| user_error("pg_sleep: invalid number of seconds".into()))?,
            _ => 0.0,
        };
        let until = Instant::now() + Duration::from_secs_f64(secs.clamp(0.0, 1e6));
        loop {
            if flag.load(Ordering::SeqCst) {
                return Err(user_error("canceling statement due to user request".into()));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Value::Null);
            }
            std::thread::sleep((until - now).min(Duration::from_millis(10)));
        }
    })?;
    let notify_local = local.clone();
    db.create_scalar_function("pg_notify", 2, flags, move |ctx| {
        let channel: String = ctx.get(0)?;
        let payload: String = ctx.get::<Option<String>>(1)?.unwrap_or_default();
        if payload.len() >= 8000 {
            return Err(user_error("payload string too long".into()));
        }
        notify_local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue_notify(&channel, &payload)
            .map_err(user_error)?;
        Ok(Value::Null)
    })?;
    let setting_local = local.clone();
    db.create_scalar_function("current_setting", 1, flags, move |ctx| {
        let name: String = ctx.get(0)?;
        let local = setting_local.lock().unwrap_or_else(PoisonError::into_inner);
        match local.settings.get(&name.to_lowercase()) {
            Some(s) => Ok(s.value.clone()),
            None => Err(user_error(format!(
                "unrecognized configuration parameter \"{name}\""
            ))),
        }
    })?;
    let version = format!(
        "PostgreSQL {} with SQLite {}",
        crate::SERVER_VERSION,
        rusqlite::version()
    );
    db.create_scalar_function("version", 0, flags, move |_| Ok(version.clone()))?;
    db.create_scalar_function("pg_backend_pid", 0, flags, move |_| Ok(i64::from(pid)))?;
    Ok(())
}
