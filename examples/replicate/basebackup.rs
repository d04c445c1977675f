//! `replicate basebackup`: a base backup into a directory, as `pg_basebackup -Ft -X none -D
//! DIR` writes it: one tar file per archive the server announces (`base.tar` for the data
//! directory, `OID.tar` for each tablespace) and `backup_manifest`, each exactly the bytes the
//! server sent. `BASE_BACKUP (LABEL 'pgproto base backup', CHECKPOINT 'fast', MANIFEST 'yes')`
//! needs PostgreSQL 15 or later (the CopyOut carrying archive, manifest and progress messages).

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pgproto::replication::{BaseBackupMessage, ReplicationCommand, TimelinePosition};

use crate::conn::{Conn, CopyEvent, Started};
use crate::conninfo::ConnInfo;
use crate::results::DriverError;
use crate::Failure;

/// The `basebackup` command line.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) conninfo: String,
    pub(crate) dir: PathBuf,
}

/// Runs `replicate basebackup`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    if args.dir.exists()
        && fs::read_dir(&args.dir)
            .map_err(Failure::Output)?
            .next()
            .is_some()
    {
        return Err(Failure::Message(format!(
            "directory {} exists and is not empty",
            args.dir.display()
        )));
    }
    fs::create_dir_all(&args.dir).map_err(Failure::Output)?;
    let info = ConnInfo::parse(&args.conninfo)?;
    let mut conn = Conn::connect(&info, Some("true"))?;
    if conn.server_major() < 15 {
        return Err(Failure::Message(
            "BASE_BACKUP's archive messages need PostgreSQL 15 or later".into(),
        ));
    }
    let command = ReplicationCommand::BaseBackup {
        options: vec![
            ("label".into(), Some("pgproto base backup".into())),
            ("checkpoint".into(), Some("fast".into())),
            ("manifest".into(), Some("yes".into())),
        ],
    };
    let Started::Copy(_start) = conn.start(&command.to_string())? else {
        return Err(Failure::Message("the server sent no backup".into()));
    };
    let mut file: Option<File> = None;
    loop {
        let data = match conn.copy_event(Duration::from_secs(300))? {
            CopyEvent::Done => break,
            CopyEvent::Idle => return Err(Failure::Message("no backup data for 5 minutes".into())),
            CopyEvent::Data(d) => d,
        };
        let m = BaseBackupMessage::decode(&data).map_err(|e| DriverError::Protocol(e.into()))?;
        let name = match m {
            BaseBackupMessage::NewArchive(a) => a
                .name_str()
                .map_err(|e| DriverError::Protocol(e.into()))?
                .to_string(),
            BaseBackupMessage::Manifest => "backup_manifest".to_string(),
            BaseBackupMessage::Data(d) => {
                let Some(f) = file.as_mut() else {
                    return Err(Failure::Message("backup data before any archive".into()));
                };
                f.write_all(d.data()).map_err(Failure::Output)?;
                continue;
            }
            _ => continue,
        };
        // A file name from the server: a plain name only.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Failure::Message(format!(
                "unexpected archive name {name:?}"
            )));
        }
        if let Some(f) = file.take() {
            f.sync_all().map_err(Failure::Output)?;
        }
        file = Some(File::create(args.dir.join(&name)).map_err(Failure::Output)?);
    }
    if let Some(f) = file.take() {
        f.sync_all().map_err(Failure::Output)?;
    }
    let sets = conn.finish()?;
    let end = sets
        .first()
        .and_then(|s| s.first())
        .map(|row| {
            let values: Vec<Option<&[u8]>> = row.iter().map(|v| v.as_deref()).collect();
            TimelinePosition::from_lsn_row(&values)
        })
        .transpose()
        .map_err(|e| DriverError::Protocol(e.into()))?;
    if end.is_none() {
        return Err(Failure::Message("the server sent no end position".into()));
    }
    conn.terminate();
    Ok(())
}
