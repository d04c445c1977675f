//! The example server (`cargo run --example server`, SQLite behind `pgproto::Server`) against
//! an unmodified tokio-postgres 0.7 over TLS with `channel_binding=require` (rustls through
//! tokio-postgres-rustls, which binds to the certificate with tls-server-end-point): prepared
//! statements with binary parameters and results, pipelined queries, COPY both ways, cancel
//! through a `CancelToken`, several statements in one simple query, failed transactions,
//! SQLSTATEs and wrong passwords.
//!
//! Each test starts its own server (a child process on a free port of 127.0.0.1).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::try_join_all;
use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, Row, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use support::demo_server::DemoServer;

/// How long any one step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(60);

/// The TLS connector: rustls with ring, any certificate, channel binding from
/// tokio-postgres-rustls.
fn tls() -> MakeRustlsConnect {
    MakeRustlsConnect::new(support::any_cert::client_config())
}

/// `server`'s connection string for `user`/`password`, over TLS with channel binding required.
fn config(server: &DemoServer, user: &str, password: &str) -> Config {
    server
        .conninfo_as(user, password, "sslmode=require channel_binding=require")
        .parse()
        .expect("parse the connection string")
}

/// Connects with `config`, running the connection on a task of its own.
async fn try_connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio::time::timeout(STEP, config.connect(tls()))
        .await
        .expect("connecting timed out")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection ended with an error: {e}");
        }
    });
    Ok(client)
}

/// A client of `server` as user demo (SCRAM-SHA-256-PLUS over TLS).
async fn connect(server: &DemoServer) -> Client {
    let config = config(server, "demo", "demo");
    try_connect(&config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e:?}\nserver stderr:\n{}", server.stderr()))
}

/// `fut`, or a panic after [`STEP`].
async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {STEP:?}"))
}

/// The SQLSTATE of a server error (panics on a client-side error).
fn sqlstate(e: &tokio_postgres::Error) -> SqlState {
    e.code()
        .unwrap_or_else(|| panic!("expected an error from the server, got {e:?}"))
        .clone()
}

/// Column `i` of `row` as text, whatever type the server described it with. SQLite knows
/// the type of an expression column such as `count(*)` or `$1::int8 + 1` only once the
/// statement has run, so the example server describes such columns of a statement as text
/// (tokio-postgres always describes the statement, also in `query_typed`); declared columns
/// of a table have their own types.
fn cell_text(row: &Row, i: usize) -> Option<String> {
    let ty = row.columns()[i].type_();
    match *ty {
        Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
        Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| v.to_string()),
        Type::BOOL => row
            .get::<_, Option<bool>>(i)
            .map(|v| if v { "t" } else { "f" }.to_string()),
        Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(|v| {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            format!("\\x{hex}")
        }),
        Type::TEXT => row.get(i),
        _ => panic!("column {i} has type {ty}"),
    }
}

/// The one integer `sql` returns (see [`cell_text`]).
async fn count(client: &Client, sql: &str) -> i64 {
    let row = step(sql, client.query_one(sql, &[]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    cell_text(&row, 0)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: not an integer: {:?}", cell_text(&row, 0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_channel_binding_and_wrong_passwords() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;
    let row = step("SELECT", client.query_one("SELECT 40 + 2 AS answer", &[]))
        .await
        .unwrap();
    assert_eq!(row.columns()[0].name(), "answer");
    assert_eq!(cell_text(&row, 0).as_deref(), Some("42"));
    let version = step("SHOW", client.simple_query("SHOW server_version"))
        .await
        .unwrap();
    let shown = version.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert!(
        shown.as_deref().is_some_and(|v| v.contains("pgproto")),
        "{shown:?}"
    );

    // Wrong password and unknown user: 28P01, after the full SCRAM exchange.
    for (user, password) in [("demo", "wrong"), ("nobody", "demo")] {
        let err = try_connect(&config(&server, user, password))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}/{password} was let in"));
        assert_eq!(
            sqlstate(&err),
            SqlState::INVALID_PASSWORD,
            "{user}/{password}: {err:?}"
        );
    }
    // The connection made first is unaffected.
    assert_eq!(count(&client, "SELECT 1").await, 1);

    // channel_binding=require refuses a server that does not offer SCRAM-SHA-256-PLUS.
    let md5 = DemoServer::start(&["--auth", "md5"]);
    let err = try_connect(&config(&md5, "demo", "demo"))
        .await
        .expect_err("channel_binding=require accepted md5 authentication");
    assert!(
        err.code().is_none() && format!("{err:?}").contains("server did not use channel binding"),
        "expected the client to refuse, got: {err:?}"
    );
    // Without channel binding the md5 server lets the client in.
    let mut relaxed = config(&md5, "demo", "demo");
    relaxed.channel_binding(tokio_postgres::config::ChannelBinding::Disable);
    let c = try_connect(&relaxed)
        .await
        .expect("md5 without channel binding");
    assert_eq!(count(&c, "SELECT 7").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_with_binary_parameters_and_results() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;
    step(
        "CREATE TABLE",
        client.batch_execute(
            "CREATE TABLE t (i int8 PRIMARY KEY, f float8, s text, b bytea, ok bool, n int8)",
        ),
    )
    .await
    .unwrap();

    // SQLite cannot tell a parameter's type, so the types are given with Parse (as
    // `prepare_typed`), and tokio-postgres sends every value in binary.
    let insert = step(
        "prepare INSERT",
        client.prepare_typed(
            "INSERT INTO t (i, f, s, b, ok, n) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Type::INT8,
                Type::FLOAT8,
                Type::TEXT,
                Type::BYTEA,
                Type::BOOL,
                Type::INT8,
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        insert.params(),
        &[
            Type::INT8,
            Type::FLOAT8,
            Type::TEXT,
            Type::BYTEA,
            Type::BOOL,
            Type::INT8
        ]
    );
    assert!(insert.columns().is_empty());
    let all_bytes: Vec<u8> = (0..=255).collect();
    type Row6 = (i64, f64, String, Vec<u8>, bool, Option<i64>);
    let rows: Vec<Row6> = vec![
        (1, 2.5, "x".into(), vec![0, 1, 2], true, None),
        (
            i64::MIN,
            -0.1,
            "héllo\t\"wörld\"\n✓".into(),
            all_bytes.clone(),
            false,
            Some(i64::MAX),
        ),
        (1 << 53, 1e300, String::new(), Vec::new(), true, Some(-1)),
        (
            4,
            f64::MIN_POSITIVE,
            "'; DROP TABLE t; --".into(),
            b"\\x00".to_vec(),
            false,
            Some(0),
        ),
    ];
    for (i, f, s, b, ok, n) in &rows {
        let inserted = step("INSERT", client.execute(&insert, &[i, f, s, b, ok, n]))
            .await
            .unwrap();
        assert_eq!(inserted, 1);
    }
    // The brief's own line, with a NULL of another type.
    let inserted = client
        .execute(
            &insert,
            &[&5i64, &0.0f64, &"y", &vec![9u8], &true, &None::<i64>],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);

    // Declared column types give the result types; results come in binary.
    let select = client
        .prepare("SELECT i, f, s, b, ok, n FROM t WHERE i <> 5 ORDER BY i")
        .await
        .unwrap();
    let types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        [
            Type::INT8,
            Type::FLOAT8,
            Type::TEXT,
            Type::BYTEA,
            Type::BOOL,
            Type::INT8
        ]
    );
    let names: Vec<&str> = select.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["i", "f", "s", "b", "ok", "n"]);
    let got: Vec<Row6> = step("SELECT", client.query(&select, &[]))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let mut want = rows.clone();
    want.sort_by_key(|r| r.0);
    assert_eq!(got, want);

    // Parameters in WHERE, a statement used many times, and NULL parameters.
    let by_key = client
        .prepare_typed(
            "SELECT s, b, ok FROM t WHERE i = $1 OR (n IS NULL AND $2 IS NULL)",
            &[Type::INT8, Type::INT8],
        )
        .await
        .unwrap();
    let r = client
        .query_one(&by_key, &[&i64::MIN, &Some(0i64)])
        .await
        .unwrap();
    assert_eq!(r.get::<_, &str>(0), "héllo\t\"wörld\"\n✓");
    assert_eq!(r.get::<_, &[u8]>(1), all_bytes.as_slice());
    assert!(!r.get::<_, bool>(2));
    let r = client
        .query(&by_key, &[&-7i64, &None::<i64>])
        .await
        .unwrap();
    let strings: Vec<&str> = r.iter().map(|r| r.get(0)).collect();
    assert_eq!(strings, ["x", "y"]);

    // Untyped parameters are described as text.
    let untyped = client
        .prepare("SELECT i FROM t WHERE s = $1")
        .await
        .unwrap();
    assert_eq!(untyped.params(), &[Type::TEXT]);
    let r = client.query_one(&untyped, &[&"x"]).await.unwrap();
    assert_eq!(r.get::<_, i64>(0), 1);

    // query_typed: Parse with types, Bind, Describe and Execute in one round trip.
    let r = client
        .query_typed_one(
            "SELECT $1::int8 * 2 AS twice, $2::float8 / 4 AS quarter, upper($3) AS up, $4 AS blob, $5 AS flag, $6 AS i4",
            &[
                (&21i64, Type::INT8),
                (&10.0f64, Type::FLOAT8),
                (&"abc", Type::TEXT),
                (&vec![7u8, 8], Type::BYTEA),
                (&None::<bool>, Type::BOOL),
                (&-3i32, Type::INT4),
            ],
        )
        .await
        .unwrap();
    let names: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["twice", "quarter", "up", "blob", "flag", "i4"]);
    let texts: Vec<Option<String>> = (0..r.len()).map(|i| cell_text(&r, i)).collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        texts,
        [s("42"), s("2.5"), s("ABC"), s("\\x0708"), None, s("-3")]
    );
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pipelined_queries_on_one_connection() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE squares (n int8 PRIMARY KEY, sq int8, label text);
             WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < 499)
             INSERT INTO squares SELECT n, n * n, 'n' || n FROM k;",
        )
        .await
        .unwrap();
    let by_n = client
        .prepare_typed(
            "SELECT n, sq, label FROM squares WHERE n = $1",
            &[Type::INT8],
        )
        .await
        .unwrap();

    // 200 queries of a named statement, all sent before the first answer is read.
    let started = Instant::now();
    let queries = (0..200i64).map(|i| {
        let (client, by_n) = (&client, &by_n);
        async move {
            let row = client.query_one(by_n, &[&i]).await?;
            Ok::<_, tokio_postgres::Error>((i, row))
        }
    });
    let answers = step("200 pipelined queries", try_join_all(queries))
        .await
        .unwrap();
    assert_eq!(answers.len(), 200);
    for (i, row) in &answers {
        assert_eq!(row.get::<_, i64>(0), *i);
        assert_eq!(row.get::<_, i64>(1), i * i);
        assert_eq!(row.get::<_, &str>(2), format!("n{i}"));
    }

    // 200 one-round-trip queries (query_typed: unnamed statement and portal), interleaved with
    // statements that fail, whose errors must reach the right caller only.
    let queries = (0..200i64).map(|i| {
        let client = &client;
        async move {
            if i % 25 == 24 {
                let e = client
                    .query_typed("SELECT * FROM missing_table", &[])
                    .await
                    .expect_err("a missing table");
                return Ok::<_, tokio_postgres::Error>((i, None, Some(sqlstate(&e))));
            }
            let row = client
                .query_typed_one(
                    "SELECT $1::int8 + 1000 AS n, 'q' || $1 AS tag",
                    &[(&i, Type::INT8)],
                )
                .await?;
            Ok((i, Some((cell_text(&row, 0), cell_text(&row, 1))), None))
        }
    });
    let answers = step("200 pipelined query_typed", try_join_all(queries))
        .await
        .unwrap();
    for (i, ok, err) in answers {
        if i % 25 == 24 {
            assert_eq!(err, Some(SqlState::UNDEFINED_TABLE), "query {i}");
        } else {
            let want = (Some((i + 1000).to_string()), Some(format!("q{i}")));
            assert_eq!(ok, Some(want), "query {i}");
        }
    }

    // Four more connections, 50 pipelined queries each, at the same time.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&server).await);
    }
    let per_client = clients.iter().enumerate().map(|(c, client)| async move {
        let stmt = client
            .prepare_typed("SELECT sq FROM squares WHERE n = $1", &[Type::INT8])
            .await?;
        let qs = (0..50i64).map(|k| {
            let n = c as i64 * 100 + k;
            let stmt = &stmt;
            async move {
                let sq: i64 = client.query_one(stmt, &[&n]).await?.get(0);
                Ok::<_, tokio_postgres::Error>((n, sq))
            }
        });
        try_join_all(qs).await
    });
    let all = step("4 x 50 pipelined queries", try_join_all(per_client))
        .await
        .unwrap();
    for (n, sq) in all.into_iter().flatten() {
        assert_eq!(sq, n * n);
    }
    eprintln!("pipelined queries took {:?}", started.elapsed());
}

/// The COPY text line of row `i` and the values it stands for.
fn copy_line(i: i64) -> String {
    let name = match i % 4 {
        0 => "\\N".to_string(),
        1 => format!("plain {i}"),
        2 => format!("tab\\there\\nnewline\\\\backslash {i}"),
        _ => format!("ünïcode ✓ {i}"),
    };
    let score = if i % 5 == 0 {
        "\\N".to_string()
    } else {
        format!("{}.5", i - 5000)
    };
    let data = format!("\\\\x{:02x}{:02x}", i % 256, (i / 256) % 256);
    let flag = if i % 3 == 0 { "t" } else { "f" };
    format!("{i}\t{name}\t{score}\t{data}\t{flag}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_copy_out() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE c (id int8 PRIMARY KEY, name text, score float8, data bytea, flag bool)",
        )
        .await
        .unwrap();

    // COPY IN: 10,000 rows through the sink, in chunks that split lines anywhere.
    const ROWS: i64 = 10_000;
    let text: String = (0..ROWS).map(copy_line).collect();
    let sink = step(
        "COPY FROM STDIN",
        client.copy_in("COPY c (id, name, score, data, flag) FROM STDIN"),
    )
    .await
    .unwrap();
    futures_util::pin_mut!(sink);
    for chunk in text.as_bytes().chunks(7_919) {
        step("COPY data", sink.send(Bytes::copy_from_slice(chunk)))
            .await
            .unwrap();
    }
    let copied = step("COPY finish", sink.as_mut().finish()).await.unwrap();
    assert_eq!(copied, ROWS as u64);

    // The values arrived typed.
    let r = client
        .query_one("SELECT name, score, data, flag FROM c WHERE id = 6", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, &str>(0), "tab\there\nnewline\\backslash 6");
    assert_eq!(r.get::<_, f64>(1), -4994.5);
    assert_eq!(r.get::<_, &[u8]>(2), &[6, 0]);
    assert!(r.get::<_, bool>(3));
    for (sql, want) in [
        ("SELECT count(*) FROM c", ROWS),
        ("SELECT count(name) FROM c", ROWS - ROWS / 4),
        ("SELECT count(score) FROM c", ROWS - ROWS / 5),
        ("SELECT sum(flag) FROM c", (ROWS + 2) / 3),
    ] {
        assert_eq!(count(&client, sql).await, want, "{sql}");
    }

    // COPY OUT of the table gives back exactly what went in.
    let stream = step("COPY TO STDOUT", client.copy_out("COPY c TO STDOUT"))
        .await
        .unwrap();
    let chunks: Vec<Bytes> = step("COPY out data", stream.try_collect()).await.unwrap();
    let out: Vec<u8> = chunks.concat();
    let out = String::from_utf8(out).expect("COPY output is UTF-8");
    assert_eq!(out.lines().count(), ROWS as usize);
    if out != text {
        let first = out
            .lines()
            .zip(text.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("got  {a:?}\nwant {b:?}"));
        panic!("COPY out differs from COPY in; first difference:\n{first:?}");
    }

    // COPY of a query, with options.
    let stream = client
        .copy_out("COPY (SELECT id, name FROM c WHERE id < 4 ORDER BY id) TO STDOUT WITH (DELIMITER ',', NULL 'nil')")
        .await
        .unwrap();
    let out: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(
        String::from_utf8(out.concat()).unwrap(),
        "0,nil\n1,plain 1\n2,tab\\there\\nnewline\\\\backslash 2\n3,ünïcode ✓ 3\n"
    );

    // A bad line fails the COPY with the server's SQLSTATE and leaves the table as it was.
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(
        b"20000\tok\t1\t\\\\x00\tt\nnot a number\tx\t1\t\\\\x00\tt\n",
    ))
    .await
    .ok();
    let err = step("bad COPY", sink.as_mut().finish())
        .await
        .expect_err("COPY of a bad line succeeded");
    assert_eq!(
        sqlstate(&err),
        SqlState::INVALID_TEXT_REPRESENTATION,
        "{err:?}"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM c").await, ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_the_cancel_token() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = {
        let client = &client;
        async move { client.query("SELECT pg_sleep(30)", &[]).await }
    };
    // Cancel (over TLS, as the connection was made) until the statement has ended: a cancel
    // that arrives before the statement starts is lost, as with PostgreSQL.
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        loop {
            token.cancel_query(tls()).await.expect("send CancelRequest");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let result = step("SELECT pg_sleep(30)", async {
        tokio::select! {
            r = sleeper => r,
            () = canceller => unreachable!(),
        }
    })
    .await;
    let elapsed = started.elapsed();
    let err = result.expect_err("pg_sleep(30) was not cancelled");
    assert_eq!(sqlstate(&err), SqlState::QUERY_CANCELED, "{err:?}");
    assert!(elapsed < Duration::from_secs(10), "cancel took {elapsed:?}");

    // The session goes on; a cancel when nothing runs does nothing.
    token.cancel_query(tls()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&client, "SELECT 5").await, 5);

    // Cancelling inside a transaction fails the transaction.
    client.batch_execute("BEGIN").await.unwrap();
    let token2 = client.cancel_token();
    let result = step("pg_sleep in a transaction", async {
        tokio::select! {
            r = client.simple_query("SELECT pg_sleep(30)") => r,
            () = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                loop {
                    token2.cancel_query(tls()).await.expect("send CancelRequest");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            } => unreachable!(),
        }
    })
    .await;
    assert_eq!(sqlstate(&result.unwrap_err()), SqlState::QUERY_CANCELED);
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), SqlState::IN_FAILED_SQL_TRANSACTION);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&client, "SELECT 1").await, 1);
}

/// The rows (as text) and command tags of a simple query's answer.
fn simple_result(messages: &[SimpleQueryMessage]) -> (Vec<Vec<Option<String>>>, Vec<u64>) {
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            SimpleQueryMessage::CommandComplete(n) => counts.push(*n),
            _ => {}
        }
    }
    (rows, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_queries_transactions_and_sqlstates() {
    let server = DemoServer::start(&[]);
    let client = connect(&server).await;

    // Several statements in one Query message.
    let messages = step(
        "multi-statement simple query",
        client.simple_query(
            "CREATE TABLE s (a int8, b text, c float8, d bool);
             INSERT INTO s VALUES (1, 'one', 1.5, true), (2, NULL, NULL, false);
             SELECT a, b, c, d FROM s ORDER BY a;
             UPDATE s SET b = 'two' WHERE a = 2;
             SELECT 'multi' AS m, 40 + 2 AS n",
        ),
    )
    .await
    .unwrap();
    let (rows, counts) = simple_result(&messages);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        [
            vec![s("1"), s("one"), s("1.5"), s("t")],
            vec![s("2"), None, None, s("f")],
            vec![s("multi"), s("42")],
        ]
    );
    assert_eq!(counts, [0, 2, 2, 1, 1]);

    // An error stops the rest of the query string, which ran as one implicit transaction.
    let err = client
        .simple_query("INSERT INTO s VALUES (3, 'three', 3, true); SELECT * FROM nope; INSERT INTO s VALUES (4, 'four', 4, true)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), SqlState::UNDEFINED_TABLE, "{err:?}");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.message(), "relation \"nope\" does not exist");
    assert_eq!(db.severity(), "ERROR");
    assert_eq!(
        count(&client, "SELECT count(*) FROM s").await,
        2,
        "the failed query string left rows behind"
    );

    // SQLSTATEs of other errors, through the extended protocol.
    for (sql, state) in [
        ("SELECT * FROM nope", SqlState::UNDEFINED_TABLE),
        ("SELECT nope FROM s", SqlState::UNDEFINED_COLUMN),
        ("SELEC 1", SqlState::SYNTAX_ERROR),
        ("SELECT no_such_function(1)", SqlState::UNDEFINED_FUNCTION),
        ("CREATE TABLE s (x int8)", SqlState::DUPLICATE_TABLE),
    ] {
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), state, "{sql}: {err:?}");
    }
    client
        .batch_execute("CREATE TABLE u (k int8 PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO u VALUES (1, 'a')", &[])
        .await
        .unwrap();
    let err = client
        .execute("INSERT INTO u VALUES (1, 'b')", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), SqlState::UNIQUE_VIOLATION, "{err:?}");
    let err = client
        .execute("INSERT INTO u VALUES (2, NULL)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), SqlState::NOT_NULL_VIOLATION, "{err:?}");

    // A failing statement in a transaction: 25P02 for everything until ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO u VALUES (10, 'in tx')", &[])
        .await
        .unwrap();
    let err = client.query("SELECT * FROM nope", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), SqlState::UNDEFINED_TABLE);
    for sql in ["SELECT 1", "INSERT INTO u VALUES (11, 'x')"] {
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(
            sqlstate(&err),
            SqlState::IN_FAILED_SQL_TRANSACTION,
            "{sql}: {err:?}"
        );
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(
            sqlstate(&err),
            SqlState::IN_FAILED_SQL_TRANSACTION,
            "{sql} (extended): {err:?}"
        );
    }
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM u").await,
        1,
        "ROLLBACK kept rows of the failed transaction"
    );

    // tokio-postgres's own transaction API: commit and (on drop) rollback.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO u VALUES (20, 'committed')", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO u VALUES (21, 'dropped')", &[])
            .await
            .unwrap();
        // Dropped without commit: rolled back.
    }
    let mut tx = client.transaction().await.unwrap();
    let sp = tx.savepoint("sp1").await.expect("SAVEPOINT");
    sp.execute("INSERT INTO u VALUES (22, 'savepoint')", &[])
        .await
        .unwrap();
    sp.rollback().await.expect("ROLLBACK TO SAVEPOINT");
    tx.execute("INSERT INTO u VALUES (23, 'after savepoint')", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let keys: Vec<i64> = client
        .query("SELECT k FROM u ORDER BY k", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, [1, 20, 23]);
}
