//! `hearth models pull` and `hearth models add`: getting model files onto the box, with
//! progress bars. Exit codes: 0 installed, 1 failed (network, verification, a refused
//! file), 2 unknown model name, 3 a needed tool (python3, pip, fetch.py) is missing.

use crate::config::Settings;
use crate::models::{manifest, models_dir, AddError, AddOptions, Fetcher, Phase, PullError};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn bar() -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:36}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        )?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Ok(bar)
}

/// `hearth models pull NAME`: fetches and verifies a manifest model into `<data_dir>/models`.
pub fn pull(name: &str, settings: &Settings) -> anyhow::Result<ExitCode> {
    let Some(entry) = manifest().lookup(name) else {
        eprintln!("error: unknown model '{name}'; known models: {} (or default)", manifest().names());
        return Ok(ExitCode::from(2));
    };
    let fetcher = match Fetcher::locate() {
        Ok(fetcher) => fetcher,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let dest = models_dir(&settings.storage.data_dir);
    let bar = bar()?;
    bar.set_message("starting");
    let started = Instant::now();
    let result = crate::models::pull(&fetcher, entry, &dest, &mut |p| {
        if p.total > 0 {
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
        bar.set_message(match p.phase {
            Phase::Waiting => "waiting",
            Phase::Download => "downloading",
            Phase::Unpack => "unpacking",
            Phase::Convert => "converting",
            Phase::Verify => "verifying",
            Phase::Done => "done",
            _ => "",
        });
    });
    bar.finish_and_clear();
    match result {
        Ok(path) => {
            println!(
                "{}: installed {} ({:.1} MB, size and sha256 match the manifest; {:.0} s)",
                entry.name,
                path.display(),
                entry.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            if matches!(entry.role.as_str(), "speech-to-text" | "text-to-speech" | "runtime") {
                println!("A running hearth service uses it after a restart (sudo systemctl restart hearth).");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ PullError::MissingTool(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => {
            eprintln!("error: pulling {} failed: {e}", entry.name);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `hearth models add FILE`: copies a model file into `<data_dir>/models`, validated.
pub fn add(file: &Path, options: AddOptions, settings: &Settings) -> anyhow::Result<ExitCode> {
    let dest = models_dir(&settings.storage.data_dir);
    let bar = bar()?;
    bar.set_message("copying");
    let result = crate::models::add(file, &dest, &options, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(added) if added.unchanged => {
            println!("{} is installed already (the same bytes); nothing changed", added.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Ok(added) => {
            let what = match &added.listed {
                Some(name) => format!("{name}, size and sha256 match the manifest"),
                None => "not in the manifest; structure checked".into(),
            };
            println!(
                "installed {} ({}, {:.1} MB; {what})",
                added.path.display(),
                added.kind,
                added.bytes as f64 / 1e6
            );
            for side in &added.side_files {
                println!("installed {}", side.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AddError::Refused(e)) => {
            eprintln!("error: refused, nothing was installed: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
