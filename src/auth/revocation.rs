//! Connections that outlive the request that authenticated them (the voice WebSocket)
//! must end when their credential does. Every revocation is broadcast here; each live
//! connection listens and hangs up when its own token or session goes.

use tokio::sync::broadcast;

/// A credential that stopped being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// One API token, by id.
    Token(i64),
    /// One web session, by id (logout).
    Session(i64),
    /// Every web session of a user, by user id (a password changed or reset).
    SessionsOf(i64),
    /// Every credential of a user, by user id (the account disabled or deleted).
    User(i64),
}

impl Revoked {
    /// Whether this ends a connection authenticated by `token` or `session` as `user`.
    pub fn ends(self, token: Option<i64>, session: Option<i64>, user: i64) -> bool {
        match self {
            Revoked::Token(id) => token == Some(id),
            Revoked::Session(id) => session == Some(id),
            Revoked::SessionsOf(id) => session.is_some() && user == id,
            Revoked::User(id) => user == id,
        }
    }
}

/// The broadcast of revocations; clone freely.
#[derive(Debug, Clone)]
pub struct Revocations(broadcast::Sender<Revoked>);

impl Default for Revocations {
    fn default() -> Self {
        // A listener that falls this far behind cannot tell whether it was named, and
        // hangs up (see `voice_ws`): revocations are rare, so this never happens in use.
        Self(broadcast::channel(256).0)
    }
}

impl Revocations {
    pub fn revoke(&self, revoked: Revoked) {
        // No live connection listening is fine.
        let _ = self.0.send(revoked);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_ends_only_the_connections_it_names() {
        let (token, session) = (Some(7), None);
        assert!(Revoked::Token(7).ends(token, session, 1));
        assert!(!Revoked::Token(8).ends(token, session, 1));
        assert!(!Revoked::SessionsOf(1).ends(token, session, 1), "a password change leaves tokens alone");
        assert!(Revoked::SessionsOf(1).ends(None, Some(3), 1));
        assert!(!Revoked::SessionsOf(2).ends(None, Some(3), 1));
        assert!(Revoked::Session(3).ends(None, Some(3), 1));
        assert!(Revoked::User(1).ends(token, None, 1) && Revoked::User(1).ends(None, Some(3), 1));
        assert!(!Revoked::User(2).ends(token, None, 1));
    }
}
