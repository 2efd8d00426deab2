//! API tokens: random secrets shown once, stored only as sha256 hashes.
//!
//! A token is `hth_` followed by 64 hex characters (256 random bits). Because tokens
//! carry that much entropy, a plain sha256 is the right hash (a slow password hash
//! would add nothing but latency to every request). The first 12 characters are kept
//! as a visible prefix so owners can tell tokens apart and revoke them.

pub mod allowlist;
pub mod password;
pub mod revocation;
pub mod scopes;
pub mod session;
pub mod throttle;

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "hth_";
const VISIBLE_CHARS: usize = 12;

/// A freshly generated token: the secret (shown once) and what gets stored.
pub struct NewToken {
    pub secret: String,
    pub prefix: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

pub fn generate_token() -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    NewToken { prefix: visible_prefix(&secret).to_string(), hash: hash_token(&secret), secret }
}

pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The part of a token that may be shown and logged.
pub fn visible_prefix(secret: &str) -> &str {
    let end = secret.char_indices().nth(VISIBLE_CHARS).map_or(secret.len(), |(i, _)| i);
    &secret[..end]
}

/// Extracts the token from an `Authorization: Bearer ...` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_consistently() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 4 + 64);
        assert_eq!(a.hash, hash_token(&a.secret));
        assert!(a.secret.starts_with(&a.prefix));
        assert!(!format!("{a:?}").contains(&a.secret[VISIBLE_CHARS..]), "Debug hides the secret");
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
