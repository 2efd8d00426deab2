//! Integration tests: one test binary, each test against a real `hearth serve` process
//! on a real model. Models come from `python3 models/fetch.py test default`.

#[path = "../common/mod.rs"]
mod common;

// The modules below live beside this file in tests/integration/.
mod acme;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod bad_models;
mod chat;
mod cli;
mod docqa;
mod encryption;
mod engine;
mod fleet;
mod governor;
mod import;
mod knowledge;
mod knowledge_limits;
mod limits;
mod models;
mod models_add;
mod models_pull;
mod mqtt;
mod mqtt_commands;
mod notes;
mod ollama;
mod openai;
mod openapi;
mod outbound;
mod persistence;
mod reminders;
mod satellite;
mod skills;
mod skills_per_user;
mod telegram;
mod tls;
mod tools;
mod turns;
mod voice_http;
mod voice_import;
mod voice_language;
mod voice_pipeline;
mod voice_wyoming;
mod web;
mod workflows;
