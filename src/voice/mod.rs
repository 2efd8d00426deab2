//! Voice: the speech engines and the protocols that connect them to clients:
//! speech to text on whisper.cpp ([`stt`]) and the Wyoming protocol ([`wyoming`])
//! that Home Assistant's voice satellites speak.

pub mod pipeline;
mod service;
pub mod stt;
pub mod wyoming;

pub use service::Voice;
