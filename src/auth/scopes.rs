//! What an API token may be used for. A token made for a voice satellite should not read
//! documents, nor one made for a chat client manage accounts. Sessions (the web UI) and
//! tokens made without scopes may do everything their user's role allows.

use std::fmt;

/// One area of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Chats, conversations, history search, reminders, notes, the OpenAI text endpoints.
    Chat,
    /// Documents and their ingest jobs.
    Documents,
    /// Speech: the voice WebSocket, the OpenAI audio endpoints, Wyoming.
    Voice,
    /// Accounts: users, tokens, passwords, system figures, models, metrics.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Chat, Scope::Documents, Scope::Voice, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::Documents => "documents",
            Scope::Voice => "voice",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The scope a request path needs; `None`: any authenticated caller (`/api/me`,
    /// `/api/logout`), and `/api/hooks/...`, which takes no token at all (signed instead).
    pub fn required_for(path: &str) -> Option<Scope> {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        if [
            "/api/chat",
            "/api/conversations",
            "/api/search",
            "/api/reminders",
            "/api/notes",
            "/api/skills",
            "/api/events",
            "/api/workflows",
            "/api/workflow-runs",
            "/v1/chat",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/models",
            // The Ollama API (`http/ollama/`); its `/api/chat` is the one above.
            "/api/generate",
            "/api/embed",
            "/api/embeddings",
            "/api/tags",
            "/api/show",
            "/api/ps",
            "/api/version",
            "/api/pull",
        ]
        .iter()
        .any(|p| under(p))
        {
            Some(Scope::Chat)
        } else if under("/api/documents") || under("/api/jobs") {
            Some(Scope::Documents)
        } else if under("/api/ws") || under("/v1/audio") {
            Some(Scope::Voice)
        } else if [
            "/api/users",
            "/api/tokens",
            "/api/system",
            "/api/admin",
            "/api/audit",
            "/metrics",
            "/api/me/password",
        ]
        .iter()
        .any(|p| under(p))
        {
            Some(Scope::Admin)
        } else {
            None
        }
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(0b1111);

    pub fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_all(self) -> bool {
        self == Scopes::ALL
    }

    /// Parses `chat,voice`; an unknown name is an error that lists the known ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut bits = 0;
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| format!("unknown scope '{name}': use chat, documents, voice or admin"))?;
            bits |= scope.bit();
        }
        match bits {
            0 => Err("name at least one scope: chat, documents, voice or admin".into()),
            bits => Ok(Scopes(bits)),
        }
    }

    /// As stored: `None` for all (tokens made before scopes existed have all).
    pub fn to_stored(self) -> Option<String> {
        (!self.is_all()).then(|| self.names().join(","))
    }

    pub fn from_stored(stored: Option<&str>) -> Scopes {
        stored.map_or(Scopes::ALL, |s| Scopes::parse(s.split(',')).unwrap_or(Scopes(0)))
    }

    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL.into_iter().filter(|s| self.has(*s)).map(Scope::as_str).collect()
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({})", self.names().join(","))
    }
}

/// What a new token may do, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct TokenGrant {
    pub scopes: Scopes,
    /// Unix seconds; `None`: until revoked.
    pub expires_at: Option<i64>,
    /// Requests per minute this token may make, whatever its user's limit leaves
    /// (`rate::Limiter::token_request`); `None`: only the user's limit.
    pub requests_per_minute: Option<u32>,
}

impl Default for TokenGrant {
    fn default() -> Self {
        TokenGrant { scopes: Scopes::ALL, expires_at: None, requests_per_minute: None }
    }
}

/// Most requests per minute a token's own limit may be set to.
pub const MAX_TOKEN_REQUESTS_PER_MINUTE: u32 = 100_000;

/// Longest lifetime a token may be given, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

impl TokenGrant {
    /// From what a person asked for: scope names (none: all) and a lifetime in days
    /// (none: until revoked). Errors say what is wrong.
    pub fn new(scopes: &[String], expires_in_days: Option<u32>) -> Result<TokenGrant, String> {
        let scopes = match scopes.is_empty() {
            true => Scopes::ALL,
            false => Scopes::parse(scopes.iter().flat_map(|s| s.split(',')))?,
        };
        let expires_at = match expires_in_days {
            None => None,
            Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
                Some(crate::store::now() + i64::from(days) * 86_400)
            }
            Some(_) => return Err(format!("expires_in_days must be between 1 and {MAX_TOKEN_DAYS}")),
        };
        Ok(TokenGrant { scopes, expires_at, requests_per_minute: None })
    }

    /// With a request limit of its own (`None`: only its user's).
    pub fn with_requests_per_minute(self, limit: Option<u32>) -> Result<TokenGrant, String> {
        if let Some(n) = limit.filter(|n| !(1..=MAX_TOKEN_REQUESTS_PER_MINUTE).contains(n)) {
            return Err(format!(
                "requests_per_minute must be between 1 and {MAX_TOKEN_REQUESTS_PER_MINUTE} (got {n})"
            ));
        }
        Ok(TokenGrant { requests_per_minute: limit, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_their_scope() {
        assert_eq!(Scope::required_for("/api/chat"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/v1/chat/completions"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/tags"), Some(Scope::Chat), "the Ollama API is chat");
        assert_eq!(Scope::required_for("/api/embed"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/conversations/abc"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/reminders/3"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/notes/3"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/skills"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/admin/users/3/skills"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/events"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/documents/7"), Some(Scope::Documents));
        assert_eq!(Scope::required_for("/v1/audio/transcriptions"), Some(Scope::Voice));
        assert_eq!(Scope::required_for("/api/ws"), Some(Scope::Voice));
        assert_eq!(Scope::required_for("/api/tokens/3"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/metrics"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/admin/models/pull"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/admin/backups"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/admin/retention"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/conversations/export"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/conversations/import"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/me/password"), Some(Scope::Admin));
        assert_eq!(Scope::required_for("/api/me"), None);
        assert_eq!(Scope::required_for("/api/chatty"), None, "a prefix match is by path segment");
        assert_eq!(Scope::required_for("/api/workflows/morning/run"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/workflow-runs/3"), Some(Scope::Chat));
        assert_eq!(Scope::required_for("/api/hooks/deploy"), None, "signed, not token-scoped");
    }

    #[test]
    fn scopes_parse_store_and_read_back() {
        let s = Scopes::parse(["voice", " chat"]).unwrap();
        assert!(s.has(Scope::Chat) && s.has(Scope::Voice) && !s.has(Scope::Admin));
        assert_eq!(s.to_stored().as_deref(), Some("chat,voice"));
        assert_eq!(Scopes::from_stored(Some("chat,voice")), s);
        assert_eq!(Scopes::from_stored(None), Scopes::ALL, "old tokens keep full access");
        assert_eq!(Scopes::parse(Scope::ALL.map(Scope::as_str)).unwrap().to_stored(), None);
        assert!(Scopes::parse(["root"]).unwrap_err().contains("unknown scope 'root'"));
        assert!(Scopes::parse([""]).is_err());
        assert!(!Scopes::from_stored(Some("garbage")).has(Scope::Chat), "unreadable grants nothing");
    }

    #[test]
    fn a_grant_is_checked() {
        let g = TokenGrant::new(&["chat,voice".into()], Some(30)).unwrap();
        assert!(g.scopes.has(Scope::Voice) && !g.scopes.has(Scope::Documents));
        assert!(g.expires_at.unwrap() > crate::store::now() + 29 * 86_400);
        assert!(TokenGrant::new(&[], None).unwrap().scopes.is_all());
        assert!(TokenGrant::new(&[], Some(0)).is_err());
        assert!(TokenGrant::new(&["everything".into()], None).is_err());
    }
}
