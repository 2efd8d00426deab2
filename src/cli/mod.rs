//! The `hearth` command line. Flags are parsed here, merged into the layered
//! configuration, and each subcommand runs from its own module.

mod admin;
mod audit;
mod backup;
mod chat;
mod doctor;
mod health;
mod knowledge;
mod models;
mod models_install;
mod onboard;
mod serve;
mod speech;
mod unlock;
mod workflows;

use crate::config::{self, FlagOverride, Loaded};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Hearth: a private AI assistant that runs entirely on this box.";

const LONG_ABOUT: &str = "\
Hearth: a private AI assistant that runs entirely on this box.

It runs a local GGUF language model, keeps chat history in SQLite and serves an
authenticated HTTP API (Hearth's /api/chat and the OpenAI-compatible /v1/...).
Nothing leaves the machine.

Settings come from built-in defaults, then /etc/hearth/hearth.toml (or --config),
then HEARTH_* environment variables, then flags. `hearth print-config` shows the result.

Getting started:
  hearth users add alice --admin
  hearth tokens create --user alice        # prints the token once
  hearth serve --model model.gguf          # HTTPS on 127.0.0.1:8443, its own CA
  curl --cacert data/tls/ca.crt -H \"Authorization: Bearer $TOKEN\" \\
       -H 'Content-Type: application/json' -d '{\"message\":\"Hello\"}' https://localhost:8443/api/chat";

#[derive(Debug, Parser)]
#[command(name = "hearth", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Configuration file [default: /etc/hearth/hearth.toml when it exists] [env: HEARTH_CONFIG]
    #[arg(long, global = true, value_name = "FILE", env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,

    /// Data directory: database and models [env: HEARTH_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Log format [env: HEARTH_LOG_FORMAT]
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: load the model and answer HTTP requests.
    Serve(ServeArgs),
    /// Chat in the terminal, with the running service (--url) or in-process.
    Chat(chat::ChatArgs),
    /// Print a one-time setup code for creating the first administrator in the web UI
    /// (with --encrypt or --encrypt-key-file: turn encryption at rest on first).
    Onboard(unlock::OnboardArgs),
    /// Manage users.
    #[command(subcommand)]
    Users(admin::UsersCommand),
    /// Manage API tokens (each belongs to a user).
    #[command(subcommand)]
    Tokens(admin::TokensCommand),
    /// The audit log: verify its hash chain, list entries (logins, account and token
    /// changes, administrators' reads of others' data, refused addresses).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// List, pull, add and verify models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Add documents (files and folders) to a user's knowledge base, with progress.
    Ingest(knowledge::IngestArgs),
    /// Inspect or rebuild the search index of history and documents.
    #[command(subcommand)]
    Index(knowledge::IndexCommand),
    /// Transcribe a WAV file with the local speech model (whisper.cpp).
    Transcribe(speech::TranscribeArgs),
    /// Say text with the local Piper voice and write a WAV file.
    Speak(speech::SpeakArgs),
    /// Workflows (YAML files in workflows.dir): list, check, run one now, read its runs.
    #[command(subcommand)]
    Workflows(workflows::WorkflowsCommand),
    /// Back up the database (with the documents), keys, config and workflows into one
    /// archive while the service runs; `backup verify ARCHIVE` checks one, `backup list`
    /// lists them. Model files are not included.
    Backup(backup::BackupArgs),
    /// Restore an archive into a fresh data dir (--data-dir): verified first, refused from
    /// a newer hearth or into a non-empty folder without --force.
    Restore(backup::RestoreArgs),
    /// Write a user's conversations as JSON (for `hearth import`) or Markdown.
    Export(backup::ExportArgs),
    /// Add the conversations of a JSON export to a user's; importing twice adds nothing.
    Import(backup::ImportArgs),
    /// Encryption at rest: `enable` for this box (at setup or later), `status`.
    #[command(subcommand)]
    Encryption(unlock::EncryptionCommand),
    /// Unlock the running service of an encrypted box: asks for the passphrase and sends it.
    Unlock(unlock::UnlockArgs),
    /// Ask the running service whether it is alive (--ready: ready), for HEALTHCHECKs.
    Health(health::HealthArgs),
    /// Check what this box has and lacks (models, speech, data folder, CPU), with fixes.
    Doctor,
    /// Print the configuration in effect (all layers merged) as TOML.
    PrintConfig,
    /// Print a shell completion script (the .deb installs them), e.g.
    /// `hearth completions bash > ~/.local/share/bash-completion/completions/hearth`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `hearth manpage | man -l -`.
    Manpage,
    /// Internal: extract one document's text from stdin as JSON on stdout, in the
    /// bounded child process the server starts for each document.
    #[command(hide = true)]
    Extract(ExtractArgs),
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The document kind: text, markdown, html or pdf.
    #[arg(long)]
    kind: String,
    /// Memory the extraction may use, in bytes.
    #[arg(long)]
    memory_bytes: u64,
}

/// Settings that `serve` and in-process `chat` share.
#[derive(Debug, Args, Clone, Default)]
pub struct ModelArgs {
    /// GGUF model file [env: HEARTH_MODEL] [default: the manifest's default model]
    #[arg(long, value_name = "PATH")]
    model: Option<String>,

    /// Generation threads, 0 = automatic: every core, one less while another task is busy [env: HEARTH_THREADS]
    #[arg(long, value_name = "N")]
    threads: Option<String>,

    /// Context window in tokens [env: HEARTH_CONTEXT_SIZE]
    #[arg(long, value_name = "TOKENS")]
    context_size: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (HTTPS unless --tls off), e.g. 0.0.0.0:8443 [env: HEARTH_LISTEN]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,

    /// Plain-HTTP address and port that redirects to HTTPS, e.g. 0.0.0.0:8080; "" for none
    /// [env: HEARTH_HTTP_LISTEN]
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<String>,

    /// Where the HTTPS certificate comes from: local (Hearth's own CA), acme, files, or off
    /// (plain HTTP) [env: HEARTH_TLS_MODE]
    #[arg(long, value_name = "MODE", value_parser = ["local", "acme", "files", "off"])]
    tls: Option<String>,

    #[command(flatten)]
    model: ModelArgs,
}

impl Cli {
    fn flag_overrides(&self) -> Vec<FlagOverride> {
        let mut flags = Vec::new();
        let mut push = |flag: &'static str, key: &'static str, value: Option<String>| {
            if let Some(value) = value {
                flags.push(FlagOverride { flag, key, value });
            }
        };
        push("data-dir", "storage.data_dir", self.data_dir.as_ref().map(|d| d.display().to_string()));
        push(
            "log-format",
            "log.format",
            self.log_format.map(|f| match f {
                LogFormatArg::Text => "text".into(),
                LogFormatArg::Json => "json".into(),
            }),
        );
        let model_args = match &self.command {
            Command::Serve(args) => {
                push("listen", "server.listen", args.listen.clone());
                push("http-listen", "server.http_listen", args.http_listen.clone());
                push("tls", "tls.mode", args.tls.clone());
                Some(&args.model)
            }
            Command::Chat(args) => Some(&args.model),
            _ => None,
        };
        if let Some(m) = model_args {
            push("model", "model.path", m.model.clone());
            push("threads", "model.threads", m.threads.clone());
            push("context-size", "model.context_size", m.context_size.clone());
        }
        flags
    }
}

/// Parses arguments, loads configuration and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Extract(args) = &cli.command {
        // The child needs no configuration, logging or data dir: only its arguments.
        return crate::knowledge::isolated::child_main(&args.kind, args.memory_bytes);
    }
    let loaded = match config::load(cli.config.as_deref(), &cli.flag_overrides()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut log = loaded.settings.log.clone();
    if !matches!(cli.command, Command::Serve(_)) && std::env::var_os("RUST_LOG").is_none() {
        log.level = "warn".into(); // keep one-shot commands' output clean
    }
    crate::telemetry::init_logging(&log);
    for var in &loaded.unknown_env_vars {
        tracing::warn!(variable = %var, "ignoring unknown HEARTH_* environment variable");
    }
    match run(cli.command, loaded) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a command opens the data dir itself (an encrypted one needs its keys first).
fn opens_data(command: &Command) -> bool {
    match command {
        Command::Chat(args) => args.in_process(),
        Command::Onboard(_)
        | Command::Users(_)
        | Command::Tokens(_)
        | Command::Ingest(_)
        | Command::Index(_)
        | Command::Workflows(_)
        | Command::Backup(_)
        | Command::Export(_)
        | Command::Import(_) => true,
        _ => false,
    }
}

fn run(command: Command, mut loaded: Loaded) -> anyhow::Result<ExitCode> {
    if opens_data(&command) {
        unlock::for_command(&mut loaded.settings)?;
    }
    match command {
        Command::Encryption(cmd) => unlock::encryption(cmd, &loaded.settings),
        Command::Unlock(args) => unlock::unlock(args, &loaded.settings),
        Command::Serve(_) => serve::run(loaded).map(|()| ExitCode::SUCCESS),
        Command::Chat(args) => chat::run(args, loaded).map(|()| ExitCode::SUCCESS),
        Command::Onboard(args) => {
            unlock::encrypt_at_setup(&args, &mut loaded.settings)?;
            onboard::run(&loaded.settings).map(|()| ExitCode::SUCCESS)
        }
        Command::Users(cmd) => admin::users(cmd, &loaded.settings).map(|()| ExitCode::SUCCESS),
        Command::Tokens(cmd) => admin::tokens(cmd, &loaded.settings).map(|()| ExitCode::SUCCESS),
        Command::Audit(cmd) => audit::run(cmd, &loaded.settings),
        Command::Models(cmd) => models::run(cmd, &loaded.settings),
        Command::Ingest(args) => knowledge::ingest(args, loaded.settings),
        Command::Index(cmd) => knowledge::index(cmd, &loaded.settings),
        Command::Transcribe(args) => speech::transcribe(args, &loaded.settings).map(|()| ExitCode::SUCCESS),
        Command::Doctor => Ok(doctor::run(&loaded.settings)),
        Command::Workflows(cmd) => workflows::run(cmd, loaded.settings),
        Command::Health(args) => Ok(health::run(args, &loaded.settings)),
        Command::Backup(args) => backup::backup(args, &loaded.settings, loaded.file.as_deref()),
        Command::Restore(args) => backup::restore(args, &loaded.settings),
        Command::Export(args) => backup::export(args, &loaded.settings),
        Command::Import(args) => backup::import(args, &loaded.settings),
        Command::Speak(args) => speech::speak(args, &loaded.settings).map(|()| ExitCode::SUCCESS),
        Command::Extract(args) => Ok(crate::knowledge::isolated::child_main(&args.kind, args.memory_bytes)),
        Command::PrintConfig => {
            print_config(&loaded)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hearth", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_config(loaded: &Loaded) -> anyhow::Result<()> {
    match &loaded.file {
        Some(file) => println!("# config file: {}", file.display()),
        None => println!("# config file: none (built-in defaults)"),
    }
    if !loaded.env_vars.is_empty() {
        println!("# environment: {}", loaded.env_vars.join(", "));
    }
    print!("{}", toml::to_string_pretty(&loaded.settings)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_become_overrides() {
        let cli = Cli::parse_from([
            "hearth",
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--data-dir",
            "/tmp/d",
            "--model",
            "m.gguf",
            "--tls",
            "off",
        ]);
        let flags = cli.flag_overrides();
        let keys: Vec<_> = flags.iter().map(|f| (f.key, f.value.as_str())).collect();
        assert!(keys.contains(&("server.listen", "0.0.0.0:9000")));
        assert!(keys.contains(&("storage.data_dir", "/tmp/d")));
        assert!(keys.contains(&("model.path", "m.gguf")));
        assert!(keys.contains(&("tls.mode", "off")));
    }

    #[test]
    fn data_dir_is_accepted_after_the_subcommand() {
        let cli = Cli::parse_from(["hearth", "tokens", "create", "--user", "a", "--data-dir", "/x"]);
        assert_eq!(cli.data_dir, Some(PathBuf::from("/x")));
    }
}
