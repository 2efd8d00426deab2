//! `hearth models list|verify`.

use crate::config::Settings;
use crate::engine::verify_model_file;
use crate::models::{manifest, search_dirs};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the manifest and where they are installed.
    List,
    /// Check model files: GGUF structure and metadata bounds, and size and sha256
    /// against the manifest when listed. Without paths, checks every installed model.
    Verify {
        /// GGUF files to check.
        paths: Vec<PathBuf>,
    },
}

fn installed(file: &str, settings: &Settings) -> Option<PathBuf> {
    search_dirs(&settings.storage.data_dir).into_iter().map(|d| d.join(file)).find(|p| p.is_file())
}

pub fn run(cmd: ModelsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List => {
            for m in &manifest().models {
                let mark = if m.default { "*" } else { " " };
                let location = installed(&m.file, settings)
                    .map_or_else(|| "not installed".to_string(), |p| p.display().to_string());
                println!(
                    "{mark} {:<30} {:<5} {:>8.1} MB  {:<11} {}",
                    m.name,
                    m.role,
                    m.bytes as f64 / 1e6,
                    m.license,
                    location
                );
            }
            println!("\n* default. Fetch with: python3 models/fetch.py NAME");
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { paths } => {
            let paths = if paths.is_empty() {
                manifest().models.iter().filter_map(|m| installed(&m.file, settings)).collect()
            } else {
                paths
            };
            if paths.is_empty() {
                println!("No installed models to verify.");
            }
            let mut failed = false;
            for path in paths {
                match verify_model_file(&path, true) {
                    Ok((summary, verified)) => {
                        let sha = match verified {
                            Some(true) => "sha256 matches the manifest",
                            _ => "not in the manifest (structure checked only)",
                        };
                        println!(
                            "ok      {} ({}, {} tensors, {:.1} MB; {sha})",
                            path.display(),
                            summary.architecture,
                            summary.tensor_count,
                            summary.file_size as f64 / 1e6
                        );
                    }
                    Err(e) => {
                        failed = true;
                        println!("FAILED  {e}");
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
