//! `hearth backup` (and `backup verify`), `hearth restore`, `hearth export` and
//! `hearth import`: the owner's side of `backup/`.

use crate::audit::{Action, Actor, Event, Outcome};
use crate::backup::export::{self, Format};
use crate::config::Settings;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,

    /// Folder the archive is written to [default: backup.dir, else <data_dir>/backups]
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Check an archive: every member present and matching its sha256 in the manifest.
    Verify {
        /// The archive (hearth-backup-*.tar.gz).
        archive: PathBuf,
    },
    /// List the archives in the backup folder, newest first.
    List {
        /// The folder [default: backup.dir, else <data_dir>/backups]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive to restore (hearth-backup-*.tar.gz); it is verified before anything is written.
    archive: PathBuf,

    /// Restore into a data dir that is not empty, replacing its database, keys and index.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Whose conversations.
    #[arg(long, value_name = "NAME")]
    user: String,

    /// json (complete; what `hearth import` reads) or markdown (for reading).
    #[arg(long, default_value = "json", value_parser = ["json", "markdown"])]
    format: String,

    /// File to write [default: standard output]
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The user the conversations are added to.
    #[arg(long, value_name = "NAME")]
    user: String,

    /// A JSON export (`hearth export` or `GET /api/conversations/export`). Importing the
    /// same file twice adds nothing the second time.
    file: PathBuf,
}

/// `hearth backup [--to DIR]`, `hearth backup verify ARCHIVE`, `hearth backup list`.
pub fn backup(args: BackupArgs, settings: &Settings, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BackupCommand::Verify { archive }) => {
            let keys = super::unlock::for_archive(settings, &archive)?;
            let manifest = crate::backup::verify(&archive, keys.as_ref())?;
            println!(
                "{}: OK ({} members, schema {}, made by hearth {} at {})",
                archive.display(),
                manifest.members.len(),
                manifest.schema_version,
                manifest.hearth_version,
                utc(manifest.created_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(BackupCommand::List { to }) => {
            for archive in crate::backup::list(&to.unwrap_or_else(|| settings.backup_dir()))? {
                println!("{}  {:>12} bytes  {}", archive.file, archive.bytes, utc(archive.created_at));
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let dir = args.to.unwrap_or_else(|| settings.backup_dir());
            let sources = crate::backup::Sources::from_settings(settings, config_file);
            let terminal = std::io::stderr().is_terminal();
            let mut progress = |done: u64, total: u64| {
                if terminal {
                    let pct = if total == 0 { 100 } else { done * 100 / total };
                    eprint!("\rbacking up: {pct:>3}% ({} of {} MiB)", done >> 20, total >> 20);
                    let _ = std::io::stderr().flush();
                }
            };
            let result = crate::backup::create(&sources, &dir, &mut progress);
            record_backup(settings, &Actor::cli(), &result);
            let info = result?;
            if terminal {
                eprintln!();
            }
            println!("{}", info.path.display());
            eprintln!(
                "{} bytes. Model files are not in backups: see models.json inside for what to pull again.",
                info.bytes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `hearth restore ARCHIVE [--force]` into the data dir.
pub fn restore(args: RestoreArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let data_dir = &settings.storage.data_dir;
    let keys = super::unlock::for_archive(settings, &args.archive)?;
    let restored = crate::backup::restore(&args.archive, data_dir, args.force, keys.as_ref())?;
    // The restored log goes on from the backup's head: the restore is its next row.
    let store = crate::store::Store::open_keyed(&settings.database_path(), keys.as_ref().map(|k| &k.db))?;
    let event = Event::new(&Actor::cli(), Action::Restore)
        .target(args.archive.display().to_string())
        .detail(serde_json::json!({"schema": restored.manifest.schema_version, "made_at": restored.manifest.created_at}));
    store.audit(&event)?;
    println!(
        "restored {} (schema {}, made at {}) into {}",
        args.archive.display(),
        restored.manifest.schema_version,
        utc(restored.manifest.created_at),
        data_dir.display()
    );
    println!("the search index is rebuilt from the database when `hearth serve` starts");
    if let Some(config) = restored.config {
        println!(
            "the backed-up config file is at {} (copy it to /etc/hearth/hearth.toml if it should apply)",
            config.display()
        );
    }
    println!(
        "model files are not in backups: {}/restored-models.json lists what was installed",
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `hearth export --user NAME [--format json|markdown] [-o FILE]`.
pub fn export(args: ExportArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = super::unlock::open_store(settings)?;
    let user = store.find_user(&args.user).with_context(|| format!("no user named '{}'", args.user))?;
    let format = Format::parse(&args.format).context("format must be json or markdown")?;
    let bytes = export::export(&store, user.id, &user.name, format, &Actor::cli())?;
    match args.output {
        Some(path) => {
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `hearth import --user NAME FILE`.
pub fn import(args: ImportArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = super::unlock::open_store(settings)?;
    let user = store.find_user(&args.user).with_context(|| format!("no user named '{}'", args.user))?;
    let size =
        std::fs::metadata(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?.len();
    if size > export::MAX_IMPORT_BYTES as u64 {
        anyhow::bail!("{} is larger than {} bytes", args.file.display(), export::MAX_IMPORT_BYTES);
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let done = export::import(&store, user.id, &bytes, &Actor::cli())?;
    println!(
        "imported {} conversations ({} messages) for {}; {} were there already",
        done.conversations, done.messages, user.name, done.skipped
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a backup's outcome to the audit log of the box it was taken from; a box whose
/// database cannot be opened still gets its backup (the error is said).
fn record_backup(
    settings: &Settings,
    by: &Actor,
    result: &Result<crate::backup::ArchiveInfo, crate::backup::BackupError>,
) {
    let event = match result {
        Ok(info) => Event::new(by, Action::Backup).target(info.file.clone()),
        Err(e) => Event::new(by, Action::Backup)
            .outcome(Outcome::Failure)
            .detail(serde_json::json!({"error": e.to_string()})),
    };
    let written =
        crate::store::Store::open_keyed(&settings.database_path(), settings.storage.unlocked.db_key())
            .and_then(|store| store.audit(&event));
    if let Err(e) = written {
        eprintln!("warning: the backup could not be written to the audit log: {e}");
    }
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}
