//! A streaming standby of a test cluster, for the tests that need a second timeline: made with
//! `pg_basebackup -R` from the primary, started on its own port, and promoted on request.

use std::process::Command;
use std::time::{Duration, Instant};

use super::pg::{
    append, check, client_bin, conf_quote, make_temp_dir, server_owner, Cluster, REPL_USER,
};

impl Cluster {
    /// Starts a standby that streams from this cluster (a base backup of it with
    /// `primary_conninfo` for the replication role), on a free port, without SSL. It is
    /// stopped and removed on drop like any cluster.
    pub(crate) fn start_standby(&self) -> Self {
        let owner = server_owner();
        let mut standby = Self::new_in(
            make_temp_dir(&format!("pgproto-{}s-", self.version), owner),
            self.pg_version,
            self.bindir.clone(),
        );
        let conninfo = format!(
            "host=127.0.0.1 port={} user={} password={} sslmode=disable",
            self.port,
            REPL_USER.name,
            REPL_USER.password.unwrap_or_default()
        );
        let out = standby.run_as_server(
            Command::new(client_bin(self.pg_version, "pg_basebackup"))
                .arg("-D")
                .arg(&standby.data_dir)
                .args(["-X", "stream", "-R", "-c", "fast", "-d"])
                .arg(&conninfo),
        );
        check(&out, "pg_basebackup -R (standby)");
        append(
            &standby.data_dir.join("postgresql.conf"),
            &format!(
                "\n# --- this standby ---\nunix_socket_directories = '{}'\nssl = off\n",
                conf_quote(&standby.socket_dir)
            ),
        );
        standby.start_on_free_port();
        standby
    }

    /// Waits until this standby has replayed the primary's WAL up to `lsn`.
    pub(crate) fn wait_for_replay(&self, lsn: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = self.admin_sql_in(
                "postgres",
                &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn;"),
            );
            if done.trim() == "t" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "standby did not replay up to {lsn}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Promotes this standby (`pg_ctl promote -w`): it moves to the next timeline.
    pub(crate) fn promote(&self) {
        let out = self.run_as_server(
            Command::new(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-w", "-t", "60", "promote"]),
        );
        check(&out, "pg_ctl promote");
    }
}
