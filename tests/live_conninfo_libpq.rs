//! `pgproto::conninfo` against libpq 18's own parser, side by side: every connection string
//! below goes to `PQconninfoParse` (through psycopg's `conninfo_to_dict`, in the test venv) and
//! to `ConnInfo::parse`; both must accept it with the same keywords and values, or both refuse
//! it with the same message. What `ConnInfo` writes back (`Display`) goes to libpq too.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use pgproto::conninfo::ConnInfo;
use support::pg::venv_python;

/// Keyword/value strings and URIs, the plain and the odd (quotes, escapes, whitespace,
/// percent-encoding, IPv6, host lists, JDBC's `ssl=true`, the old `requiressl`) and the bad.
const CASES: &[&str] = &[
    "",
    "   ",
    "host=localhost port=5432 user=alice dbname=shop",
    "host = db  port= 5433\tuser =bob",
    "dbname='my db' user=alice",
    "password='it''s'",
    r"password='it\'s' user=a",
    r"password=a\ b user=x",
    r"options='-c search_path=s\\t'",
    "application_name= user=x",
    "user=a user=b",
    "user=a\\",
    "host=h1,h2 port=1,2",
    "sslmode=require sslnegotiation=direct",
    "requiressl=1",
    "requiressl=0 user=a",
    "nosuchoption=1",
    "user",
    "user =",
    "user='unterminated",
    "=value",
    "host=a\u{b}user=b",
    "postgresql://",
    "postgres://",
    "postgresql://localhost",
    "postgresql://localhost:5433",
    "postgresql://localhost/shop",
    "postgresql://alice@localhost",
    "postgresql://alice:secret@localhost:5433/shop",
    "postgresql://alice:@localhost",
    "postgresql://:secret@localhost",
    "postgresql://@localhost",
    "postgresql://alice:s%40cret@db/sh%20op",
    "postgresql:///shop",
    "postgresql:///shop?host=/tmp",
    "postgresql://localhost/shop?sslmode=require&application_name=x",
    "postgresql://localhost?ssl=true",
    "postgresql://localhost?ssl=false",
    "postgresql://[::1]:5433/db",
    "postgresql://[::1]",
    "postgresql://[::1/db",
    "postgresql://[]/db",
    "postgresql://[::1]x/db",
    "postgresql://[2001:db8::1],h2:5433/db",
    "postgresql://h1:1,h2,h3:3/db",
    "postgresql://h1,h2/db",
    "postgresql://h1:5432,/db",
    "postgresql://host/db?nosuch=1",
    "postgresql://host/db?user",
    "postgresql://host/db?a=b=c",
    "postgresql://host/db?user=a&",
    "postgresql://host/db?user=a&&user=b",
    "postgresql://host/db?%75ser=alice",
    "postgresql://host/db?user=%zz",
    "postgresql://host/db?user=%4",
    "postgresql://host/db?user=%00",
    "postgresql://host?x=a@b/c",
    "postgresql://al%2Fice@host/db",
    "postgresql://host/db/more",
    "postgresql://host:port/db",
    "postgresql://host/db?application_name=a%20b&options=-c%20x%3Dy",
    "postgres://u@h/d",
    "POSTGRESQL://host/db",
    "postgresql://host/db?requiressl=1",
    "user=a\nhost=b\r\tdbname=c",
    "user=\u{e9}l\u{e8}ve dbname='caf\u{e9} cr\u{e8}me'",
    "postgresql://%C3%A9l%C3%A8ve@h/caf%C3%A9",
    "postgresql://user@/db",
    "postgresql://[::1]:/db",
    "postgresql://h:/db",
    "postgresql://h,/db",
    "postgresql://,/db",
    "postgresql://h/?user=x",
    "postgresql://h?",
    "postgresql://h/db?=x",
    "postgresql://h/db?x",
    "host=/tmp,/var/run port=5432,5433 target_session_attrs=read-write load_balance_hosts=random",
];

/// libpq's verdict on each string: `ok` and the keyword/value pairs, or `err` and the message.
fn libpq_verdicts(cases: &[&str]) -> Vec<Result<Vec<(String, String)>, String>> {
    let script = r#"
import sys, json
from psycopg import pq
assert pq.version() >= 180000, pq.version()
out = []
for s in json.load(sys.stdin):
    try:
        opts = pq.Conninfo.parse(s.encode())
        out.append({"ok": sorted([o.keyword.decode(), o.val.decode()] for o in opts if o.val is not None)})
    except Exception as e:
        msg = str(e)
        for prefix in ("error parsing connection string: ", "missing ", ):
            pass
        out.append({"err": msg})
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(venv_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    let input = serde_json_lite::strings(cases);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the libpq script failed");
    serde_json_lite::verdicts(&String::from_utf8(out.stdout).unwrap())
}

/// Our reading of `case`: its keywords and values, sorted, or the error message.
fn ours(case: &str) -> Result<Vec<(String, String)>, String> {
    ConnInfo::parse(case)
        .map(|info| {
            let mut v: Vec<(String, String)> = info
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            v.sort();
            v
        })
        .map_err(|e| e.to_string())
}

/// Every case, then what `ConnInfo`'s `Display` writes for each case that parses (which libpq
/// must read back to the same settings).
#[test]
fn parses_every_connection_string_as_libpq_does() {
    let written: Vec<String> = CASES
        .iter()
        .filter_map(|c| ConnInfo::parse(c).ok())
        .filter(|info| info.iter().next().is_some())
        .map(|info| info.to_string())
        .collect();
    let cases: Vec<&str> = CASES
        .iter()
        .copied()
        .chain(written.iter().map(String::as_str))
        .collect();
    let libpq = libpq_verdicts(&cases);
    assert_eq!(libpq.len(), cases.len());
    let mut disagreements = Vec::new();
    for (case, theirs) in cases.iter().zip(libpq) {
        let ours = ours(case);
        let same = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => a == b,
            // libpq's message may carry a trailing newline.
            (Err(a), Err(b)) => a == b.trim_end(),
            _ => false,
        };
        if !same {
            disagreements.push(format!("{case:?}\n  ours:  {ours:?}\n  libpq: {theirs:?}"));
        }
    }
    assert!(
        written.len() > 40,
        "only {} cases parse: the corpus lost its point",
        written.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} strings read differently:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}

/// Just enough JSON for the exchange with the script: a list of strings out, a list of
/// `{"ok": [[k, v], ...]}` / `{"err": "..."}` objects back.
mod serde_json_lite {
    pub(crate) fn strings(items: &[&str]) -> String {
        let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
        format!("[{}]", quoted.join(","))
    }

    fn quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    pub(crate) fn verdicts(json: &str) -> Vec<Result<Vec<(String, String)>, String>> {
        let mut p = Parser {
            s: json.as_bytes(),
            i: 0,
        };
        let mut out = Vec::new();
        p.expect(b'[');
        while p.peek() != b']' {
            p.expect(b'{');
            let key = p.string();
            p.expect(b':');
            if key == "ok" {
                let mut pairs = Vec::new();
                p.expect(b'[');
                while p.peek() != b']' {
                    p.expect(b'[');
                    let k = p.string();
                    p.expect(b',');
                    let v = p.string();
                    p.expect(b']');
                    pairs.push((k, v));
                    p.comma();
                }
                p.expect(b']');
                out.push(Ok(pairs));
            } else {
                out.push(Err(p.string()));
            }
            p.expect(b'}');
            p.comma();
        }
        out
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> u8 {
            self.ws();
            self.s[self.i]
        }
        fn expect(&mut self, c: u8) {
            assert_eq!(self.peek(), c, "bad JSON at {}", self.i);
            self.i += 1;
        }
        fn comma(&mut self) {
            if self.peek() == b',' {
                self.i += 1;
            }
        }
        fn string(&mut self) -> String {
            self.expect(b'"');
            let mut out = Vec::new();
            loop {
                match self.s[self.i] {
                    b'"' => break,
                    b'\\' => {
                        self.i += 1;
                        match self.s[self.i] {
                            b'u' => {
                                let hex = std::str::from_utf8(&self.s[self.i + 1..self.i + 5]);
                                let c = u32::from_str_radix(hex.unwrap(), 16).unwrap();
                                let c = char::from_u32(c).unwrap_or('\u{fffd}');
                                out.extend_from_slice(c.to_string().as_bytes());
                                self.i += 4;
                            }
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            c => out.push(c),
                        }
                    }
                    c => out.push(c),
                }
                self.i += 1;
            }
            self.i += 1;
            String::from_utf8(out).unwrap()
        }
    }
}
