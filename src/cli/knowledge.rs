//! `hearth ingest PATH...` and `hearth index ...`: the knowledge base from the box's
//! own shell. Both open the database directly, so they work with or without a running
//! service; when the service is running it holds the search index, and it indexes
//! what `ingest` stores.

use crate::config::Settings;
use crate::engine::Registry;
use crate::jobs::JobRunner;
use crate::knowledge::{extract, Knowledge};
use crate::search::{SearchError, SearchIndex};
use crate::store::{Enqueued, Store};
use crate::telemetry::Metrics;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders (folders are read recursively; unsupported files in them are
    /// skipped): text, Markdown, HTML and PDF.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The user who owns the documents.
    #[arg(long, value_name = "NAME")]
    user: String,
    /// Queue the documents and return without waiting for them to be read.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuild the search index from the database (stop the service first).
    Rebuild,
    /// Show how many items the index and the database hold.
    Status,
}

/// Every file under the given paths, with whether it was named explicitly.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.is_file() {
                out.push((path, false));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out)?;
        } else if path.is_file() {
            out.push((path.clone(), true));
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(out)
}

pub fn ingest(args: IngestArgs, settings: Settings) -> anyhow::Result<ExitCode> {
    let settings = Arc::new(settings);
    let store = super::unlock::open_store(&settings)?;
    let user = store.find_user(&args.user).with_context(|| format!("no user '{}'", args.user))?;
    let limit = settings.knowledge.max_upload_bytes;
    let mut queued: Vec<(String, Enqueued)> = Vec::new();
    let mut skipped = 0;
    for (path, explicit) in files(&args.paths)? {
        let shown = path.display().to_string();
        let size = std::fs::metadata(&path)?.len();
        let checked = if size > limit as u64 {
            Err(format!("larger than the {limit}-byte limit (knowledge.max_upload_bytes)"))
        } else {
            let data = std::fs::read(&path).with_context(|| format!("cannot read {shown}"))?;
            let name = path.file_name().map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
            extract::detect(&name, None, &data).map(|kind| (name, kind, data)).map_err(|e| e.to_string())
        };
        match checked {
            Ok((name, kind, data)) => {
                let enqueued = store.add_document(user.id, &name, kind.as_str(), &data)?;
                queued.push((shown, enqueued));
            }
            Err(why) if explicit => bail!("{shown}: {why}"),
            Err(why) => {
                eprintln!("skipped {shown}: {why}");
                skipped += 1;
            }
        }
    }
    let duplicates = queued.iter().filter(|(_, e)| e.duplicate && e.document.status != "pending").count();
    eprintln!(
        "queued {} document(s) for {}{}{}",
        queued.len() - duplicates,
        user.name,
        if duplicates > 0 { format!(", {duplicates} already present") } else { String::new() },
        if skipped > 0 { format!(", {skipped} skipped") } else { String::new() },
    );
    let jobs: Vec<(String, String)> =
        queued.iter().filter_map(|(shown, e)| e.job_id.clone().map(|j| (shown.clone(), j))).collect();
    if args.no_wait || jobs.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let index = open_index_if_free(&settings)?;
    let encrypted = settings.storage.unlocked.0.is_some();
    let models =
        Registry::start(settings.clone(), Err("no chat model in `hearth ingest`".into()), Metrics::new());
    let knowledge = Knowledge { store: store.clone(), index: index.clone(), models, settings };
    let runner = JobRunner::start(knowledge, None, None); // reminders fire in the service
    runner.wake();
    let failed = follow_jobs(&store, user.id, &jobs)?;
    match index {
        Some(index) => {
            index.sync(&store)?;
        }
        None if encrypted => {
            eprintln!("the service indexes the new documents (its index is in RAM: the box is encrypted)")
        }
        None => eprintln!("the running service holds the search index; it indexes the new documents"),
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Shows one progress bar over the jobs until all have ended; returns how many failed.
fn follow_jobs(store: &Store, user_id: i64, jobs: &[(String, String)]) -> anyhow::Result<usize> {
    let bar = ProgressBar::new(jobs.len() as u64 * 100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {elapsed} {msg}")?
            .progress_chars("=> "),
    );
    loop {
        let mut total = 0.0;
        let mut running = None;
        let mut ended = 0;
        for (shown, id) in jobs {
            let job = store.job(None, id)?;
            match job.state.as_str() {
                "done" | "failed" => {
                    ended += 1;
                    total += 100.0;
                }
                "running" => {
                    total += job.progress;
                    running = Some(shown.as_str());
                }
                _ => {}
            }
        }
        bar.set_position(total as u64);
        bar.set_message(running.unwrap_or("").to_string());
        if ended == jobs.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
    let mut failed = 0;
    for (shown, id) in jobs {
        let job = store.job(None, id)?;
        match (job.state.as_str(), job.document_id) {
            ("done", Some(doc)) => {
                let chunks = store.document(user_id, doc).map_or(0, |d| d.chunk_count);
                eprintln!("ok      {shown} ({chunks} chunks)");
            }
            _ => {
                failed += 1;
                eprintln!("failed  {shown}: {}", job.error.unwrap_or_else(|| "unknown error".into()));
            }
        }
    }
    Ok(failed)
}

/// The index, or `None` when the running service holds it or the box is encrypted (its
/// index lives in the service's RAM and follows the database).
fn open_index_if_free(settings: &Settings) -> anyhow::Result<Option<SearchIndex>> {
    if settings.storage.unlocked.0.is_some() {
        return Ok(None);
    }
    match SearchIndex::open(&settings.index_dir()) {
        Ok(index) => Ok(Some(index)),
        Err(SearchError::Busy(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn index(command: IndexCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = super::unlock::open_store(settings)?;
    if settings.storage.unlocked.0.is_some() {
        // Never a plain index on an encrypted box's disk.
        println!(
            "index:     in the service's RAM (the box is encrypted), built from the database at every start"
        );
        println!("database:  {} messages, chunks and notes", store.index_item_count()?);
        if matches!(command, IndexCommand::Rebuild) {
            println!("to rebuild it, restart the service (systemctl restart hearth)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let index = match SearchIndex::open(&settings.index_dir()) {
        Err(SearchError::Busy(dir)) => bail!(
            "the search index in {} is held by the running service; stop it first \
             (e.g. `systemctl stop hearth`)",
            dir.display()
        ),
        other => other?,
    };
    match command {
        IndexCommand::Status => {
            index.sync(&store)?;
            println!("index:     {}", index.dir().display());
            println!("indexed:   {}", index.num_docs());
            println!("database:  {} messages, chunks and notes", store.index_item_count()?);
        }
        IndexCommand::Rebuild => {
            let bar = ProgressBar::new(0);
            bar.set_style(ProgressStyle::with_template(
                "rebuilding [{bar:40}] {pos}/{len} items {elapsed} ({per_sec})",
            )?);
            let started = std::time::Instant::now();
            let n = index.rebuild(&store, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            eprintln!("rebuilt the search index: {n} items in {:.1} s", started.elapsed().as_secs_f32());
        }
    }
    Ok(ExitCode::SUCCESS)
}
