//! *live*: the `proxy` example in transaction mode in front of a PostgreSQL 18 server the test
//! starts, with driver clients and a pool smaller than the number of clients:
//!
//! - tokio-postgres 0.7 (plain TCP): prepared statements from several clients that all name
//!   theirs `s0`, `s1`, ... (no clash, whichever upstream connection serves them), pipelined
//!   queries, transactions, and a cancel through a `CancelToken` that stops that client's
//!   `pg_sleep` and no other's;
//! - psycopg 3.3.9 with libpq 18.6: `max_protocol_version=3.2` (a 32-byte cancel key),
//!   `channel_binding=require` (SCRAM-SHA-256-PLUS with the proxy's certificate), pipeline
//!   mode, COPY both ways, ParameterStatus after a `SET`, prepared statements, and
//!   `cancel_safe()` (a CancelRequest sent over TLS with the 3.2-length key).

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use tokio_postgres::{Client, NoTls};

use support::demo_server::{run, show};
use support::pg::{venv_python, INSTALL_COMMAND};
use support::proxy::Fixture;

/// How long any one step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(60);

async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

/// A tokio-postgres client of the proxy over plain TCP.
async fn connect(f: &Fixture) -> Client {
    let config: tokio_postgres::Config = f.conninfo("sslmode=disable").parse().unwrap();
    let (client, connection) = step("connect", config.connect(NoTls))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", f.stderr()));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_prepared_statements_and_pipelines() {
    let f = Fixture::start(&["--pool-size", "2", "--auth", "md5"]);
    f.cluster
        .admin_sql("CREATE TABLE kv (k int PRIMARY KEY, v text); GRANT ALL ON kv TO scram_user;");
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(connect(&f).await);
    }
    // Every client prepares its own statements (named s0, s1, ... by each connection, so the
    // same names mean different statements), and runs them pipelined.
    let work = clients.iter().enumerate().map(|(i, c)| async move {
        let i = i as i32;
        let insert = c
            .prepare_typed(
                "INSERT INTO kv VALUES ($1, $2)",
                &[
                    tokio_postgres::types::Type::INT4,
                    tokio_postgres::types::Type::TEXT,
                ],
            )
            .await?;
        let mine = c
            .prepare(&format!("SELECT v, {i} AS who FROM kv WHERE k = $1"))
            .await?;
        let values: Vec<String> = (0..10).map(|j| format!("c{i}-{j}")).collect();
        let inserts = (0..10).map(|j| {
            let insert = insert.clone();
            let v = values[j as usize].clone();
            async move { c.execute(&insert, &[&(i * 100 + j), &v]).await }
        });
        try_join_all(inserts).await?;
        let reads = (0..10).map(|j| {
            let mine = mine.clone();
            async move { c.query_one(&mine, &[&(i * 100 + j)]).await }
        });
        let rows = try_join_all(reads).await?;
        for (j, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, String>(0), format!("c{i}-{j}"));
            assert_eq!(row.get::<_, i32>(1), i);
        }
        Ok::<_, tokio_postgres::Error>(())
    });
    step("prepared statements", try_join_all(work))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", f.stderr()));
    // A transaction, and statements prepared before it used on whatever connection serves it.
    let mut c = connect(&f).await;
    let count = c.prepare("SELECT count(*) FROM kv").await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute("DELETE FROM kv WHERE k < 100", &[])
        .await
        .unwrap();
    let n: i64 = tx.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 50);
    tx.rollback().await.unwrap();
    let n: i64 = c.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 60);
    // An error inside a pipeline: the requests after it up to the Sync are skipped, the
    // client's own statements still work.
    let bad = c.query_one("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(
        bad.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    let n: i64 = c.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 60);
    // At most the pool size of upstream connections.
    let n = f.cluster.admin_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'scram_user' AND backend_type = 'client backend'",
    );
    assert!(n.trim().parse::<u32>().unwrap() <= 2, "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_its_clients_query_and_no_other() {
    let f = Fixture::start(&["--pool-size", "3"]);
    let victim = connect(&f).await;
    let bystander = connect(&f).await;
    let token = victim.cancel_token();
    let started = Instant::now();
    let long = async { victim.simple_query("SELECT pg_sleep(30)").await };
    let short = async { bystander.simple_query("SELECT pg_sleep(3)").await };
    let cancel = async {
        // Until the victim's statement has ended (a cancel that comes before it starts is
        // lost, as with PostgreSQL).
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await.expect("send CancelRequest");
        }
    };
    let (long, short) = step("cancel", async {
        tokio::select! {
            r = async { tokio::join!(long, short) } => r,
            () = cancel => unreachable!(),
        }
    })
    .await;
    let err = long.expect_err("pg_sleep(30) was not cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    short.expect("the other client's statement was cancelled too");
    assert!(started.elapsed() < Duration::from_secs(20));
    // Both sessions go on.
    victim.simple_query("SELECT 1").await.unwrap();
    bystander.simple_query("SELECT 1").await.unwrap();
}

/// Clients idle longer than the proxy's parking delay (5 to 10 ms: their sessions leave the
/// runtime for the parking thread) come back whole: their prepared statements, their cancel
/// keys, a transaction paused half-way, and a client that leaves while parked does not disturb
/// the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_idle_past_the_parking_delay_come_back_whole() {
    let f = Fixture::start(&["--pool-size", "2"]);
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(connect(&f).await);
    }
    let mut leaver = Some(connect(&f).await);
    let mut statements = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let sql = format!("SELECT $1::int + {i}");
        statements.push(step("prepare", c.prepare(&sql)).await.unwrap());
    }
    if let Some(l) = &leaver {
        step("leaver", l.simple_query("SELECT 1")).await.unwrap();
    }
    for round in 0..3i32 {
        // Idle well past the parking delay; the leaver goes away while parked.
        tokio::time::sleep(Duration::from_millis(150)).await;
        if round == 1 {
            // Its socket closes while its session is parked.
            drop(leaver.take());
        }
        let work = clients
            .iter()
            .zip(&statements)
            .enumerate()
            .map(|(i, (c, s))| async move {
                let row = c.query_one(s, &[&round]).await?;
                Ok::<_, tokio_postgres::Error>(row.get::<_, i32>(0) == round + i as i32)
            });
        let ok = step("queries after idling", try_join_all(work))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", f.stderr()));
        assert!(ok.iter().all(|&b| b), "round {round}: wrong results {ok:?}");
    }
    // A transaction paused half-way keeps its upstream connection (it is not idle).
    let c = &clients[0];
    step(
        "begin",
        c.batch_execute("BEGIN; CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (7)"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let row = step("in transaction", c.query_one("SELECT x FROM t", &[]))
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    step("commit", c.batch_execute("COMMIT")).await.unwrap();
    // A parked client's cancel key still reaches its query.
    let victim = &clients[1];
    tokio::time::sleep(Duration::from_millis(150)).await;
    let token = victim.cancel_token();
    let long = victim.simple_query("SELECT pg_sleep(30)");
    let cancel = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await.expect("send CancelRequest");
        }
    };
    let err = step("cancel after idling", async {
        tokio::select! {
            r = long => r,
            () = cancel => unreachable!(),
        }
    })
    .await
    .expect_err("pg_sleep(30) was not cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    for c in &clients {
        step("last query", c.simple_query("SELECT 1"))
            .await
            .unwrap();
    }
}

/// Helpers every psycopg script starts with: `out(key, value)` prints one result line.
const PRELUDE: &str = r#"
import json, sys, threading, time
import psycopg
from psycopg import pq

CONNINFO = sys.argv[1]

def out(key, value):
    print(key + "\t" + json.dumps(value), flush=True)

out("versions", [psycopg.__version__, pq.version()])
"#;

/// Runs `script` (after [`PRELUDE`]) with the venv's python and the proxy's conninfo; returns
/// its results by key.
fn python(conninfo: &str, script: &str) -> BTreeMap<String, String> {
    let python = venv_python();
    let source = format!("{PRELUDE}\n{script}");
    let out = run(
        Command::new(&python).arg("-c").arg(&source).arg(conninfo),
        "",
        180,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'psycopg") {
        panic!(
            "psycopg is missing; install the test dependencies: {INSTALL_COMMAND}\n{}",
            show(&out)
        );
    }
    assert!(out.status.success(), "the script failed:\n{}", show(&out));
    let results: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        results.get("versions").map(String::as_str),
        Some(r#"["3.3.9", 180006]"#)
    );
    results
}

#[test]
fn psycopg_protocol_3_2_channel_binding_pipeline_copy_and_cancel() {
    let f = Fixture::start(&["--pool-size", "2"]);
    f.cluster
        .admin_sql("CREATE TABLE items (id int, name text); GRANT ALL ON items TO scram_user;");
    let script = r#"
extra = " sslmode=require channel_binding=require max_protocol_version=3.2"
with psycopg.connect(CONNINFO + extra, autocommit=True) as conn:
    out("protocol", conn.pgconn.full_protocol_version)
    out("tls", conn.pgconn.ssl_in_use)
    # Pipeline mode: many statements, one Sync.
    with conn.pipeline():
        for i in range(20):
            conn.execute("INSERT INTO items VALUES (%s, %s)", (i, "n%d" % i))
        cur = conn.execute("SELECT count(*) FROM items")
    out("pipeline", cur.fetchone()[0])
    # An error inside a pipeline aborts the rest of it.
    try:
        with conn.pipeline():
            conn.execute("INSERT INTO items VALUES (100, 'x')")
            conn.execute("SELECT 1/0")
            conn.execute("INSERT INTO items VALUES (101, 'y')")
    except psycopg.errors.DivisionByZero:
        out("pipeline_error", "22012")
    out("after_error", conn.execute("SELECT count(*) FROM items WHERE id >= 100").fetchone()[0])
    # COPY both ways.
    with conn.cursor().copy("COPY items FROM STDIN") as copy:
        for i in range(200, 300):
            copy.write_row((i, "copied %d" % i))
    rows = []
    with conn.cursor().copy("COPY (SELECT id FROM items WHERE id >= 200 ORDER BY id) TO STDOUT") as copy:
        for row in copy.rows():
            rows.append(int(row[0]))
    out("copy", [len(rows), rows[0], rows[-1]])
    # ParameterStatus after SET reaches the client.
    conn.execute("SET TimeZone = 'Asia/Tokyo'")
    out("timezone", conn.info.parameter_status("TimeZone"))
    # Prepared statements (psycopg names them _pg3_N), used on whatever connection serves us.
    for i in range(8):
        conn.execute("SELECT %s::int + 1", (i,), prepare=True)
    out("prepared", conn.execute("SELECT %s::int + 1", (41,), prepare=True).fetchone()[0])
    # A cancel over TLS with the 3.2 key: pg_sleep stops early.
    result = {}
    def sleeper():
        try:
            conn.execute("SELECT pg_sleep(30)")
            result["error"] = None
        except psycopg.Error as e:
            result["error"] = e.sqlstate
    t = threading.Thread(target=sleeper)
    started = time.monotonic()
    t.start()
    while t.is_alive() and time.monotonic() - started < 60:
        time.sleep(0.3)
        conn.cancel_safe(timeout=10)
        t.join(0.2)
    t.join()
    out("cancel", [result["error"], time.monotonic() - started < 20])
    out("after_cancel", conn.execute("SELECT 'ok'").fetchone()[0])
"#;
    let r = python(&f.conninfo(""), script);
    assert_eq!(r["protocol"], "30002", "the 3.2 protocol");
    assert_eq!(r["tls"], "true");
    assert_eq!(r["pipeline"], "20");
    assert_eq!(r["pipeline_error"], "\"22012\"");
    assert_eq!(r["after_error"], "0");
    assert_eq!(r["copy"], "[100, 200, 299]");
    assert_eq!(r["timezone"], "\"Asia/Tokyo\"");
    assert_eq!(r["prepared"], "42");
    assert_eq!(r["cancel"], "[\"57014\", true]");
    assert_eq!(r["after_cancel"], "\"ok\"");
}
