//! Encryption at rest on the command line: `hearth encryption enable|rekey|status`, `hearth
//! unlock` (the passphrase to a locked service), and the keys every command that opens
//! the data dir needs (`for_command`, and `at_start` for `serve`).

use crate::config::Settings;
use crate::crypt::{self, secret, CryptError, Header, Keys, Secret, Unlocked};
use crate::store::Store;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Encrypt this box's data dir (the service must be stopped): the database and its
    /// WAL with SQLCipher, the KV disk cache and backups with AES-256-GCM; the search index
    /// then lives in RAM. Without a flag, asks for a passphrase (twice): the service then
    /// starts locked until `hearth unlock`. Existing data is converted; a crash midway
    /// leaves the old box or the new one.
    Enable(EnableArgs),
    /// Change the secret (the service must be stopped): asks for the current one (or uses
    /// the configured key file or credential), then takes the new one like `enable` does.
    /// Backups made before still open with the old secret only.
    Rekey(EnableArgs),
    /// Say whether the data dir is encrypted and where its key would come from.
    Status,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Use this existing key file (0600, owned by the service user) as the secret; set
    /// `[storage] key_file` to it.
    #[arg(long, value_name = "FILE", conflicts_with = "new_key_file")]
    key_file: Option<PathBuf>,
    /// Make a new random key file here (0600) and use it; back it up somewhere else: without
    /// it the data cannot be read.
    #[arg(long, value_name = "FILE")]
    new_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The service's unlock URL [default: https://localhost:PORT/api/unlock, or http:// with TLS off]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// Encrypt the data dir at rest first (`hearth encryption enable`), with a passphrase
    /// asked twice: the service then starts locked until `hearth unlock`.
    #[arg(long, conflicts_with = "encrypt_key_file")]
    encrypt: bool,
    /// Encrypt the data dir at rest first, with a new key file made here (0600); set
    /// `[storage] key_file` to it and keep a copy off the box.
    #[arg(long, value_name = "FILE")]
    encrypt_key_file: Option<PathBuf>,
}

/// `hearth onboard --encrypt…`: encryption on before the first administrator exists (the
/// service must be stopped, as for `encryption enable`). Nothing when not asked for, or
/// when the box is encrypted already.
pub fn encrypt_at_setup(args: &OnboardArgs, settings: &mut Settings) -> anyhow::Result<()> {
    if !args.encrypt && args.encrypt_key_file.is_none() {
        return Ok(());
    }
    if settings.storage.unlocked.0.is_some() {
        eprintln!("{} is encrypted already", settings.storage.data_dir.display());
        return Ok(());
    }
    let enable_args = EnableArgs { key_file: None, new_key_file: args.encrypt_key_file.clone() };
    let keys = enable_box(enable_args, settings)?;
    settings.storage.unlocked = Unlocked(Some(keys));
    Ok(())
}

/// What `serve` starts with.
pub enum AtStart {
    /// Not encrypted.
    Plain,
    /// The keys, and the lock that tells `encryption rekey` the service runs.
    Unlocked(Keys, crypt::Held),
    /// Told to stop while locked.
    Stopped,
}

fn wrong_key(source: &str, data_dir: &Path) -> anyhow::Error {
    anyhow::anyhow!("wrong key: {source} does not unlock {} (nothing was changed)", data_dir.display())
}

/// The keys without a person: the key file or the systemd credential; `None` when a
/// passphrase is needed.
fn unattended(settings: &Settings, header: &Header) -> anyhow::Result<Option<Keys>> {
    let data_dir = &settings.storage.data_dir;
    let Some(secret) = secret::unattended(&settings.storage.key_file)? else { return Ok(None) };
    let source = match settings.storage.key_file.as_os_str().is_empty() {
        true => format!("the systemd credential {}", secret::CREDENTIAL),
        false => format!("the key file {}", settings.storage.key_file.display()),
    };
    match header.unlock(&secret) {
        Ok(keys) => Ok(Some(keys)),
        Err(CryptError::WrongKey) => Err(wrong_key(&source, data_dir)),
        Err(e) => Err(e.into()),
    }
}

/// `serve`'s keys: from a file or credential, else the locked service waits for the
/// passphrase.
pub fn at_start(settings: &Settings, tls: Option<crate::tls::Tls>) -> anyhow::Result<AtStart> {
    let data_dir = &settings.storage.data_dir;
    let Some(header) = crypt::header(data_dir)? else {
        if !settings.storage.key_file.as_os_str().is_empty() {
            tracing::warn!(
                "storage.key_file is set but the data dir is not encrypted (hearth encryption enable)"
            );
        }
        return Ok(AtStart::Plain);
    };
    let keys = match unattended(settings, &header)? {
        Some(keys) => keys,
        None => {
            let settings = Arc::new(settings.clone());
            let waited = actix_web::rt::System::new()
                .block_on(crate::http::locked::serve(settings, tls, header))
                .context("the locked service failed")?;
            match waited {
                Some(keys) => keys,
                None => return Ok(AtStart::Stopped),
            }
        }
    };
    // A plain on-disk index from before encryption was turned on.
    let index = data_dir.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index).with_context(|| format!("cannot remove {}", index.display()))?;
    }
    tracing::info!("data dir unlocked");
    let held = crypt::hold(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!("another hearth is serving {} or changing its key", data_dir.display())
    })?;
    Ok(AtStart::Unlocked(keys, held))
}

/// Sets the keys of an encrypted data dir for a command that opens it: from the key
/// file or credential, else a passphrase typed here.
pub fn for_command(settings: &mut Settings) -> anyhow::Result<()> {
    let data_dir = settings.storage.data_dir.clone();
    let Some(header) = crypt::header(&data_dir)? else { return Ok(()) };
    let keys = keys_for(settings, &header, &data_dir)?;
    settings.storage.unlocked = Unlocked(Some(keys));
    Ok(())
}

/// The keys for `header` (a data dir's or an encrypted archive's, called `what`): the key
/// file or credential, else a passphrase typed here.
fn keys_for(settings: &Settings, header: &Header, what: &Path) -> anyhow::Result<Keys> {
    if let Some(keys) = unattended(settings, header)? {
        return Ok(keys);
    }
    let secret = secret::read_passphrase(&format!("Passphrase for {}: ", what.display()))?;
    match header.unlock(&secret) {
        Ok(keys) => Ok(keys),
        Err(CryptError::WrongKey) => Err(wrong_key("the passphrase", what)),
        Err(e) => Err(e.into()),
    }
}

/// The keys an archive needs: `None` for a plain one.
pub fn for_archive(settings: &Settings, archive: &Path) -> anyhow::Result<Option<Keys>> {
    match crate::backup::archive_header(archive)? {
        None => Ok(None),
        Some(header) => keys_for(settings, &header, archive).map(Some),
    }
}

/// The database, keyed when the box is encrypted (after [`for_command`]).
pub fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let dir = &settings.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Store::open_keyed(&settings.database_path(), settings.storage.unlocked.db_key())?)
}

pub fn encryption(command: EncryptionCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match command {
        EncryptionCommand::Status => status(settings),
        EncryptionCommand::Enable(args) => enable(args, settings),
        EncryptionCommand::Rekey(args) => rekey(args, settings),
    }
}

fn rekey(args: EnableArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let data_dir = &settings.storage.data_dir;
    let Some(header) = crypt::header(data_dir)? else {
        anyhow::bail!("{} is not encrypted (hearth encryption enable)", data_dir.display());
    };
    let Some(_held) = crypt::hold(data_dir)? else {
        anyhow::bail!("the service is running: stop it first (systemctl stop hearth)");
    };
    let old = keys_for(settings, &header, data_dir)?;
    let (secret, told) = new_secret(&args)?;
    crypt::enable::rekey(data_dir, &old, &secret)?;
    println!("{} has a new secret; {told}", data_dir.display());
    println!("backups made before open with the old secret only; the KV disk cache was emptied");
    Ok(ExitCode::SUCCESS)
}

/// The new secret `enable` and `rekey` take, and what to tell the owner about it.
fn new_secret(args: &EnableArgs) -> anyhow::Result<(Secret, String)> {
    Ok(match (&args.key_file, &args.new_key_file) {
        (Some(path), _) => {
            (secret::from_key_file(path)?, format!("set [storage] key_file = \"{}\"", path.display()))
        }
        (None, Some(path)) => (
            secret::new_key_file(path)?,
            format!(
                "made the key file {0}: set [storage] key_file = \"{0}\" and keep a copy of it off this box",
                path.display()
            ),
        ),
        (None, None) => {
            let first = secret::read_passphrase("New passphrase (8 characters or more): ")?;
            let again = secret::read_passphrase("The same passphrase again: ")?;
            if first.bytes() != again.bytes() {
                anyhow::bail!("the passphrases differ; nothing was changed");
            }
            (first, "the service starts locked: unlock it with `hearth unlock` or its web page".to_string())
        }
    })
}

fn status(settings: &Settings) -> anyhow::Result<ExitCode> {
    let data_dir = &settings.storage.data_dir;
    match crypt::header(data_dir)? {
        None => println!("{}: not encrypted (hearth encryption enable)", data_dir.display()),
        Some(h) => {
            println!(
                "{}: encrypted (SQLCipher; files AES-256-GCM; keys from Argon2id, {} MiB, {} passes)",
                data_dir.display(),
                h.memory_kib / 1024,
                h.iterations
            );
            let source = if !settings.storage.key_file.as_os_str().is_empty() {
                format!("the key file {}", settings.storage.key_file.display())
            } else if let Some(path) = secret::credential_path() {
                format!("the systemd credential {}", path.display())
            } else {
                "a passphrase at unlock (the service starts locked)".to_string()
            };
            println!("key: {source}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn enable(args: EnableArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    enable_box(args, settings).map(|_| ExitCode::SUCCESS)
}

fn enable_box(args: EnableArgs, settings: &Settings) -> anyhow::Result<Keys> {
    let data_dir = &settings.storage.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    if crypt::header(data_dir)?.is_some() {
        anyhow::bail!("{} is encrypted already", data_dir.display());
    }
    // The running service holds the index's lock: converting under it would lose writes.
    if let Err(crate::search::SearchError::Busy(_)) = crate::search::SearchIndex::open(&settings.index_dir())
    {
        anyhow::bail!("the service is running: stop it first (systemctl stop hearth)");
    }
    let (secret, told) = new_secret(&args)?;
    let done = crypt::enable::enable(data_dir, &settings.backup_dir(), &secret)?;
    println!("{} is encrypted; {told}", data_dir.display());
    if !done.plain_backups.is_empty() {
        println!("backups made before are NOT encrypted; delete them once a new backup is made:");
        for path in done.plain_backups {
            println!("  {}", path.display());
        }
    }
    Ok(done.keys)
}

/// `hearth unlock`: the passphrase to the locked service on this box.
pub fn unlock(args: UnlockArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let url = args.url.unwrap_or_else(|| default_url(settings));
    let secret = secret::read_passphrase("Passphrase: ")?;
    let passphrase = String::from_utf8_lossy(secret.bytes()).into_owned();
    let agent = crate::tls::client::agent_with_timeout(settings, Duration::from_secs(30));
    match agent.post(&url).send_json(serde_json::json!({ "passphrase": passphrase })) {
        Ok(_) => {
            println!("unlocked: the service is starting");
            Ok(ExitCode::SUCCESS)
        }
        Err(ureq::Error::Status(status, response)) => {
            let body: serde_json::Value = response.into_json().unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or("refused").to_string();
            eprintln!("{url}: {status}: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::anyhow!("cannot reach {url}: {e}")),
    }
}

/// The locked service listens on `server.listen` only (no plain redirect listener).
fn default_url(settings: &Settings) -> String {
    let addr = settings.listen_addr();
    let host = match addr.ip().is_unspecified() || addr.ip().is_loopback() {
        true => format!("localhost:{}", addr.port()),
        false => addr.to_string(),
    };
    let scheme = if settings.tls.enabled() { "https" } else { "http" };
    format!("{scheme}://{host}/api/unlock")
}
