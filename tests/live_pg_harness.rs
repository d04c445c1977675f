//! Smoke tests of the real-PostgreSQL harness (`tests/support/pg.rs`): real
//! servers 15 and 18, real psql 15 and 18, every auth method of the test roles.
//!
//! Needs `bash scripts/install-test-deps.sh`; without it these tests fail and say so.

mod support;

use std::time::Duration;

use support::pg::{
    self, Cluster, PgVersion, User, MD5_USER, PASSWORD_USER, REPL_USER, SCRAM_USER, SSL_USER,
    SUPERUSER, TRUST_USER,
};

const LOG_WAIT: Duration = Duration::from_secs(5);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs psql and returns its trimmed stdout, panicking with context on failure.
fn psql_ok(cluster: &Cluster, client: PgVersion, user: User, extra: &str, sql: &str) -> String {
    let out = cluster.psql_as(client, user, extra, sql);
    assert!(
        out.status.success(),
        "psql {} as {} ({extra}) against {} failed: {}\n{}\n--- server log\n{}",
        client.major(),
        user.name,
        cluster.pg_version,
        out.status,
        stderr(&out),
        cluster.log()
    );
    stdout(&out)
}

/// Runs psql expecting failure; returns its stderr.
fn psql_err(cluster: &Cluster, client: PgVersion, user: User, extra: &str, sql: &str) -> String {
    let out = cluster.psql_as(client, user, extra, sql);
    assert!(
        !out.status.success(),
        "psql {} as {} ({extra}) against {} unexpectedly succeeded: {}",
        client.major(),
        user.name,
        cluster.pg_version,
        stdout(&out)
    );
    stderr(&out)
}

/// Connects as `user` with psql of `client` and checks both what the session
/// sees and what the server logged about how it authenticated.
fn check_login(cluster: &Cluster, client: PgVersion, user: User, extra: &str, want_ssl: bool) {
    let offset = cluster.log().len();
    let row = psql_ok(
        cluster,
        client,
        user,
        extra,
        "SELECT current_user || ',' || current_database() || ',' || \
         COALESCE((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'none')",
    );
    let ssl = if want_ssl { "true" } else { "false" };
    assert_eq!(
        row,
        format!("{},{},{ssl}", user.name, pg::DATABASE),
        "client {client}"
    );

    let ctx = || {
        format!(
            "{} / psql {} / {} ({extra})\n{}",
            cluster.pg_version,
            client.major(),
            user.name,
            cluster.log_since(offset)
        )
    };
    let authorized = format!(
        "connection authorized: user={} database={}",
        user.name,
        pg::DATABASE
    );
    assert!(
        cluster.wait_for_log(offset, &authorized, LOG_WAIT),
        "no '{authorized}' in log: {}",
        ctx()
    );
    let identity = format!("identity=\"{}\"", user.name);
    if user.method == "trust" {
        // Trust sets no authenticated identity, so no "connection authenticated" line.
        assert!(
            !cluster.log_since(offset).contains(&identity),
            "trust logged an identity: {}",
            ctx()
        );
    } else {
        let authenticated = format!(
            "connection authenticated: {identity} method={}",
            user.method
        );
        assert!(
            cluster.wait_for_log(offset, &authenticated, LOG_WAIT),
            "no '{authenticated}' in log: {}",
            ctx()
        );
    }
    let log = cluster.log_since(offset);
    let line = log
        .lines()
        .find(|l| l.contains(&authorized))
        .unwrap_or_default();
    assert_eq!(
        line.contains(" SSL enabled"),
        want_ssl,
        "SSL in log: {}",
        ctx()
    );
}

fn smoke(version: PgVersion) {
    let cluster = Cluster::start(version);
    assert_eq!(cluster.version, version.major());
    assert_eq!(cluster.host, "127.0.0.1");
    assert_ne!(cluster.port, 0);
    for path in [
        &cluster.cert_pem_path,
        &cluster.cert_der_path,
        &cluster.key_path,
        &cluster.log_path,
    ] {
        assert!(path.is_file(), "{} missing", path.display());
    }

    // Server version, through both clients.
    for client in PgVersion::ALL {
        let v = psql_ok(
            &cluster,
            client,
            SCRAM_USER,
            "sslmode=disable",
            "SHOW server_version",
        );
        assert!(
            v.starts_with(&format!("{}.", version.major())),
            "server_version {v} from {version}"
        );
    }

    // The MD5 role really stores an MD5 hash; the others SCRAM verifiers.
    let hashes = cluster.admin_sql(
        "SELECT rolname || ':' || left(rolpassword, 13) FROM pg_authid \
         WHERE rolname LIKE '%\\_user' ORDER BY rolname",
    );
    for line in hashes.lines() {
        let (name, prefix) = line.split_once(':').expect("row");
        let want = if name == MD5_USER.name {
            "md5"
        } else {
            "SCRAM-SHA-256"
        };
        assert!(
            prefix.starts_with(want),
            "{name} stores {prefix}..., want {want}"
        );
    }
    assert_eq!(hashes.lines().count(), 6, "{hashes}");

    // Every auth method, with psql 15 and psql 18.
    for client in PgVersion::ALL {
        for user in [SCRAM_USER, MD5_USER, PASSWORD_USER, TRUST_USER] {
            check_login(&cluster, client, user, "sslmode=disable", false);
        }
        check_login(&cluster, client, SSL_USER, "sslmode=require", true);
        check_login(&cluster, client, REPL_USER, "sslmode=disable", false);
        check_login(&cluster, client, SUPERUSER, "sslmode=disable", false);
        // Full certificate verification against the harness's self-signed cert
        // (SAN IP:127.0.0.1), SCRAM with channel binding.
        let verify = format!(
            "sslmode=verify-full sslrootcert={} channel_binding=require",
            pg::conninfo_quote(&cluster.cert_pem_path.to_string_lossy())
        );
        check_login(&cluster, client, SCRAM_USER, &verify, true);
    }

    // psql 18: SCRAM-SHA-256-PLUS (channel_binding=require) over SSL.
    check_login(
        &cluster,
        PgVersion::V18,
        SCRAM_USER,
        "sslmode=require channel_binding=require",
        true,
    );
    check_login(
        &cluster,
        PgVersion::V18,
        SSL_USER,
        "sslmode=require channel_binding=require",
        true,
    );

    // pg_hba.conf is enforced as written.
    let err = psql_err(
        &cluster,
        PgVersion::V18,
        SSL_USER,
        "sslmode=disable",
        "SELECT 1",
    );
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    let wrong = User {
        password: Some("wrong"),
        ..SCRAM_USER
    };
    let err = psql_err(
        &cluster,
        PgVersion::V18,
        wrong,
        "sslmode=disable",
        "SELECT 1",
    );
    assert!(
        err.contains("password authentication failed for user \"scram_user\""),
        "{err}"
    );
    let wrong = User {
        password: Some("wrong"),
        ..MD5_USER
    };
    let err = psql_err(
        &cluster,
        PgVersion::V15,
        wrong,
        "sslmode=disable",
        "SELECT 1",
    );
    assert!(
        err.contains("password authentication failed for user \"md5_user\""),
        "{err}"
    );
    // channel_binding=require refuses MD5 (client side).
    let err = psql_err(
        &cluster,
        PgVersion::V18,
        MD5_USER,
        "sslmode=require channel_binding=require",
        "SELECT 1",
    );
    assert!(err.contains("channel binding"), "{err}");

    // Replication connections for repl_user (logical: replication=database).
    let ident = psql_ok(
        &cluster,
        PgVersion::V18,
        REPL_USER,
        "sslmode=disable replication=database",
        "IDENTIFY_SYSTEM",
    );
    assert!(ident.contains(pg::DATABASE), "IDENTIFY_SYSTEM: {ident}");
    let wal_level = cluster.admin_sql("SHOW wal_level");
    assert_eq!(wal_level.trim(), "logical");

    // Protocol 3.2 (libpq 18): accepted by 18, refused by 15.
    let out = cluster.psql_as(
        PgVersion::V18,
        SCRAM_USER,
        "sslmode=disable min_protocol_version=3.2",
        "SELECT 1",
    );
    assert_eq!(
        out.status.success(),
        version == PgVersion::V18,
        "{}",
        stderr(&out)
    );

    // Everyone can create in the test database.
    psql_ok(
        &cluster,
        PgVersion::V15,
        MD5_USER,
        "sslmode=disable",
        "CREATE TABLE t_md5 (x int)",
    );
    psql_ok(
        &cluster,
        PgVersion::V18,
        TRUST_USER,
        "sslmode=disable",
        "CREATE TABLE t_trust (x int)",
    );
}

#[test]
fn postgres_15_with_psql_15_and_18() {
    smoke(PgVersion::V15);
}

#[test]
fn postgres_18_with_psql_15_and_18() {
    smoke(PgVersion::V18);
}

#[test]
fn clusters_start_in_parallel_and_clean_up() {
    let clusters: Vec<Cluster> = std::thread::scope(|s| {
        let handles: Vec<_> = [PgVersion::V18, PgVersion::V15, PgVersion::V18]
            .into_iter()
            .map(|v| s.spawn(move || Cluster::start(v)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("cluster start"))
            .collect()
    });
    let mut ports: Vec<u16> = clusters.iter().map(|c| c.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), clusters.len(), "ports not distinct");
    for c in &clusters {
        let v = psql_ok(
            c,
            PgVersion::V18,
            TRUST_USER,
            "sslmode=disable",
            "SHOW server_version",
        );
        assert!(v.starts_with(&format!("{}.", c.version)), "{v}");
        let url = c.url(SCRAM_USER);
        assert_eq!(
            url,
            format!(
                "postgres://scram_user:scram_user_pw@127.0.0.1:{}/pgproto?sslmode=disable",
                c.port
            )
        );
        // The port is really served on 127.0.0.1.
        std::net::TcpStream::connect(c.addr()).expect("connect to cluster port");
    }
    let dirs: Vec<_> = clusters.iter().map(|c| c.dir.clone()).collect();
    let ports: Vec<_> = clusters.iter().map(|c| c.addr()).collect();
    drop(clusters);
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    for a in ports {
        assert!(
            std::net::TcpStream::connect(a).is_err(),
            "{a} still served after drop"
        );
    }
}

#[test]
fn venv_python_has_psycopg_with_libpq_18() {
    let out = std::process::Command::new(pg::venv_python())
        .args([
            "-c",
            "import psycopg; print(psycopg.__version__, psycopg.pq.version())",
        ])
        .output()
        .expect("run venv python");
    pg::check(&out, "python -c 'import psycopg'");
    assert_eq!(stdout(&out), "3.3.9 180006");
    for client in PgVersion::ALL {
        for tool in ["psql", "pgbench", "pg_recvlogical", "pg_receivewal"] {
            let out = std::process::Command::new(pg::client_bin(client, tool))
                .arg("--version")
                .output()
                .expect("run client");
            pg::check(&out, tool);
            assert!(
                stdout(&out).contains(&format!(" {}.", client.major())),
                "{tool}: {}",
                stdout(&out)
            );
        }
    }
}

#[test]
fn missing_binaries_fail_loudly_with_the_install_command() {
    let path = std::path::Path::new("/nonexistent/postgres");
    let msg = pg::missing_file_message(path, "PostgreSQL 18 server", "PG18_BINDIR")
        .expect("a missing file must be reported");
    assert!(msg.contains("bash scripts/install-test-deps.sh"), "{msg}");
    assert!(msg.contains("/nonexistent/postgres"), "{msg}");
    assert!(pg::missing_file_message(&pg::venv_python(), "venv", "X").is_none());
}
