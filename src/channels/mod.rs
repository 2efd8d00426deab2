//! Channels that reach people outside Hearth's own API: each is transport around
//! [`crate::assistant`]'s turn (HTTP, the voice WebSocket and Wyoming live in their own
//! rooms: `http/`, `voice/`).

pub mod hooks;
pub mod satellite;
pub mod telegram;
