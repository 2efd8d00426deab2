//! The Wyoming protocol (Home Assistant / Rhasspy voice services): the wire
//! codec ([`codec`]), typed events ([`events`], [`info`]) and a TCP server over
//! a [`VoiceServices`] implementation ([`server`]).
//!
//! Spec: <https://github.com/OHF-Voice/wyoming>. Every event is a JSON header
//! line, optionally followed by more JSON data and a binary payload (PCM audio).

pub mod codec;
pub mod events;
pub mod info;
pub mod server;

pub use codec::{encode_event, read_event, write_event, Limits, RawEvent, WyomingError, PROTOCOL_VERSION};
pub use events::Event;
pub use info::Info;
pub use server::{
    handle_connection, serve, serve_connection, ServerOptions, ServiceError, Synthesized, VoiceServices,
};

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
