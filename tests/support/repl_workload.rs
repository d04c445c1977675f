//! The schema and workload the logical replication tests replay on PostgreSQL 15 and 18: every
//! kind of change pgoutput and test_decoding describe (NULLs, quoting, unicode, an unchanged
//! TOAST value, replica identity default, full, index and nothing, key changes, truncate with
//! cascade and restart identity, logical messages in and out of transactions, subtransactions,
//! transactions large enough to stream at `logical_decoding_work_mem = 64kB`, two-phase commit
//! and rollback, rolled-back transactions), and the server settings they need.

use super::pg::{Cluster, PgVersion};

/// postgresql.conf lines for a cluster that streams and decodes prepared transactions.
/// `synchronous_commit = on`: with it off, `pg_current_wal_lsn()` can lag the last commit.
pub(crate) const REPLICATION_CONF: &str = "
synchronous_commit = on
logical_decoding_work_mem = 64kB
max_prepared_transactions = 10
max_wal_senders = 20
max_replication_slots = 20
wal_sender_timeout = 60s
";

/// Tables and types, created before the slots.
pub(crate) const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE kinds (
    id int PRIMARY KEY, t text, n numeric, r real, d double precision, b boolean,
    bits bit(3), vbits varbit(8), big bigint, small smallint, o oid, j jsonb,
    ts timestamptz, by bytea, m mood, ms mood[], p posint, arr int[], "Quoted Col" text,
    vc varchar(10), ch char(3)
);
CREATE TABLE full_t (a int, b text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE nothing_t (a int, b text);
ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
CREATE TABLE index_t (k int NOT NULL, v text);
CREATE UNIQUE INDEX index_t_k ON index_t (k);
ALTER TABLE index_t REPLICA IDENTITY USING INDEX index_t_k;
CREATE TABLE toast_t (id int PRIMARY KEY, big text, other int);
ALTER TABLE toast_t ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
CREATE TABLE ident_t (id serial PRIMARY KEY, v text);
CREATE TABLE big_t (id int, v text);
CREATE TABLE "Mixed Case" (id int PRIMARY KEY, "Val" text);
"#;

/// PostgreSQL 18 only: a stored generated column, published.
pub(crate) const SCHEMA_18: &str = r#"
CREATE TABLE gen_t (a int PRIMARY KEY, b int GENERATED ALWAYS AS (a * 2) STORED);
CREATE PUBLICATION pub FOR ALL TABLES WITH (publish_generated_columns = stored);
"#;

/// PostgreSQL 15: no generated columns can be published.
pub(crate) const SCHEMA_15: &str = "CREATE PUBLICATION pub FOR ALL TABLES;\n";

/// The changes, after the slots exist.
pub(crate) const WORKLOAD: &str = r#"
INSERT INTO kinds VALUES (1, 'plain', 1.5, 2.5, 3.25, true, B'101', B'1101', 9007199254740993,
    -3, 12345, '{"a": [1, "x"]}', '2024-02-29 13:14:15.5+00', '\x00ff10', 'happy',
    '{sad,happy}', 7, '{1,NULL,3}', 'q', 'vc', 'ab');
INSERT INTO kinds (id, t, n, r, d, b) VALUES
    (2, 'it''s "quoted" ünïcödé ✓ back\slash', 'NaN', 'Infinity', '-Infinity', false);
INSERT INTO kinds (id) VALUES (3);
UPDATE kinds SET t = 'changed' WHERE id = 1;
UPDATE kinds SET id = 20 WHERE id = 2;
DELETE FROM kinds WHERE id = 3;
INSERT INTO full_t VALUES (1, 'one'), (2, NULL);
UPDATE full_t SET b = 'uno' WHERE a = 1;
DELETE FROM full_t WHERE a = 2;
INSERT INTO nothing_t VALUES (1, 'n');
INSERT INTO index_t VALUES (1, 'i');
UPDATE index_t SET v = 'j' WHERE k = 1;
UPDATE index_t SET k = 2 WHERE k = 1;
DELETE FROM index_t WHERE k = 2;
INSERT INTO toast_t SELECT 1, string_agg(md5(i::text), ''), 1 FROM generate_series(1, 200) i;
UPDATE toast_t SET other = 2 WHERE id = 1;
SELECT pg_logical_emit_message(false, 'pfx', 'non-transactional');
SELECT pg_logical_emit_message(true, 'pfx', 'transactional alone');
BEGIN;
INSERT INTO "Mixed Case" VALUES (1, 'm');
SELECT pg_logical_emit_message(true, 'pfx', E'in a transaction \001 ü');
SELECT pg_logical_emit_message(false, 'nt', 'non-transactional inside');
COMMIT;
BEGIN;
INSERT INTO ident_t (v) VALUES ('a');
SAVEPOINT s1;
INSERT INTO ident_t (v) VALUES ('rolled back');
ROLLBACK TO s1;
INSERT INTO ident_t (v) VALUES ('b');
COMMIT;
BEGIN;
INSERT INTO ident_t (v) VALUES ('never');
ROLLBACK;
INSERT INTO parent VALUES (1);
INSERT INTO child VALUES (1, 1);
TRUNCATE parent CASCADE;
TRUNCATE ident_t RESTART IDENTITY;
TRUNCATE full_t, nothing_t;
BEGIN;
INSERT INTO big_t SELECT i FROM generate_series(1, 600) i;
SAVEPOINT a;
INSERT INTO big_t SELECT -i FROM generate_series(1, 600) i;
ROLLBACK TO a;
SAVEPOINT b;
INSERT INTO big_t VALUES (-1, 'kept sub');
RELEASE b;
COMMIT;
BEGIN;
INSERT INTO big_t SELECT i, 'never' FROM generate_series(1, 600) i;
ROLLBACK;
BEGIN;
INSERT INTO kinds (id, t) VALUES (100, 'prepared');
PREPARE TRANSACTION 'gid 1';
COMMIT PREPARED 'gid 1';
BEGIN;
INSERT INTO kinds (id, t) VALUES (101, 'rolled back prepared');
PREPARE TRANSACTION 'gid''2';
ROLLBACK PREPARED 'gid''2';
BEGIN;
INSERT INTO big_t SELECT i, 'prepared' FROM generate_series(1, 600) i;
PREPARE TRANSACTION 'big';
COMMIT PREPARED 'big';
"#;

/// PostgreSQL 18 only.
pub(crate) const WORKLOAD_18: &str = "INSERT INTO gen_t (a) VALUES (1), (2);\n";

/// Creates the schema (and the publication `pub`) in `cluster`.
pub(crate) fn create_schema(cluster: &Cluster) {
    let extra = match cluster.pg_version {
        PgVersion::V18 => SCHEMA_18,
        _ => SCHEMA_15,
    };
    cluster.admin_sql(&format!("{SCHEMA}{extra}"));
}

/// Runs the workload in `cluster`; returns the WAL position after it (`pg_current_wal_lsn()`).
pub(crate) fn run_workload(cluster: &Cluster) -> String {
    let extra = match cluster.pg_version {
        PgVersion::V18 => WORKLOAD_18,
        _ => "",
    };
    cluster.admin_sql(&format!("{WORKLOAD}{extra}"));
    current_lsn(cluster)
}

/// `pg_current_wal_lsn()`.
pub(crate) fn current_lsn(cluster: &Cluster) -> String {
    cluster
        .admin_sql("SELECT pg_current_wal_lsn();")
        .trim()
        .to_string()
}

/// Creates a logical slot with `plugin` as superuser; `two_phase` as `CREATE_REPLICATION_SLOT`'s
/// option.
pub(crate) fn create_slot(cluster: &Cluster, slot: &str, plugin: &str, two_phase: bool) {
    cluster.admin_sql(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', '{plugin}', false, {two_phase});"
    ));
}
