//! The `proxy` example in front of a throwaway PostgreSQL 18 cluster, for the live proxy tests
//! (std only).
//!
//! ```ignore
//! mod support;
//! use support::proxy::Fixture;
//!
//! let f = Fixture::start(&["--pool-size", "3"]);          // transaction mode, SCRAM, TLS offered
//! let out = f.psql("sslmode=require", "SELECT 1");         // psql 18 through the proxy
//! f.cluster.admin_sql("SELECT count(*) FROM pg_stat_activity"); // straight to the server
//! ```

use std::process::{Command, Output};

use super::demo_server::{self, DemoServer};
use super::pg::{self, Cluster, PgVersion, SCRAM_USER};

/// A PostgreSQL 18 cluster and the proxy in front of it (dropped in that order: proxy first).
pub(crate) struct Fixture {
    /// The proxy process.
    pub(crate) proxy: DemoServer,
    /// The upstream server.
    pub(crate) cluster: Cluster,
}

impl Fixture {
    /// A fresh PostgreSQL 18 cluster and the proxy with `args` (plus `--upstream` for the
    /// cluster's `scram_user` over plain TCP).
    pub(crate) fn start(args: &[&str]) -> Self {
        let cluster = Cluster::start(PgVersion::V18);
        let upstream = cluster_upstream(&cluster, "sslmode=disable");
        Self::start_with(cluster, &upstream, args)
    }

    /// The proxy with `upstream` as its CONNINFO, in front of `cluster`.
    pub(crate) fn start_with(cluster: Cluster, upstream: &str, args: &[&str]) -> Self {
        let mut all = vec!["--upstream", upstream];
        all.extend_from_slice(args);
        let proxy = DemoServer::start_example("proxy", &all);
        Self { proxy, cluster }
    }

    /// A libpq connection string to the proxy as demo/demo, database `pgproto`, plus `extra`.
    pub(crate) fn conninfo(&self, extra: &str) -> String {
        format!(
            "host={} port={} user=demo password=demo dbname={} connect_timeout=10 {extra}",
            self.proxy.addr.ip(),
            self.proxy.addr.port(),
            pg::DATABASE
        )
    }

    /// psql 18 through the proxy: `-X -A -t -v ON_ERROR_STOP=1 -f -` with `sql` on stdin.
    pub(crate) fn psql(&self, extra: &str, sql: &str) -> Output {
        let mut cmd = Command::new(pg::psql(PgVersion::V18));
        cmd.args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
        ])
        .arg(self.conninfo(extra));
        demo_server::run(&mut cmd, sql, 120)
    }

    /// What the proxy wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.proxy.stderr()
    }
}

/// The CONNINFO of `cluster` for `scram_user` (its password, database `pgproto`), plus `extra`.
pub(crate) fn cluster_upstream(cluster: &Cluster, extra: &str) -> String {
    cluster.conninfo_with(SCRAM_USER, extra)
}

/// Panics with both outputs unless `out` succeeded; returns stdout.
pub(crate) fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
