//! Voice: the speech engines and the protocols that connect them to clients:
//! speech to text on whisper.cpp ([`stt`]), text to speech with Piper voices ([`tts`]),
//! the streamed pipeline's pieces ([`pipeline`]), and the Wyoming protocol ([`wyoming`])
//! that Home Assistant's voice satellites speak, served by [`satellites`].

pub mod pipeline;
pub mod satellites;
mod service;
pub mod stt;
pub mod tts;
mod worker;
pub mod wyoming;

pub use service::Voice;
