//! The `client` example, run as a process, against servers scripted here on loopback: it
//! prints notices as they arrive (never keeping them for the end of the statement), waits
//! only briefly for the server to close after Terminate, and shows an ErrorResponse during
//! start-up longer than libpq's 30,000 bytes (up to 64 KiB of it) instead of empty text.
//! `scripts/load.py` runs the full-size version (500,000 notices of 1,000 bytes).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::wire::{cstr, msg};

/// Reads one start-up packet (after which the client waits for an answer).
fn read_startup(sock: &mut TcpStream) {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    sock.read_exact(&mut body).unwrap();
}

/// Reads one tagged frontend message: its tag.
fn read_message(sock: &mut TcpStream) -> u8 {
    let mut head = [0u8; 5];
    sock.read_exact(&mut head).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4];
    sock.read_exact(&mut body).unwrap();
    head[0]
}

/// AuthenticationOk, BackendKeyData, ReadyForQuery.
fn trusted() -> Vec<u8> {
    let mut v = msg(b'R', &0i32.to_be_bytes());
    v.extend(msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    v.extend(msg(b'Z', b"I"));
    v
}

/// A NoticeResponse whose message is `text`.
fn notice(text: &str) -> Vec<u8> {
    let mut body = b"SNOTICE\0VNOTICE\0C00000\0M".to_vec();
    body.extend(cstr(text));
    body.push(0);
    msg(b'N', &body)
}

/// One row (`42`), its description, the tag and ReadyForQuery.
fn one_row() -> Vec<u8> {
    let mut desc = 1i16.to_be_bytes().to_vec();
    desc.extend(cstr("n"));
    desc.extend(0i32.to_be_bytes());
    desc.extend(0i16.to_be_bytes());
    desc.extend(23i32.to_be_bytes());
    desc.extend(4i16.to_be_bytes());
    desc.extend((-1i32).to_be_bytes());
    desc.extend(0i16.to_be_bytes());
    let mut row = 1i16.to_be_bytes().to_vec();
    row.extend(2i32.to_be_bytes());
    row.extend(b"42");
    let mut v = msg(b'T', &desc);
    v.extend(msg(b'D', &row));
    v.extend(msg(b'C', &cstr("SELECT 1")));
    v.extend(msg(b'Z', b"I"));
    v
}

/// Serves one connection with `script` on a loopback port; returns the conninfo.
fn serve(script: impl FnOnce(TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((sock, _)) = listener.accept() {
            sock.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            script(sock);
        }
    });
    format!("host=127.0.0.1 port={port} user=alice sslmode=disable connect_timeout=10")
}

/// The client example on `conninfo` with `sql`, its stderr lines sent to `lines` as they come:
/// (exit code, stdout, time taken).
fn run_client(conninfo: &str, sql: &str, lines: mpsc::Sender<String>) -> (i32, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(support::examples::example("client"))
        .args([conninfo, sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the client example");
    let stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    (status.code().expect("exited"), stdout, start.elapsed())
}

#[test]
fn notices_are_printed_as_they_arrive() {
    const HALF: usize = 2_000;
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let (early_tx, early_rx) = mpsc::channel::<bool>();
    let info = serve(move |mut sock| {
        read_startup(&mut sock);
        sock.write_all(&trusted()).unwrap();
        assert_eq!(read_message(&mut sock), b'Q');
        let batch = |from: usize| -> Vec<u8> {
            (from..from + HALF)
                .flat_map(|i| notice(&format!("{i:05} {}", "x".repeat(200))))
                .collect()
        };
        sock.write_all(&batch(0)).unwrap();
        // The rest only once the client has printed a notice (or after 30 s).
        let early = seen_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        let _ = early_tx.send(early);
        sock.write_all(&batch(HALF)).unwrap();
        sock.write_all(&one_row()).unwrap();
        assert_eq!(read_message(&mut sock), b'X');
    });
    let (lines_tx, lines_rx) = mpsc::channel();
    let client = thread::spawn(move || run_client(&info, "SELECT n FROM notices", lines_tx));
    let mut count = 0;
    let mut in_order = true;
    for line in lines_rx {
        if count == 0 {
            let _ = seen_tx.send(());
        }
        let want = format!("NOTICE:  {count:05} ");
        in_order &= line.starts_with(&want);
        count += 1;
    }
    let (code, stdout, _) = client.join().unwrap();
    assert_eq!(
        early_rx.recv().ok(),
        Some(true),
        "no notice printed before the statement ended"
    );
    assert_eq!((code, stdout.as_str()), (0, "42\n"));
    assert_eq!(count, 2 * HALF);
    assert!(in_order, "every notice, in order");
}

#[test]
fn terminate_waits_for_the_server_only_briefly() {
    let info = serve(|mut sock| {
        read_startup(&mut sock);
        sock.write_all(&trusted()).unwrap();
        assert_eq!(read_message(&mut sock), b'Q');
        sock.write_all(&one_row()).unwrap();
        assert_eq!(read_message(&mut sock), b'X');
        // A server that does not close.
        thread::sleep(Duration::from_secs(20));
    });
    let (tx, _rx) = mpsc::channel();
    let (code, stdout, took) = run_client(&info, "SELECT 42", tx);
    assert_eq!((code, stdout.as_str()), (0, "42\n"));
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// A FATAL 28000 ErrorResponse whose message is `len` bytes long and ends with ` end`.
fn long_error(len: usize) -> Vec<u8> {
    let mut body = b"SFATAL\0VFATAL\0C28000\0M".to_vec();
    body.extend(std::iter::repeat_n(b'e', len - 4));
    body.extend(b" end\0\0");
    msg(b'E', &body)
}

#[test]
fn a_long_error_during_start_up_is_shown() {
    for len in [20_000, 50_000, 300_000] {
        let info = serve(move |mut sock| {
            read_startup(&mut sock);
            let _ = sock.write_all(&long_error(len));
        });
        let (tx, rx) = mpsc::channel();
        let (code, stdout, _) = run_client(&info, "SELECT 1", tx);
        let stderr: Vec<String> = rx.iter().collect();
        let stderr = stderr.join("\n");
        assert_eq!((code, stdout.as_str()), (1, ""), "{len}");
        assert!(
            stderr.contains("28000"),
            "{len}: {}",
            &stderr[..stderr.len().min(300)]
        );
        assert!(stderr.contains("eeeeeeeeee"), "{len}: the text is shown");
        if len <= 64 * 1024 - 64 {
            assert!(stderr.ends_with(" end"), "{len}: all of it");
        } else {
            assert!(stderr.ends_with("[cut short]"), "{len}: cut short");
            assert!(
                stderr.len() < 66 * 1024,
                "{len}: bounded, {} bytes",
                stderr.len()
            );
        }
    }
}
