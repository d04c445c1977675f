//! A recording TCP proxy on 127.0.0.1 (std only): real clients connect to it, it forwards
//! every byte to a real server and keeps both directions of each connection, for tests that
//! decode real traffic (`pg_recvlogical`, `pg_receivewal`, `pg_basebackup`...).
//!
//! ```ignore
//! let rec = Recorder::start(cluster.addr());
//! // ... run a client against 127.0.0.1:rec.port() ...
//! let connections = rec.finish(); // waits for every connection to close
//! let (client_bytes, server_bytes) = &connections[0];
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What one connection carried: the client's bytes and the server's bytes.
pub(crate) type Recorded = (Vec<u8>, Vec<u8>);

/// A running proxy. Connections are numbered in the order they were accepted.
pub(crate) struct Recorder {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<Vec<JoinHandle<Recorded>>>>,
}

impl Recorder {
    /// Starts a proxy in front of `upstream` on a free port of 127.0.0.1.
    pub(crate) fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recording proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                connections.push(std::thread::spawn(move || relay(client, upstream)));
            }
            connections
        });
        Self {
            port,
            stop,
            accept: Some(accept),
        }
    }

    /// The proxy's port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, waits for every connection to end, and returns what each carried.
    pub(crate) fn finish(mut self) -> Vec<Recorded> {
        self.stop_accepting();
        let handles = self
            .accept
            .take()
            .expect("finish runs once")
            .join()
            .expect("accept thread");
        handles
            .into_iter()
            .map(|h| h.join().expect("relay thread"))
            .collect()
    }

    fn stop_accepting(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop_accepting();
        }
    }
}

/// Forwards both directions until both are closed; returns (client bytes, server bytes).
fn relay(client: TcpStream, upstream: SocketAddr) -> Recorded {
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(10)) else {
        return (Vec::new(), Vec::new());
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let up = {
        let (from, to, log) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
            sent.clone(),
        );
        std::thread::spawn(move || copy(from, to, &log))
    };
    let received = Arc::new(Mutex::new(Vec::new()));
    copy(server, client, &received);
    let _ = up.join();
    let c = std::mem::take(&mut *sent.lock().expect("lock"));
    let s = std::mem::take(&mut *received.lock().expect("lock"));
    (c, s)
}

/// Copies `from` to `to`, logging every byte, until `from` ends; then half-closes `to`.
fn copy(mut from: TcpStream, mut to: TcpStream, log: &Mutex<Vec<u8>>) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().expect("lock").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
