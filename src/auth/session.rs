//! Web sessions and first-run setup codes.
//!
//! A session is a random 256-bit secret held in an HttpOnly cookie; the database keeps
//! only its sha256, like API tokens. A setup code is a short one-time code (60 random
//! bits, typed by a person) that lets the first administrator onboard; it is shown only
//! in a private file in the data dir or by `hearth onboard`, stored hashed and expires,
//! and only the newest one is valid.

use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hearth_session";
/// How long a session lasts after login.
pub const SESSION_SECS: i64 = 30 * 24 * 3600;
/// How long a setup code stays valid.
pub const SETUP_CODE_SECS: i64 = 24 * 3600;
/// The header a browser must send with every state-changing request authenticated by
/// the session cookie (and with login/onboarding). Cross-site pages cannot set custom
/// headers without a CORS preflight, which Hearth never approves.
pub const CSRF_HEADER: &str = "x-hearth-csrf";

/// Letters and digits without look-alikes (no 0/O, 1/I/L, U).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";
const CODE_GROUPS: usize = 3;
const CODE_GROUP_LEN: usize = 4;

/// A new session secret (64 hex characters) and its hash.
pub fn new_session() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let hash = sha256(&secret);
    (secret, hash)
}

pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A new setup code like `K7QW-M3XP-9RTA`.
pub fn new_setup_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let groups: Vec<String> = (0..CODE_GROUPS)
        .map(|_| {
            (0..CODE_GROUP_LEN)
                .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
                .collect()
        })
        .collect();
    groups.join("-")
}

/// The hash a setup code is stored and looked up by. Case, spaces and dashes do not
/// matter, so a code read aloud or retyped still works.
pub fn setup_code_hash(code: &str) -> [u8; 32] {
    let normal: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    sha256(&normal)
}

/// Removes the setup-code file once onboarding is done (the code no longer opens
/// anything, but nothing should look like a secret that is not one). Best effort: a
/// failure is logged, since the account already exists.
pub fn remove_setup_code_file(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the used setup code file")
        }
    }
}

/// The value of cookie `name` in a `Cookie` request header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The `Set-Cookie` value that stores a session (or, with `None`, removes it).
pub fn session_cookie(secret: Option<&str>, secure: bool) -> String {
    let (value, max_age) = match secret {
        Some(s) => (s, SESSION_SECS),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_codes_are_readable_and_forgiving() {
        let code = new_setup_code();
        assert_eq!(code.len(), 14, "{code}");
        assert!(code.chars().all(|c| c == '-' || CODE_ALPHABET.contains(&(c as u8))), "{code}");
        let sloppy = code.to_lowercase().replace('-', " ");
        assert_eq!(setup_code_hash(&sloppy), setup_code_hash(&code));
        assert_ne!(setup_code_hash(&new_setup_code()), setup_code_hash(&code));
    }

    #[test]
    fn cookies_parse_and_carry_the_flags() {
        assert_eq!(cookie_value("a=1; hearth_session=abc; b=2", SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value("hearth_sessionx=abc", SESSION_COOKIE), None);
        let set = session_cookie(Some("s3cret"), true);
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure", "hearth_session=s3cret"] {
            assert!(set.contains(flag), "{set}");
        }
        assert!(!session_cookie(None, false).contains("Secure"));
        assert!(session_cookie(None, false).contains("Max-Age=0"));
    }

    #[test]
    fn sessions_are_random() {
        let (a, ha) = new_session();
        let (b, _) = new_session();
        assert_ne!(a, b);
        assert_eq!(ha, sha256(&a));
    }
}
