//! The validated settings and their built-in defaults.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use super::backup::{BackupSettings, RetentionSettings};
pub use super::governor::GovernorSettings;
pub use super::limits::LimitSettings;
pub use super::mqtt::{Broker, MqttSettings};
pub use super::outbound::{HomeAssistantSettings, OutboundSettings, WebhookSettings};
pub use super::telegram::TelegramSettings;
pub use super::tls::{AcmeChallenge, TlsMode, TlsSettings};
pub use super::voice::VoiceSettings;
pub use super::workflows::{HookSettings, WorkflowSettings};

/// All of Hearth's settings. Every field has a default; files, environment variables
/// and flags override them in that order (see [`super::load`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub model: ModelSettings,
    pub storage: StorageSettings,
    pub knowledge: KnowledgeSettings,
    pub skills: SkillSettings,
    pub outbound: OutboundSettings,
    pub home_assistant: HomeAssistantSettings,
    pub voice: VoiceSettings,
    pub tls: TlsSettings,
    pub telegram: TelegramSettings,
    pub mqtt: MqttSettings,
    pub workflows: WorkflowSettings,
    pub limits: LimitSettings,
    pub governor: GovernorSettings,
    pub backup: BackupSettings,
    pub retention: RetentionSettings,
    /// Inbound webhooks (`[[hooks]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSettings>,
    pub log: LogSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port the server listens on: HTTPS, or plain HTTP when `tls.mode` is
    /// `off`.
    pub listen: String,
    /// With TLS on, a plain-HTTP address and port that only redirects to HTTPS (and
    /// serves `/ca.crt` and ACME HTTP-01 challenges). Empty: none.
    pub http_listen: String,
    /// The box's name on the LAN: advertised by mDNS as `<name>.local` and put in the
    /// local CA's certificate.
    pub name: String,
    /// Advertise the box on the LAN by mDNS/DNS-SD (`<name>.local`, `_https._tcp`).
    pub mdns: bool,
    /// Other names and addresses clients may reach the box by (a DNS name, a reverse
    /// proxy's). Requests whose `Host` is none of the box's own names and addresses
    /// nor these are refused, which stops DNS rebinding. They also go in the local CA's
    /// certificate.
    pub allowed_hosts: Vec<String>,
    /// Addresses administrators may use the admin routes from (users, tokens of others,
    /// the audit log, system figures, models, skills per user): CIDR blocks such as
    /// `10.0.0.0/8` or `::1/128`, or single addresses. Empty: any address. Judged on the
    /// TCP peer's address; `X-Forwarded-For` is never trusted (behind a reverse proxy
    /// every request comes from the proxy). Others get 403 `admin_address_refused`,
    /// recorded in the audit log.
    pub admin_allow: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads (0: one per core, at most 4). Inference has its own thread.
    pub workers: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            http_listen: "127.0.0.1:8080".into(),
            name: "hearth".into(),
            mdns: true,
            allowed_hosts: Vec::new(),
            admin_allow: Vec::new(),
            max_body_bytes: 1024 * 1024,
            workers: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// GGUF model file. Empty: the manifest's default model, looked up in
    /// `<data_dir>/models/` and then the model cache (`~/.cache/hearth/models`).
    pub path: String,
    /// Threads for generating tokens (0: automatic, following the load: every core while
    /// nothing else is busy, one less while speech, ingest or another process is; see
    /// `governor/threads.rs`). ggml's threads wait for each other at every layer: when
    /// another busy process takes a core they all stall, hence the core given up.
    /// (Making waiting threads sleep instead, OMP_WAIT_POLICY=passive, cost 7-18% of quiet
    /// speed on 2 cores in benches/run.sh; it remains the operator's choice.)
    pub threads: u32,
    /// Threads for reading prompts, which is compute-bound and brief (0: one per core).
    pub threads_batch: u32,
    /// Context window in tokens (clamped to what the model was trained for).
    pub context_size: u32,
    /// Upper bound on tokens generated per reply; requests may ask for fewer.
    pub max_tokens: u32,
    /// Default sampling temperature (0 = greedy). Answers from documents use at most
    /// `assistant::sampling::DOCUMENT_TEMPERATURE` unless the request gives one.
    pub temperature: f32,
    /// Default nucleus sampling threshold.
    pub top_p: f32,
    /// Default top-k cut-off (0 disables it).
    pub top_k: u32,
    /// System prompt placed first in every conversation.
    pub system_prompt: String,
    /// Requests waiting for the engine before new ones get 429.
    pub queue_size: usize,
    /// Requests generating at once; they share each decoding step (continuous batching).
    pub parallel: u32,
    /// Token cells in the KV cache (0: context_size x parallel). When every request that
    /// may run at once can have a whole window, each has cells of its own; fewer cells are
    /// shared by all (one unified cache, slower with several requests at once).
    /// Conversations keep their cache between turns until it is needed for others.
    pub kv_cache_tokens: u32,
    /// Tokens of idle conversations kept in RAM outside the KV cache once their cells are
    /// needed (in a shared cache: as soon as another request runs), so that their next turn
    /// does not read the history again (0: as many as the KV cache holds). When it is full
    /// the least recently used one goes to the disk cache, or is forgotten.
    pub idle_cache_tokens: u32,
    /// MiB of disk for conversations that leave RAM (over `idle_cache_tokens`), in
    /// `<data_dir>/kv-cache/`: their next turn, even after a restart, reads a file instead
    /// of the whole history (0: off).
    pub disk_cache_mb: u64,
    /// A request still unfinished after this many seconds (queueing included) is stopped.
    pub request_timeout_secs: u64,
    /// Models other than the configured one are unloaded after this long unused.
    pub idle_unload_secs: u64,
    /// The model `/v1/embeddings` uses when a request names none (empty: none).
    pub embedding_model: String,
    /// Check the file's sha256 against the manifest when the file is listed there.
    pub verify_sha256: bool,
    /// When `path` is empty and the default model is not installed, `hearth serve` starts
    /// anyway and downloads it in the background (progress on `/api/health`), retrying
    /// while it fails; the model loads once it is verified. Off: it waits for
    /// `hearth models pull` / `hearth models add` and a restart.
    pub auto_pull: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            path: String::new(),
            threads: 0,
            threads_batch: 0,
            context_size: 4096,
            max_tokens: 2048,
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            system_prompt: "You are Hearth, a helpful assistant running privately on this device. \
                            Answer clearly and concisely."
                .into(),
            queue_size: 16,
            parallel: 4,
            kv_cache_tokens: 0,
            idle_cache_tokens: 0,
            disk_cache_mb: 1024,
            request_timeout_secs: 600,
            idle_unload_secs: 900,
            embedding_model: String::new(),
            verify_sha256: true,
            auto_pull: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Where the database, indexes and models live.
    pub data_dir: PathBuf,
    /// With encryption at rest on (`hearth encryption enable`): a file holding the secret
    /// (0600, owned by the service's user). Empty: the systemd credential `hearth-key`,
    /// else a passphrase typed at unlock.
    pub key_file: PathBuf,
    /// The unlocked box's keys, set at start; never read from a file or printed.
    #[serde(skip)]
    pub unlocked: crate::crypt::Unlocked,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("./data"), key_file: PathBuf::new(), unlocked: Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeSettings {
    /// Largest document accepted by `POST /api/documents` and `hearth ingest`, in bytes.
    pub max_upload_bytes: usize,
    /// Target size of a document chunk in characters; chunks follow paragraphs.
    pub chunk_chars: usize,
    /// Budget for retrieved text in a chat prompt, in tokens (estimated at 4 characters
    /// per token). Small keeps prompts fast on slow boxes.
    pub context_tokens: usize,
    /// Most chunks retrieved for one chat turn.
    pub top_k: usize,
    /// Whether chats use the user's documents when neither the request nor the
    /// conversation says.
    pub chat_default: bool,
    /// Longest a document's text extraction may run, in seconds; longer fails that
    /// document (a hostile file must not hold the job thread).
    pub extract_timeout_secs: u64,
    /// Memory a document's text extraction may use, in bytes; more fails that document.
    pub extract_memory_bytes: u64,
    /// Bytes of documents each user may keep (0: no limit); uploads past it are refused.
    pub user_quota_bytes: u64,
}

impl Default for KnowledgeSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            chunk_chars: 1200,
            context_tokens: 600,
            top_k: 4,
            chat_default: false,
            extract_timeout_secs: 120,
            extract_memory_bytes: 1 << 30,
            user_quota_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What the assistant may do besides talking, in Hearth's own channels (the web UI's chat,
/// the voice WebSocket, Wyoming satellites). OpenAI and Ollama clients bring their own tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkillSettings {
    /// Skills offered to the model as tools: `clock`, `search_documents`, `set_timer`,
    /// `set_reminder`, `list_reminders`, `cancel_reminder`, `calculate`, `create_note`,
    /// `list_notes`, `search_notes`. Empty: none, and chats are plain. Only models whose chat template speaks tools are offered any.
    /// These are the defaults: the owner may turn any skill on or off for one user
    /// (`hearth users skills`, `PUT /api/admin/users/{id}/skills`).
    pub enabled: Vec<String>,
    /// Configured skills (webhooks, Home Assistant's) that are on only for the users the
    /// owner turns them on for; the others are on for everyone once defined.
    pub off_by_default: Vec<String>,
    /// Rounds of tool calls one turn may make before it must answer in words (a round may
    /// hold several calls).
    pub max_rounds: u32,
    /// Longest a skill may run, in seconds; then it is stopped and the model told so.
    pub timeout_secs: u64,
    /// Webhook skills (`[[skills.webhooks]]`): on once defined, under their own names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookSettings>,
}

impl Default for SkillSettings {
    fn default() -> Self {
        // list_reminders and cancel_reminder are opt-in: every tool shown costs the small
        // default model prompt tokens and right choices (benches/RESULTS.md, "Skills").
        let enabled = ["clock", "search_documents", "set_timer", "set_reminder"];
        Self {
            enabled: enabled.map(String::from).to_vec(),
            off_by_default: Vec::new(),
            max_rounds: 1,
            timeout_secs: 10,
            webhooks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `hearth=debug,actix_web=info`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info,llama-cpp-2=warn".into() }
    }
}

impl Settings {
    /// Checks ranges that types alone cannot express. Errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for {key}: {why}"));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "server.listen",
                &format!("'{}' is not ADDRESS:PORT (e.g. 0.0.0.0:8080)", self.server.listen),
            );
        }
        if !self.server.http_listen.is_empty() && self.server.http_listen.parse::<SocketAddr>().is_err() {
            return bad(
                "server.http_listen",
                &format!("'{}' is not ADDRESS:PORT (e.g. 0.0.0.0:8080) or empty", self.server.http_listen),
            );
        }
        if self.tls.enabled() && self.http_listen_addr() == Some(self.listen_addr()) {
            return bad("server.http_listen", "must differ from server.listen");
        }
        let name = &self.server.name;
        if name.is_empty()
            || name.len() > 63
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || name.starts_with('-')
        {
            return bad("server.name", "must be a DNS label: letters, digits and '-', at most 63");
        }
        if let Some(host) = self.server.allowed_hosts.iter().find(|h| h.is_empty() || h.contains(['/', ' ']))
        {
            return bad("server.allowed_hosts", &format!("'{host}' is not a host name or address"));
        }
        if let Err(why) = crate::auth::allowlist::parse_all(&self.server.admin_allow) {
            return bad("server.admin_allow", &why);
        }
        self.tls.validate()?;
        if !(1024..=512 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return bad("server.max_body_bytes", "must be between 1024 and 536870912");
        }
        let m = &self.model;
        if m.threads > 256 {
            return bad("model.threads", "must be at most 256 (0 = automatic)");
        }
        if m.threads_batch > 256 {
            return bad("model.threads_batch", "must be at most 256 (0 = automatic)");
        }
        if !(128..=1 << 20).contains(&m.context_size) {
            return bad("model.context_size", "must be between 128 and 1048576");
        }
        if m.max_tokens == 0 {
            return bad("model.max_tokens", "must be at least 1");
        }
        if !(0.0..=2.0).contains(&m.temperature) {
            return bad("model.temperature", "must be between 0 and 2");
        }
        if !(m.top_p > 0.0 && m.top_p <= 1.0) {
            return bad("model.top_p", "must be in (0, 1]");
        }
        if !(1..=4096).contains(&m.queue_size) {
            return bad("model.queue_size", "must be between 1 and 4096");
        }
        if !(1..=64).contains(&m.parallel) {
            return bad("model.parallel", "must be between 1 and 64");
        }
        if m.kv_cache_tokens != 0 && m.kv_cache_tokens < m.context_size {
            return bad("model.kv_cache_tokens", "must be 0 (automatic) or at least model.context_size");
        }
        if m.idle_unload_secs == 0 {
            return bad("model.idle_unload_secs", "must be at least 1");
        }
        if m.request_timeout_secs == 0 {
            return bad("model.request_timeout_secs", "must be at least 1");
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return bad("storage.data_dir", "must not be empty");
        }
        let k = &self.knowledge;
        if !(1024..=1 << 30).contains(&k.max_upload_bytes) {
            return bad("knowledge.max_upload_bytes", "must be between 1024 and 1073741824");
        }
        if !(200..=20_000).contains(&k.chunk_chars) {
            return bad("knowledge.chunk_chars", "must be between 200 and 20000");
        }
        if !(1..=64).contains(&k.top_k) {
            return bad("knowledge.top_k", "must be between 1 and 64");
        }
        if k.context_tokens < 50 {
            return bad("knowledge.context_tokens", "must be at least 50");
        }
        if !(1..=3600).contains(&k.extract_timeout_secs) {
            return bad("knowledge.extract_timeout_secs", "must be between 1 and 3600");
        }
        if !((16 << 20)..=(1 << 40)).contains(&k.extract_memory_bytes) {
            return bad(
                "knowledge.extract_memory_bytes",
                "must be between 16777216 (16 MiB) and 1099511627776",
            );
        }
        let s = &self.skills;
        if let Some(unknown) = s.enabled.iter().find(|n| !crate::skills::BUILT_IN.contains(&n.as_str())) {
            return bad(
                "skills.enabled",
                &format!("no skill is named '{unknown}' (there are: {})", crate::skills::BUILT_IN.join(", ")),
            );
        }
        if !(1..=8).contains(&s.max_rounds) {
            return bad("skills.max_rounds", "must be between 1 and 8");
        }
        if !(1..=600).contains(&s.timeout_secs) {
            return bad("skills.timeout_secs", "must be between 1 and 600");
        }
        self.outbound.validate()?;
        self.home_assistant.validate()?;
        crate::skills::check_webhooks(self)?;
        self.voice.validate()?;
        self.workflows.validate()?;
        self.backup.validate()?;
        super::workflows::validate_hooks(&self.hooks, &self.outbound)?;
        self.telegram.validate()?;
        self.mqtt.validate()?;
        self.governor.validate()
    }

    /// The socket address to bind (validated by [`Settings::validate`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated listen address")
    }

    /// The plain-HTTP redirect listener's address, when TLS is on and one is configured.
    pub fn http_listen_addr(&self) -> Option<SocketAddr> {
        if !self.tls.enabled() || self.server.http_listen.is_empty() {
            return None;
        }
        self.server.http_listen.parse().ok()
    }

    /// The TLS files (local CA, server certificate, ACME account and certificates).
    pub fn tls_dir(&self) -> PathBuf {
        self.storage.data_dir.join("tls")
    }

    /// Threads for generation at start: the configured number, else every core (at most
    /// `governor::MAX_AUTO_THREADS`); automatic threads then follow the load (`governor/`).
    pub fn inference_threads(&self) -> u32 {
        match self.model.threads {
            0 => cores().clamp(1, crate::governor::MAX_AUTO_THREADS),
            n => n,
        }
    }

    /// Threads for prompt reading: the configured number, else one per core (at most 8),
    /// and never fewer than the generation threads.
    pub fn batch_threads(&self) -> u32 {
        match self.model.threads_batch {
            0 => cores().clamp(1, 8).max(self.inference_threads()),
            n => n,
        }
    }

    /// Where the current first-run setup code is kept (mode 0600) until onboarding is
    /// done: the log says where to look instead of carrying the code itself.
    pub fn setup_code_path(&self) -> PathBuf {
        self.storage.data_dir.join("setup-code")
    }

    /// Where uploads are written while they arrive, before they go into the database.
    pub fn uploads_dir(&self) -> PathBuf {
        self.storage.data_dir.join("uploads")
    }

    /// Where backups go: `backup.dir`, else `<data_dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        match self.backup.dir.as_os_str().is_empty() {
            true => self.storage.data_dir.join("backups"),
            false => self.backup.dir.clone(),
        }
    }

    /// The folder of workflow files: `workflows.dir`, else `<data_dir>/workflows`.
    pub fn workflows_dir(&self) -> PathBuf {
        match self.workflows.dir.as_os_str().is_empty() {
            true => self.storage.data_dir.join("workflows"),
            false => self.workflows.dir.clone(),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("hearth.db")
    }

    /// The search index directory (derived from the database; safe to delete).
    pub fn index_dir(&self) -> PathBuf {
        self.storage.data_dir.join("index")
    }
}

/// The cores this process may run on.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}
