//! Layered configuration: built-in defaults < config file < `HEARTH_*` environment
//! variables < command-line flags.
//!
//! Each layer is a partial TOML table merged onto the ones below it; after each layer
//! the result is deserialized into [`Settings`] (unknown keys are errors), so a mistake
//! is reported against the layer that introduced it: the file and key, the variable,
//! or the flag.

mod backup;
mod governor;
mod limits;
mod mqtt;
mod outbound;
mod settings;
mod telegram;
mod tls;
mod voice;
mod workflows;

pub use limits::LimitSettings;
pub use mqtt::COMMANDS as MQTT_COMMANDS;
pub use outbound::{read_secret_file, EnvSecret, FileSecret, HeaderSetting, Secret};
pub use settings::cores;
pub use settings::{
    AcmeChallenge, BackupSettings, Broker, GovernorSettings, HomeAssistantSettings, KnowledgeSettings,
    LogFormat, LogSettings, ModelSettings, MqttSettings, OutboundSettings, RetentionSettings, ServerSettings,
    Settings, SkillSettings, StorageSettings, TelegramSettings, TlsMode, TlsSettings, VoiceSettings,
    WebhookSettings,
};
pub use voice::{system_language, valid_languages};
pub use workflows::{HookSecret, HookSettings, WorkflowSettings};

use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The file read when no `--config` is given, if it exists.
pub const SYSTEM_CONFIG: &str = "/etc/hearth/hearth.toml";

/// The type of a setting, for parsing environment variables and flags.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// Comma-separated strings.
    List,
    /// Comma-separated `key=value` pairs, a table of strings.
    Map,
}

/// Environment variables and the keys they set.
const ENV_VARS: &[(&str, &str, Kind)] = &[
    ("HEARTH_LISTEN", "server.listen", Kind::Str),
    ("HEARTH_HTTP_LISTEN", "server.http_listen", Kind::Str),
    ("HEARTH_NAME", "server.name", Kind::Str),
    ("HEARTH_MDNS", "server.mdns", Kind::Bool),
    ("HEARTH_ALLOWED_HOSTS", "server.allowed_hosts", Kind::List),
    ("HEARTH_ADMIN_ALLOW", "server.admin_allow", Kind::List),
    ("HEARTH_MAX_BODY_BYTES", "server.max_body_bytes", Kind::Int),
    ("HEARTH_WORKERS", "server.workers", Kind::Int),
    ("HEARTH_MODEL", "model.path", Kind::Str),
    ("HEARTH_THREADS", "model.threads", Kind::Int),
    ("HEARTH_THREADS_BATCH", "model.threads_batch", Kind::Int),
    ("HEARTH_CONTEXT_SIZE", "model.context_size", Kind::Int),
    ("HEARTH_MAX_TOKENS", "model.max_tokens", Kind::Int),
    ("HEARTH_TEMPERATURE", "model.temperature", Kind::Float),
    ("HEARTH_SYSTEM_PROMPT", "model.system_prompt", Kind::Str),
    ("HEARTH_QUEUE_SIZE", "model.queue_size", Kind::Int),
    ("HEARTH_PARALLEL", "model.parallel", Kind::Int),
    ("HEARTH_KV_CACHE_TOKENS", "model.kv_cache_tokens", Kind::Int),
    ("HEARTH_IDLE_CACHE_TOKENS", "model.idle_cache_tokens", Kind::Int),
    ("HEARTH_DISK_CACHE_MB", "model.disk_cache_mb", Kind::Int),
    ("HEARTH_REQUEST_TIMEOUT_SECS", "model.request_timeout_secs", Kind::Int),
    ("HEARTH_IDLE_UNLOAD_SECS", "model.idle_unload_secs", Kind::Int),
    ("HEARTH_EMBEDDING_MODEL", "model.embedding_model", Kind::Str),
    ("HEARTH_AUTO_PULL", "model.auto_pull", Kind::Bool),
    ("HEARTH_DATA_DIR", "storage.data_dir", Kind::Str),
    ("HEARTH_KEY_FILE", "storage.key_file", Kind::Str),
    ("HEARTH_MAX_UPLOAD_BYTES", "knowledge.max_upload_bytes", Kind::Int),
    ("HEARTH_CHUNK_CHARS", "knowledge.chunk_chars", Kind::Int),
    ("HEARTH_KNOWLEDGE_CONTEXT_TOKENS", "knowledge.context_tokens", Kind::Int),
    ("HEARTH_KNOWLEDGE_TOP_K", "knowledge.top_k", Kind::Int),
    ("HEARTH_KNOWLEDGE_CHAT_DEFAULT", "knowledge.chat_default", Kind::Bool),
    ("HEARTH_SKILLS", "skills.enabled", Kind::List),
    ("HEARTH_SKILLS_OFF_BY_DEFAULT", "skills.off_by_default", Kind::List),
    ("HEARTH_SKILLS_MAX_ROUNDS", "skills.max_rounds", Kind::Int),
    ("HEARTH_SKILLS_TIMEOUT_SECS", "skills.timeout_secs", Kind::Int),
    ("HEARTH_OUTBOUND_ALLOWED_HOSTS", "outbound.allowed_hosts", Kind::List),
    ("HEARTH_OUTBOUND_ALLOW_PRIVATE", "outbound.allow_private", Kind::Bool),
    ("HEARTH_OUTBOUND_TIMEOUT_SECS", "outbound.timeout_secs", Kind::Int),
    ("HEARTH_HOME_ASSISTANT_URL", "home_assistant.url", Kind::Str),
    ("HEARTH_HOME_ASSISTANT_TOKEN", "home_assistant.token", Kind::Str),
    ("HEARTH_HOME_ASSISTANT_TOKEN_FILE", "home_assistant.token_file", Kind::Str),
    ("HEARTH_HOME_ASSISTANT_SERVICES", "home_assistant.services", Kind::List),
    ("HEARTH_HOME_ASSISTANT_ANNOUNCE_ENTITY", "home_assistant.announce_entity", Kind::List),
    ("HEARTH_EXTRACT_TIMEOUT_SECS", "knowledge.extract_timeout_secs", Kind::Int),
    ("HEARTH_EXTRACT_MEMORY_BYTES", "knowledge.extract_memory_bytes", Kind::Int),
    ("HEARTH_USER_QUOTA_BYTES", "knowledge.user_quota_bytes", Kind::Int),
    ("HEARTH_REQUESTS_PER_MINUTE", "limits.requests_per_minute", Kind::Int),
    ("HEARTH_TOKENS_PER_MINUTE", "limits.tokens_per_minute", Kind::Int),
    ("HEARTH_UPLOADS_PER_DAY", "limits.uploads_per_day", Kind::Int),
    ("HEARTH_GENERATIONS_PER_USER", "limits.generations_per_user", Kind::Int),
    ("HEARTH_STT_MODEL", "voice.stt_model", Kind::Str),
    ("HEARTH_TTS_VOICE", "voice.tts_voice", Kind::Str),
    ("HEARTH_ONNXRUNTIME", "voice.onnxruntime", Kind::Str),
    ("HEARTH_VOICE_THREADS", "voice.threads", Kind::Int),
    ("HEARTH_VOICE_LANGUAGE", "voice.language", Kind::Str),
    ("HEARTH_WYOMING_LISTEN", "voice.wyoming_listen", Kind::Str),
    ("HEARTH_WYOMING_USER", "voice.wyoming_user", Kind::Str),
    ("HEARTH_TLS_MODE", "tls.mode", Kind::Str),
    ("HEARTH_TLS_CERT", "tls.cert", Kind::Str),
    ("HEARTH_TLS_KEY", "tls.key", Kind::Str),
    ("HEARTH_ACME_DOMAINS", "tls.acme_domains", Kind::List),
    ("HEARTH_ACME_CONTACT", "tls.acme_contact", Kind::List),
    ("HEARTH_ACME_DIRECTORY", "tls.acme_directory", Kind::Str),
    ("HEARTH_ACME_CA", "tls.acme_ca", Kind::Str),
    ("HEARTH_ACME_CHALLENGE", "tls.acme_challenge", Kind::Str),
    ("HEARTH_TELEGRAM_ENABLED", "telegram.enabled", Kind::Bool),
    ("HEARTH_TELEGRAM_TOKEN", "telegram.token", Kind::Str),
    ("HEARTH_TELEGRAM_TOKEN_FILE", "telegram.token_file", Kind::Str),
    ("HEARTH_TELEGRAM_API_BASE", "telegram.api_base", Kind::Str),
    ("HEARTH_TELEGRAM_CHATS", "telegram.chats", Kind::Map),
    ("HEARTH_TELEGRAM_VOICE_REPLIES", "telegram.voice_replies", Kind::Bool),
    ("HEARTH_TELEGRAM_POLL_TIMEOUT_SECS", "telegram.poll_timeout_secs", Kind::Int),
    ("HEARTH_MQTT_ENABLED", "mqtt.enabled", Kind::Bool),
    ("HEARTH_MQTT_URL", "mqtt.url", Kind::Str),
    ("HEARTH_MQTT_USERNAME", "mqtt.username", Kind::Str),
    ("HEARTH_MQTT_PASSWORD", "mqtt.password", Kind::Str),
    ("HEARTH_MQTT_PASSWORD_FILE", "mqtt.password_file", Kind::Str),
    ("HEARTH_MQTT_CLIENT_CERT", "mqtt.client_cert", Kind::Str),
    ("HEARTH_MQTT_CLIENT_KEY", "mqtt.client_key", Kind::Str),
    ("HEARTH_MQTT_CA_FILE", "mqtt.ca_file", Kind::Str),
    ("HEARTH_MQTT_DEVICE_ID", "mqtt.device_id", Kind::Str),
    ("HEARTH_MQTT_INTERVAL_SECS", "mqtt.interval_secs", Kind::Int),
    ("HEARTH_MQTT_BASE_TOPIC", "mqtt.base_topic", Kind::Str),
    ("HEARTH_MQTT_DISCOVERY_PREFIX", "mqtt.discovery_prefix", Kind::Str),
    ("HEARTH_MQTT_BACKLOG", "mqtt.backlog", Kind::Int),
    ("HEARTH_MQTT_COMMANDS", "mqtt.commands", Kind::List),
    ("HEARTH_WORKFLOWS_DIR", "workflows.dir", Kind::Str),
    ("HEARTH_GOVERNOR_ENABLED", "governor.enabled", Kind::Bool),
    ("HEARTH_GOVERNOR_MIN_MEMORY_AVAILABLE_MB", "governor.min_memory_available_mb", Kind::Int),
    ("HEARTH_GOVERNOR_MAX_TEMPERATURE_C", "governor.max_temperature_c", Kind::Float),
    ("HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS", "governor.sample_interval_ms", Kind::Int),
    ("HEARTH_GOVERNOR_THERMAL_DIR", "governor.thermal_dir", Kind::Str),
    ("HEARTH_GOVERNOR_MEMINFO_PATH", "governor.meminfo_path", Kind::Str),
    ("HEARTH_BACKUP_DIR", "backup.dir", Kind::Str),
    ("HEARTH_BACKUP_EVERY", "backup.every", Kind::Str),
    ("HEARTH_BACKUP_KEEP", "backup.keep", Kind::Int),
    ("HEARTH_RETENTION_CONVERSATIONS_DAYS", "retention.conversations_days", Kind::Int),
    ("HEARTH_RETENTION_DOCUMENTS_DAYS", "retention.documents_days", Kind::Int),
    ("HEARTH_LOG_FORMAT", "log.format", Kind::Str),
    ("HEARTH_LOG_LEVEL", "log.level", Kind::Str),
];

/// Variables with the `HEARTH_` prefix that are read elsewhere (not settings).
const OTHER_VARS: &[&str] =
    &["HEARTH_CONFIG", "HEARTH_URL", "HEARTH_TOKEN", "HEARTH_MODEL_CACHE", "HEARTH_FETCHER", "HEARTH_PYTHON"];

/// A configuration error, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("flag --{flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A flag's value, given as the dotted key it sets and the raw text.
#[derive(Debug, Clone)]
pub struct FlagOverride {
    pub flag: &'static str,
    pub key: &'static str,
    pub value: String,
}

/// What [`load`] read, for `print-config` and the startup log.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub file: Option<PathBuf>,
    pub env_vars: Vec<String>,
    /// `HEARTH_*` variables that match no setting (likely typos).
    pub unknown_env_vars: Vec<String>,
    /// The flags that were applied, to apply again when the file is re-read.
    pub flags: Vec<FlagOverride>,
}

/// Loads settings from the config file (explicit, or [`SYSTEM_CONFIG`] if present),
/// the process environment and the given flags.
pub fn load(config_file: Option<&Path>, flags: &[FlagOverride]) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(config_file, Path::new(SYSTEM_CONFIG), &env, flags)
}

fn load_from(
    explicit_file: Option<&Path>,
    system_file: &Path,
    env: &[(String, String)],
    flags: &[FlagOverride],
) -> Result<Loaded, ConfigError> {
    let mut table = Table::new();

    let file = match explicit_file {
        Some(path) => Some(path.to_path_buf()),
        None if system_file.exists() => Some(system_file.to_path_buf()),
        None => None,
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Unreadable { path: path.clone(), source })?;
        let file_err = |e: toml::de::Error| ConfigError::File { path: path.clone(), message: e.to_string() };
        // Parsed from the text (not the table) so errors show the line and key.
        toml::from_str::<Settings>(&text).map_err(file_err)?;
        merge(&mut table, toml::from_str(&text).map_err(file_err)?);
    }

    let mut env_used = Vec::new();
    let mut unknown_env = Vec::new();
    for (var, raw) in env {
        if !var.starts_with("HEARTH_") || OTHER_VARS.contains(&var.as_str()) {
            continue;
        }
        let Some((_, key, kind)) = ENV_VARS.iter().find(|(name, _, _)| name == var) else {
            if !var.starts_with("HEARTH_TEST") {
                unknown_env.push(var.clone());
            }
            continue;
        };
        let err = |message: String| ConfigError::Env { var: var.clone(), message };
        let value = parse_value(raw, *kind).map_err(err)?;
        set_key(&mut table, key, value);
        check(&table).map_err(err)?;
        env_used.push(var.clone());
    }

    for flag in flags {
        let kind = ENV_VARS.iter().find(|(_, key, _)| *key == flag.key).map_or(Kind::Str, |e| e.2);
        let err = |message: String| ConfigError::Flag { flag: flag.flag.to_string(), message };
        let value = parse_value(&flag.value, kind).map_err(err)?;
        set_key(&mut table, flag.key, value);
        check(&table).map_err(err)?;
    }

    let settings: Settings =
        Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
    settings.validate().map_err(ConfigError::Invalid)?;
    Ok(Loaded { settings, file, env_vars: env_used, unknown_env_vars: unknown_env, flags: flags.to_vec() })
}

/// Deserializes the table so far, reporting unknown keys and wrong types.
fn check(table: &Table) -> Result<(), String> {
    Value::Table(table.clone()).try_into::<Settings>().map(|_| ()).map_err(|e| e.message().trim().to_string())
}

fn parse_value(raw: &str, kind: Kind) -> Result<Value, String> {
    match kind {
        Kind::Str => Ok(Value::String(raw.to_string())),
        Kind::Int => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected a whole number, got '{raw}'")),
        Kind::Float => {
            raw.trim().parse::<f64>().map(Value::Float).map_err(|_| format!("expected a number, got '{raw}'"))
        }
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got '{raw}'")),
        },
        Kind::List => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        )),
        Kind::Map => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => Ok((k.trim().to_string(), Value::String(v.trim().to_string()))),
                None => Err(format!("expected key=value pairs separated by commas, got '{pair}'")),
            })
            .collect::<Result<Table, String>>()
            .map(Value::Table),
    }
}

fn set_key(table: &mut Table, dotted: &str, value: Value) {
    let (section, key) = dotted.split_once('.').expect("keys are section.key");
    let entry = table.entry(section).or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(section_table) = entry {
        section_table.insert(key.to_string(), value);
    }
}

fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    const NO_SYSTEM: &str = "/nonexistent/hearth.toml";

    #[test]
    fn defaults_match_the_seeds() {
        let loaded = load_from(None, Path::new(NO_SYSTEM), &[], &[]).unwrap();
        assert_eq!(loaded.settings.model.max_tokens, 2048);
        assert_eq!(loaded.settings.model.temperature, 0.7);
        assert!(loaded.file.is_none());
    }

    #[test]
    fn layers_override_in_order() {
        let f = file("[model]\nthreads = 3\ncontext_size = 1024\nmax_tokens = 100\n");
        let flags = [FlagOverride { flag: "threads", key: "model.threads", value: "1".into() }];
        let e = env(&[("HEARTH_THREADS", "2"), ("HEARTH_CONTEXT_SIZE", "2048")]);
        let loaded = load_from(Some(f.path()), Path::new(NO_SYSTEM), &e, &flags).unwrap();
        assert_eq!(loaded.settings.model.threads, 1, "flag beats env");
        assert_eq!(loaded.settings.model.context_size, 2048, "env beats file");
        assert_eq!(loaded.settings.model.max_tokens, 100, "file beats default");
    }

    #[test]
    fn unknown_key_in_file_names_file_and_key() {
        let f = file("[model]\ntreads = 3\n");
        let err = load_from(Some(f.path()), Path::new(NO_SYSTEM), &[], &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&f.path().display().to_string()), "{text}");
        assert!(text.contains("treads"), "{text}");
    }

    #[test]
    fn telegram_from_the_environment() {
        let e = env(&[
            ("HEARTH_TELEGRAM_ENABLED", "true"),
            ("HEARTH_TELEGRAM_TOKEN", "123:abcDEF"),
            ("HEARTH_TELEGRAM_CHATS", "12345=alice, -100200=bob"),
            ("HEARTH_TELEGRAM_POLL_TIMEOUT_SECS", "2"),
        ]);
        let t = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap().settings.telegram;
        assert!(t.enabled);
        assert_eq!(t.allowed_chats(), [(12345, "alice".into()), (-100200, "bob".into())].into());
        assert_eq!(t.poll_timeout_secs, 2);
        let e = env(&[("HEARTH_TELEGRAM_CHATS", "12345")]);
        let err = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap_err().to_string();
        assert!(err.contains("HEARTH_TELEGRAM_CHATS") && err.contains("key=value"), "{err}");
        // Enabled without a token: the error names the key.
        let e = env(&[("HEARTH_TELEGRAM_ENABLED", "1"), ("HEARTH_TELEGRAM_CHATS", "1=alice")]);
        let err = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap_err().to_string();
        assert!(err.contains("telegram.token"), "{err}");
        let f = file("[telegram]\nenabled = true\ntoken = \"9:x\"\n[telegram.chats]\n42 = \"alice\"\n");
        let t = load_from(Some(f.path()), Path::new(NO_SYSTEM), &[], &[]).unwrap().settings.telegram;
        assert_eq!(t.allowed_chats()[&42], "alice");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let f = file("[modle]\nthreads = 3\n");
        let err = load_from(Some(f.path()), Path::new(NO_SYSTEM), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("modle"), "{err}");
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let err =
            load_from(Some(Path::new("/nonexistent/x.toml")), Path::new(NO_SYSTEM), &[], &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err =
            load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_THREADS", "many")]), &[]).unwrap_err();
        assert!(err.to_string().contains("HEARTH_THREADS"), "{err}");
    }

    #[test]
    fn wrong_type_in_file_is_reported() {
        let f = file("[model]\ntemperature = \"hot\"\n");
        let err = load_from(Some(f.path()), Path::new(NO_SYSTEM), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("temperature = \"hot\""), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for (var, value) in [
            ("HEARTH_TEMPERATURE", "5"),
            ("HEARTH_LISTEN", "nowhere"),
            ("HEARTH_MAX_TOKENS", "0"),
            ("HEARTH_EXTRACT_TIMEOUT_SECS", "0"),
            ("HEARTH_EXTRACT_MEMORY_BYTES", "1000"),
        ] {
            let err = load_from(None, Path::new(NO_SYSTEM), &env(&[(var, value)]), &[]);
            assert!(err.is_err(), "{var}={value} accepted");
        }
    }

    #[test]
    fn the_admin_allowlist_comes_from_env_and_a_bad_block_is_named() {
        let e = env(&[("HEARTH_ADMIN_ALLOW", "10.0.0.0/8, ::1/128")]);
        let server = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap().settings.server;
        assert_eq!(server.admin_allow, ["10.0.0.0/8", "::1/128"]);
        let f = file("[server]\nadmin_allow = [\"192.168.1.0/33\"]\n");
        let err = load_from(Some(f.path()), Path::new(NO_SYSTEM), &[], &[]).unwrap_err().to_string();
        assert!(err.contains("server.admin_allow") && err.contains("0-32"), "{err}");
    }

    #[test]
    fn skills_come_from_env_and_an_unknown_one_is_named() {
        let e = env(&[("HEARTH_SKILLS", "clock"), ("HEARTH_SKILLS_MAX_ROUNDS", "2")]);
        let skills = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap().settings.skills;
        assert_eq!((skills.enabled.as_slice(), skills.max_rounds), (&["clock".to_string()][..], 2));
        let none = load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_SKILLS", "")]), &[]).unwrap();
        assert!(none.settings.skills.enabled.is_empty(), "an empty list turns the skills off");
        let err = load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_SKILLS", "clock,weather")]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("skills.enabled") && err.contains("'weather'"), "{err}");
        let rounds = load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_SKILLS_MAX_ROUNDS", "0")]), &[]);
        assert!(rounds.is_err(), "at least one round");
    }

    #[test]
    fn extraction_limits_come_from_env() {
        let e = env(&[("HEARTH_EXTRACT_TIMEOUT_SECS", "5"), ("HEARTH_EXTRACT_MEMORY_BYTES", "67108864")]);
        let knowledge = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap().settings.knowledge;
        assert_eq!((knowledge.extract_timeout_secs, knowledge.extract_memory_bytes), (5, 64 << 20));
    }

    #[test]
    fn tls_settings_come_from_env_and_flags() {
        let e = env(&[("HEARTH_TLS_MODE", "acme"), ("HEARTH_ACME_DOMAINS", "a.example.com, b.example.com")]);
        let loaded = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap();
        assert_eq!(loaded.settings.tls.mode, TlsMode::Acme);
        assert_eq!(loaded.settings.tls.acme_domains, ["a.example.com", "b.example.com"]);
        let flags = [FlagOverride { flag: "tls", key: "tls.mode", value: "off".into() }];
        let loaded = load_from(None, Path::new(NO_SYSTEM), &e, &flags).unwrap();
        assert_eq!(loaded.settings.tls.mode, TlsMode::Off);
        let err =
            load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_TLS_MODE", "maybe")]), &[]).unwrap_err();
        assert!(err.to_string().contains("HEARTH_TLS_MODE"), "{err}");
    }

    #[test]
    fn tls_is_on_unless_turned_off() {
        let loaded = load_from(None, Path::new(NO_SYSTEM), &[], &[]).unwrap();
        assert_eq!(loaded.settings.tls.mode, TlsMode::Local);
        assert!(loaded.settings.http_listen_addr().is_some());
        let e = env(&[("HEARTH_LISTEN", "127.0.0.1:9000"), ("HEARTH_HTTP_LISTEN", "127.0.0.1:9000")]);
        let err = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap_err();
        assert!(err.to_string().contains("http_listen"), "{err}");
    }

    #[test]
    fn mqtt_from_the_environment() {
        let e = env(&[
            ("HEARTH_MQTT_ENABLED", "1"),
            ("HEARTH_MQTT_URL", "mqtts://broker.lan"),
            ("HEARTH_MQTT_USERNAME", "box"),
            ("HEARTH_MQTT_PASSWORD", "pw"),
            ("HEARTH_MQTT_INTERVAL_SECS", "5"),
            ("HEARTH_MQTT_BACKLOG", "7"),
            ("HEARTH_MQTT_COMMANDS", "announce, reload_config"),
        ]);
        let m = load_from(None, Path::new(NO_SYSTEM), &e, &[]).unwrap().settings.mqtt;
        assert!(m.enabled);
        assert_eq!(m.commands, ["announce", "reload_config"]);
        let wrong = env(&[("HEARTH_MQTT_COMMANDS", "announce,reboot")]);
        let err = load_from(None, Path::new(NO_SYSTEM), &wrong, &[]).unwrap_err();
        assert!(err.to_string().contains("mqtt.commands") && err.to_string().contains("reboot"), "{err}");
        assert_eq!(m.broker().unwrap(), Broker { host: "broker.lan".into(), port: 8883, tls: true });
        assert_eq!((m.interval_secs, m.backlog), (5, 7));
        assert_eq!(m.read_password().unwrap().as_deref(), Some("pw"));
        let err =
            load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_MQTT_ENABLED", "1")]), &[]).unwrap_err();
        assert!(err.to_string().contains("mqtt.url"), "{err}");
    }

    #[test]
    fn unknown_env_vars_are_reported_not_fatal() {
        let loaded = load_from(None, Path::new(NO_SYSTEM), &env(&[("HEARTH_THREAD", "2")]), &[]).unwrap();
        assert_eq!(loaded.unknown_env_vars, vec!["HEARTH_THREAD".to_string()]);
    }

    #[test]
    fn automatic_threads_start_with_every_core() {
        let settings = Settings::default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert_eq!(settings.inference_threads(), cores.clamp(1, crate::governor::MAX_AUTO_THREADS));
        assert!(settings.batch_threads() >= settings.inference_threads());
        let mut fixed = Settings::default();
        fixed.model.threads = 3;
        fixed.model.threads_batch = 1;
        assert_eq!((fixed.inference_threads(), fixed.batch_threads()), (3, 1));
    }

    #[test]
    fn shipped_default_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/hearth.toml");
        let loaded = load_from(Some(&path), Path::new(NO_SYSTEM), &[], &[]).unwrap();
        assert_eq!(loaded.settings.storage.data_dir, PathBuf::from("/var/lib/hearth"));
        assert_eq!(loaded.settings.tls.mode, TlsMode::Local, "packaged installs speak HTTPS");
        assert!(loaded.settings.model.auto_pull, "packaged installs fetch the default model at first start");
    }
}
