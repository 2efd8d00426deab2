//! Hearth: an offline AI assistant appliance.
//!
//! One process runs a local GGUF language model, keeps chat history in SQLite and
//! serves an authenticated HTTP API (native `/api/...` and OpenAI-compatible `/v1/...`).
//! Each module is shaped like a crate of its own: it owns its types and errors, which map
//! into the one table in [`error`]; only the HTTP layer turns that table into responses.
//! A turn of conversation, whatever the channel, runs through [`assistant`].

pub mod assistant;
pub mod audio;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod channels;
pub mod cli;
pub mod config;
pub mod control;
pub mod crypt;
pub mod engine;
pub mod error;
pub mod governor;
pub mod http;
pub mod import;
pub mod jobs;
pub mod knowledge;
pub mod models;
pub mod mqtt;
pub mod notes;
pub mod notices;
pub mod outbound;
pub mod private_files;
pub mod rate;
pub mod reminders;
pub mod search;
pub mod skills;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod voice;
pub mod web;
pub mod workflows;
