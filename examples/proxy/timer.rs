//! Timers, on a thread of their own.
//!
//! The runtime that moves the bytes has no timer driver: with one, each of its waits for the
//! sockets also reads the clock and turns the timer wheel (measured: about 2,600 instructions
//! per pgbench transaction in transaction mode, 6% of the proxy's work), although the proxy's
//! timers (a connect timeout, the parking clock's tick, a few others) rarely fire. They are
//! made here instead, registered with a small runtime that does nothing else; when one fires,
//! it wakes the task that waits for it, wherever that task runs.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::{Sleep, Timeout};

static TIMERS: OnceLock<Handle> = OnceLock::new();

/// Starts the timers' thread (once; later calls do nothing).
pub(crate) fn start() -> io::Result<()> {
    if TIMERS.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let _ = TIMERS.set(runtime.handle().clone());
    std::thread::Builder::new()
        .name("timers".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(())
}

fn handle() -> &'static Handle {
    TIMERS
        .get()
        .expect("timer::start() runs before any timer is made")
}

/// `tokio::time::sleep`, on the timers' thread.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    let _inside = handle().enter();
    tokio::time::sleep(duration)
}

/// `tokio::time::timeout`, on the timers' thread.
pub(crate) fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    let _inside = handle().enter();
    tokio::time::timeout(duration, future)
}

/// Spawns `future` on the timers' thread (a task that only waits on timers).
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
    handle().spawn(future);
}
