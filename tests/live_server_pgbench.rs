//! The example server (`cargo run --example server`) against pgbench 15 with custom scripts:
//! `-M simple`, `-M extended` and `-M prepared`, a pipeline script (`\startpipeline` ...
//! `\endpipeline`) in extended and prepared mode, and a script whose statement fails.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::demo_server::{run, show, DemoServer};
use support::pg::{pgbench, psql, PgVersion};

const SETUP: &str = "
create table acc (aid integer primary key, bal integer not null default 0);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 100)
  insert into acc (aid) select i from n;
create table hist (aid integer not null, delta integer not null);
";

/// A transaction in a BEGIN block: update, read back, log.
const TRANSACTION: &str = r"\set aid random(1, 100)
\set delta random(-50, 50)
BEGIN;
UPDATE acc SET bal = bal + :delta WHERE aid = :aid;
SELECT bal FROM acc WHERE aid = :aid;
INSERT INTO hist (aid, delta) VALUES (:aid, :delta);
END;
";

/// The same in one pipeline (an implicit transaction up to the pipeline's Sync).
const PIPELINE: &str = r"\set aid random(1, 100)
\set delta random(-50, 50)
\startpipeline
UPDATE acc SET bal = bal + :delta WHERE aid = :aid;
SELECT bal FROM acc WHERE aid = :aid;
INSERT INTO hist (aid, delta) VALUES (:aid, :delta);
\endpipeline
";

struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pgproto-demo-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pgbench_run(conninfo: &str, script: &PathBuf, mode: &str) -> Output {
    let mut cmd = Command::new(pgbench(PgVersion::V15));
    cmd.args(["-n", "-t", "20", "-c", "2", "-M", mode, "-f"])
        .arg(script)
        .arg(conninfo);
    run(&mut cmd, "", 120)
}

fn psql_run(conninfo: &str, args: &[&str], input: &str) -> Output {
    let mut cmd = Command::new(psql(PgVersion::V15));
    cmd.args([
        "-X",
        "-w",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ])
    .args(args);
    run(&mut cmd, input, 60)
}

#[test]
fn pgbench_15_scripts_in_every_query_mode_and_pipelines() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require");
    let out = psql_run(&ci, &[], SETUP);
    assert!(out.status.success(), "{}", show(&out));
    let scripts = Scripts::new("modes");
    let tx = scripts.write("tx.sql", TRANSACTION);
    let pipe = scripts.write("pipe.sql", PIPELINE);
    let runs = [
        (&tx, "simple"),
        (&tx, "extended"),
        (&tx, "prepared"),
        (&pipe, "extended"),
        (&pipe, "prepared"),
    ];
    for (script, mode) in runs {
        let out = pgbench_run(&ci, script, mode);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} -M {mode}: {}",
            script.display(),
            show(&out)
        );
        assert!(
            stdout.contains("number of transactions actually processed: 40/40"),
            "{} -M {mode}: {}",
            script.display(),
            show(&out)
        );
        assert!(
            stdout.contains("number of failed transactions: 0"),
            "{}",
            show(&out)
        );
    }
    // Every transaction's two writes happened together.
    let out = psql_run(
        &ci,
        &[
            "-c",
            "select count(*), (select sum(bal) from acc) = sum(delta) from hist",
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200|1\n");
}

#[test]
fn pgbench_reports_a_failing_statement() {
    let server = DemoServer::start(&["--auth", "md5"]);
    let ci = server.conninfo("sslmode=require");
    let scripts = Scripts::new("failing");
    let bad = scripts.write("bad.sql", "SELECT 1;\nSELECT * FROM no_such_table;\n");
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench_run(&ci, &bad, mode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "-M {mode}: {}", show(&out));
        assert!(
            stderr.contains("relation \"no_such_table\" does not exist"),
            "-M {mode}: {}",
            show(&out)
        );
    }
}
