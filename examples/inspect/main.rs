//! Decodes both directions of one recorded PostgreSQL connection and lists every message.
//!
//! ```text
//! cargo run --release --example inspect -- [--check] [--allow-truncated] [--trace] CLIENT_STREAM SERVER_STREAM
//! ```
//!
//! `CLIENT_STREAM` holds the raw bytes a client sent on one connection, `SERVER_STREAM` the raw
//! bytes the server sent back (as recorded by `tests/data/record_proxy.py`).
//!
//! # Output
//!
//! On stdout, one line per message: first every client message, in stream order, then every
//! server message, in stream order:
//!
//! ```text
//! C <offset> <MessageName> <short detail>
//! S <offset> <MessageName> <short detail>
//! ```
//!
//! `offset` is the byte offset of the message's first byte in its file; `MessageName` is the
//! name the PostgreSQL documentation uses (`FrontendMessage::name`, `BackendMessage::name`; the
//! single byte answering SSLRequest is `SSLResponse`); the detail is short (strings are escaped
//! and cut after about 60 characters, so a line never holds a control character) and is left
//! out when there is nothing to say. Passwords are not shown, only their kind. The last line is
//! always
//!
//! ```text
//! client: N messages, B bytes; server: M messages, B bytes
//! ```
//!
//! where `B` counts the bytes of the decoded messages: the file's size when it decoded
//! completely. Errors and notes go to stderr.
//!
//! With `--trace`, the output is instead the connection as libpq's `PQtrace` would print it
//! without timestamps (`pgproto::trace`): one line per message, every message included (the
//! start-up packets, the one-byte `SSLResponse`, AuthenticationOk), each direction's lines in
//! stream order, the two directions taking turns as the conversation does (`trace.rs`). No
//! summary line follows.
//!
//! ```text
//! F	8	SSLRequest	 1234 5679
//! B	1	SSLResponse	 N
//! F	85	StartupMessage	 3 0 "user" "scram_user" "database" "pgproto" "application_name" "psql" "client_encoding" "UTF8"
//! B	23	AuthenticationSASL	 "SCRAM-SHA-256" ""
//! ```
//!
//! # Replication
//!
//! On a replication connection, the client's Queries tell what each COPY's CopyData carry
//! (`START_REPLICATION ... PHYSICAL`, `START_REPLICATION ... LOGICAL` with pgoutput and its
//! `proto_version` and options, `BASE_BACKUP`). After the line of each such CopyData comes one
//! line per replication message inside it, indented by two spaces, in the same form with the
//! CopyData frame's offset; the pgoutput message inside an XLogData gets a further line
//! indented by four spaces:
//!
//! ```text
//! S 1234 CopyData 46 bytes "w\x00..."
//!   S 1234 XLogData start 0/1A2B3C8, end 0/1A2B3C8, time 2025-01-02 03:04:05.678+00, 21 bytes
//!     S 1234 Begin xid 740, final 0/1A2B400, time 2025-01-02 03:04:05.6+00
//! ```
//!
//! Names: `XLogData`, `PrimaryKeepalive`, `StandbyStatusUpdate`, `HotStandbyFeedback`,
//! `PrimaryStatusUpdate`, `PrimaryStatusRequest`, `BackupNewArchive`, `BackupManifest`,
//! `BackupData`, `BackupProgress`, and pgoutput's (`Begin`, `Message`, `Commit`, `Origin`,
//! `Relation`, `Type`, `Insert`, `Update`, `Delete`, `Truncate`, `StreamStart`, `StreamStop`,
//! `StreamCommit`, `StreamAbort`, `BeginPrepare`, `Prepare`, `CommitPrepared`,
//! `RollbackPrepared`, `StreamPrepare`). A Relation line names the relation as
//! `namespace.name` and lists its columns. A payload that does not decode is an error (exit
//! status 1); `--check` also re-encodes each nested message from its decoded value and compares
//! the bytes. See `replication.rs`.
//!
//! # How the streams are interpreted
//!
//! Each stream helps decode the other where the protocol needs it: the server's single-byte
//! answers to the client's SSLRequest and GSSENCRequest; the kind of each `p` message
//! (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse), which is the k-th
//! authentication request that expects an answer; and the protocol version (the
//! StartupMessage's, lowered by NegotiateProtocolVersion) for BackendKeyData. See `streams.rs`.
//!
//! # Protocol 2.0
//!
//! A client stream whose start-up packet (after any SSLRequest) is a 2.0 StartupPacket is
//! decoded as protocol 2.0 (`pgproto::v2`), both ways, message names as in the 2.0
//! documentation (`AsciiRow`, `CompletedResponse`, `CopyDataRows` for each line of COPY data,
//! `CopyDataRows end marker` for `\.`...). The streams interpret each other as 2.0 needs: a
//! PasswordPacket follows an authentication request for a password, and COPY data follows the
//! client's request whose answer holds CopyInResponse. A 3.x start-up answered with an error in
//! 2.0's format (a server that speaks only 2.0, which makes libpq 13 fall back) is decoded too:
//! the client's packets as 3.x, the server's answer as 2.0. See `v2.rs`.
//!
//! # Encryption
//!
//! When the server accepts SSLRequest (`S`) or GSSENCRequest (`G`), or the client starts with a
//! direct TLS handshake, everything after that point in both streams is encrypted. Decoding of
//! each stream stops there successfully, with the note `TLS begins at offset N` on stderr; the
//! encrypted bytes are not counted in the summary and are not errors.
//!
//! # Exit status
//!
//! - 0: both streams decoded completely (with `--check`, every message also re-encoded to its
//!   original bytes).
//! - 1: a stream does not decode, or (with `--check`) a message re-encodes differently; stderr
//!   names the stream, the offset and the reason. A final message cut off by the end of its file
//!   is such an error unless `--allow-truncated` is given, in which case it is only noted on
//!   stderr. Everything decoded before the problem is still listed.
//! - 2: bad usage or a file that cannot be read.
//!
//! No input makes the program panic.

// The trace lines shown above are tab-separated, as the program prints them.
#![allow(clippy::tabs_in_doc_comments)]

mod replication;
mod streams;
mod trace;
mod v2;

use std::io::Write;

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let code = streams::run(&args, &mut out, &mut err);
    let _ = out.flush();
    drop(out);
    std::process::exit(code);
}
