//! SASLprep against the real thing, in both roles: passwords whose SASLprep form differs from
//! what was typed (full-width letters, a soft hyphen, a no-break space, a ligature, a combining
//! accent) and passwords PostgreSQL uses raw because a check fails.
//!
//! - PostgreSQL 18 stores a SCRAM secret for `CREATE ROLE ... PASSWORD`, which this crate's
//!   `ScramVerifier::new` reproduces bit for bit from the typed password, and the crate's
//!   `Client` (through the blocking driver in `support/driver`) logs in with the typed password,
//!   with SCRAM-SHA-256 and SCRAM-SHA-256-PLUS.
//! - psql 18 (libpq 18) logs in to the `server` example started with such a password, with
//!   SCRAM, SCRAM-PLUS and a cleartext password checked against the SCRAM verifier.
//!
//! Needs `bash scripts/install-test-deps.sh`; without it these tests fail and say so.

mod support;

#[path = "support/driver/mod.rs"]
mod driver;

use std::io::Write;
use std::process::Command;

use pgproto::auth::{saslprep, ScramVerifier};
use pgproto::AuthMethod;
use support::demo_server::{run, show, DemoServer};
use support::pg::{self, Cluster, PgVersion};

/// Role name, password as typed, and what SASLprep must make of it.
const PASSWORDS: &[(&str, &str, &str)] = &[
    // Full-width letters: NFKC gives ASCII.
    (
        "sp_fullwidth",
        "\u{ff50}\u{ff41}\u{ff53}\u{ff53}\u{ff17}",
        "pass7",
    ),
    // Soft hyphen: mapped to nothing.
    ("sp_soft_hyphen", "pass\u{ad}word", "password"),
    // No-break space: mapped to a space.
    ("sp_nbsp", "pass\u{a0}word", "pass word"),
    // Ligature: NFKC gives two letters.
    ("sp_ligature", "\u{fb01}nal", "final"),
    // e + COMBINING ACUTE ACCENT: NFKC composes it.
    ("sp_combining", "cafe\u{301}", "caf\u{e9}"),
    // All of it at once.
    (
        "sp_mixed",
        "\u{ff21}\u{a0}\u{fb01}\u{ad}x\u{2168}",
        "A fixIX",
    ),
    // Used raw: U+0340 is prohibited (RFC 3454 C.8) before NFKC, which PostgreSQL checks
    // (strict RFC 4013 would normalize it to U+0300 first and accept it).
    ("sp_raw_c8", "a\u{340}b\u{fb01}", "a\u{340}b\u{fb01}"),
    // Used raw: a private-use character (C.3).
    ("sp_raw_private", "\u{fb01}\u{e000}", "\u{fb01}\u{e000}"),
];

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn saslprep_forms_of_the_test_passwords() {
    for (role, typed, prepared) in PASSWORDS {
        assert_eq!(&*saslprep(typed.as_bytes()), prepared.as_bytes(), "{role}");
    }
}

#[test]
fn client_logs_in_to_postgresql_18_with_saslprep_passwords() {
    let cluster = Cluster::start(PgVersion::V18);
    // The harness's pg_hba.conf names its own roles; these fall to a last SCRAM line.
    let mut hba = std::fs::OpenOptions::new()
        .append(true)
        .open(cluster.data_dir.join("pg_hba.conf"))
        .expect("open pg_hba.conf");
    writeln!(hba, "host all all 127.0.0.1/32 scram-sha-256").expect("append to pg_hba.conf");
    drop(hba);
    let mut sql = String::new();
    for (role, typed, _) in PASSWORDS {
        sql.push_str(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD {};\n",
            sql_literal(typed)
        ));
    }
    cluster.admin_sql(&sql);
    cluster.reload();

    for (role, typed, prepared) in PASSWORDS {
        // PostgreSQL's secret is the one this crate derives from the typed password.
        let stored = cluster
            .admin_sql(&format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
            ))
            .trim()
            .to_string();
        let theirs = ScramVerifier::parse(&stored).unwrap_or_else(|e| panic!("{role}: {e}"));
        let ours = ScramVerifier::new(typed, theirs.salt(), theirs.iterations()).unwrap();
        assert_eq!(ours.to_string(), stored, "{role}: secret differs");
        assert!(theirs.verify_password(prepared), "{role}");

        for (extra, method) in [
            ("sslmode=disable", AuthMethod::ScramSha256),
            (
                "sslmode=require channel_binding=require",
                AuthMethod::ScramSha256Plus,
            ),
        ] {
            let info = format!(
                "host={} port={} dbname={} user={role} password={} {extra}",
                cluster.host,
                cluster.port,
                pg::DATABASE,
                pg::conninfo_quote(typed)
            );
            let mut conn = driver::connect(&info).unwrap_or_else(|e| panic!("{role} {extra}: {e}"));
            assert_eq!(conn.client().auth_method(), Some(method), "{role}");
            let rows = conn.simple_query("SELECT current_user").unwrap();
            assert_eq!(rows, vec![vec![Some(role.to_string())]], "{role}");
            conn.terminate().unwrap();
        }

        // libpq agrees (so the passwords really are the ones PostgreSQL stored).
        let out = pg::psql_command(
            &pg::psql(PgVersion::V18),
            &format!(
                "host={} port={} dbname={} user={role} password={} sslmode=disable",
                cluster.host,
                cluster.port,
                pg::DATABASE,
                pg::conninfo_quote(typed)
            ),
        )
        .args(["-c", "SELECT current_user"])
        .output()
        .expect("run psql 18");
        assert!(out.status.success(), "psql 18 as {role}: {}", show(&out));
    }

    // The check can fail: the SASLprep form of one password is not the password of another.
    let info = format!(
        "host={} port={} dbname={} user=sp_ligature password={} sslmode=disable",
        cluster.host,
        cluster.port,
        pg::DATABASE,
        pg::conninfo_quote("\u{fb01}na1")
    );
    let err = driver::connect(&info).expect_err("a wrong password logged in");
    assert!(err.to_string().contains("28P01"), "{err}");
}

#[test]
fn libpq_logs_in_to_the_server_example_with_saslprep_passwords() {
    for (role, typed, _) in PASSWORDS {
        for auth in ["scram", "password"] {
            let server = DemoServer::start(&["--auth", auth, "--password", typed]);
            let extras: &[&str] = if auth == "scram" {
                &["sslmode=disable", "sslmode=require channel_binding=require"]
            } else {
                &["sslmode=require"]
            };
            for extra in extras {
                let conninfo = server.conninfo_as(
                    support::demo_server::USER,
                    &pg::conninfo_quote(typed),
                    extra,
                );
                let mut psql = Command::new(pg::psql(PgVersion::V18));
                psql.args(["-X", "-w", "-A", "-t", "-c", "select 42", "-d"])
                    .arg(&conninfo);
                let out = run(&mut psql, "", 60);
                assert!(
                    out.status.success() && out.stdout == b"42\n",
                    "{role} --auth {auth} {extra}: {}\n--- server\n{}",
                    show(&out),
                    server.stderr()
                );
            }
            // A wrong password is refused (so the check above can fail).
            let conninfo = server.conninfo_as(
                support::demo_server::USER,
                &pg::conninfo_quote(&format!("{typed}x")),
                "sslmode=require",
            );
            let mut psql = Command::new(pg::psql(PgVersion::V18));
            psql.args(["-X", "-w", "-c", "select 1", "-d"])
                .arg(&conninfo);
            let out = run(&mut psql, "", 60);
            assert!(
                !out.status.success()
                    && String::from_utf8_lossy(&out.stderr)
                        .contains("password authentication failed"),
                "{role} --auth {auth}, wrong password: {}",
                show(&out)
            );
        }
    }
}
