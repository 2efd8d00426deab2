//! The voice hears the right language out of the box: with whisper-base (the default
//! install's multilingual model) and no `voice.language`, a clear English sentence spoken
//! by Hearth's own voice is transcribed as English by the first request after a start,
//! and again later. (The first request after a start used to come back as Cantonese or
//! Maori: whisper.cpp detected the language with the warm-up's short audio window.)
//! `tests/voice_language.sh` runs the same check over 50 commands and 50 fresh starts.

use crate::common::{model_in_cache, small_model, Server, ServerOptions, BIN};
use crate::voice_http::transcribe as post;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Speaks `text` with the default Piper voice into a WAV file.
fn speak(text: &str, out: &Path) {
    let status = Command::new(BIN)
        .args(["speak", text, "--output"])
        .arg(out)
        .env("HEARTH_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(status.status.success(), "hearth speak: {}", String::from_utf8_lossy(&status.stderr));
}

fn transcribe(server: &Server, token: &str, wav: &[u8], fields: &[(&str, &str)]) -> Value {
    let (status, json) = post(server, token, wav, fields);
    assert_eq!(status, 200, "{json}");
    json
}

fn base_server() -> Server {
    // The default install: whisper-base, no language configured.
    let whisper = model_in_cache("ggml-base.bin", "HEARTH_TEST_WHISPER_BASE");
    let server =
        Server::start(ServerOptions::new(small_model()).env("HEARTH_STT_MODEL", whisper.to_str().unwrap()));
    server.wait_voice();
    server
}

/// Short commands people give an assistant at home.
const COMMANDS: [&str; 50] = [
    "The red kettle is on the kitchen table.",
    "Turn off the lights in the living room.",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
    "Play some quiet music.",
    "Remind me to call my mother at six.",
    "How many grams are in a pound?",
    "Add milk to the shopping list.",
    "What time is it in Tokyo?",
    "Open the garage door.",
    "Tell me a short joke.",
    "Turn the heating up by two degrees.",
    "Is it going to rain this afternoon?",
    "Read me the news headlines.",
    "Lock the front door.",
    "Wake me up at seven tomorrow.",
    "How long should I boil an egg?",
    "Dim the bedroom lights to half.",
    "What is on my calendar today?",
    "Stop the music.",
    "Convert twenty dollars to euros.",
    "Close the blinds in the study.",
    "How far away is the moon?",
    "Start the robot vacuum.",
    "What should I cook for dinner tonight?",
    "Switch on the coffee machine.",
    "Spell the word necessary.",
    "Turn the volume down a little.",
    "When does the bakery open?",
    "Water the plants in the garden.",
    "Translate thank you into French.",
    "How many days until Christmas?",
    "Turn on the porch light at sunset.",
    "What is the capital of Australia?",
    "Pause the movie for a moment.",
    "Find my phone please.",
    "Set the thermostat to twenty one degrees.",
    "Who wrote the book about the white whale?",
    "Add eggs and bread to my list.",
    "Cancel my alarm for tomorrow.",
    "How do I get a stain out of a shirt?",
    "Turn off all the lights downstairs.",
    "What is twelve times fourteen?",
    "Is the back door locked?",
    "Play the radio in the kitchen.",
    "How cold will it be tonight?",
    "Start a five minute timer for the pasta.",
    "Turn on the fan in the bedroom.",
    "What day of the week is it?",
    "Goodnight, turn everything off.",
];

/// Each command, spoken by Hearth's default voice, goes as the first request to a freshly
/// started default install, then again: every answer says English. The suite samples
/// `HEARTH_TEST_LANGUAGE_STARTS` commands (default 2; `tests/voice_language.sh` runs all 50).
#[test]
fn the_first_transcription_after_a_start_hears_english() {
    let starts: usize =
        std::env::var("HEARTH_TEST_LANGUAGE_STARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let starts = starts.clamp(1, COMMANDS.len());
    let picked: Vec<&str> = (0..starts).map(|i| COMMANDS[i * COMMANDS.len() / starts]).collect();
    // Spoken once, by a server of its own: the fresh ones below get nothing before.
    let voice = base_server();
    let token = voice.user("alice");
    let clips: Vec<Vec<u8>> = picked
        .iter()
        .map(|text| {
            let response = voice
                .agent()
                .post(&format!("{}/v1/audio/speech", voice.url))
                .set("Authorization", &format!("Bearer {token}"))
                .send_json(serde_json::json!({"input": text, "response_format": "wav"}))
                .unwrap();
            let mut wav = Vec::new();
            std::io::Read::read_to_end(&mut response.into_reader(), &mut wav).unwrap();
            wav
        })
        .collect();
    drop(voice);
    let mut wrong = Vec::new();
    for (text, wav) in picked.iter().zip(&clips) {
        let server = base_server();
        let token = server.user("alice");
        for attempt in ["first", "second"] {
            let t = transcribe(&server, &token, wav, &[("response_format", "verbose_json")]);
            if t["language"] != "en" {
                wrong.push(format!("{attempt} request for {text:?}: {} ({})", t["language"], t["text"]));
            }
        }
    }
    eprintln!(
        "voice language: {} of {} commands, each on a fresh start: {} answers not English",
        picked.len(),
        COMMANDS.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn detection_keeps_to_the_configured_languages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wav");
    speak("Please set a timer for ten minutes.", &path);
    let wav = std::fs::read(path).unwrap();
    let server = base_server();
    let token = server.user("alice");
    // Among German and French only, English speech must come back as one of them.
    let t = transcribe(&server, &token, &wav, &[("language", "de,fr"), ("response_format", "verbose_json")]);
    assert!(["de", "fr"].contains(&t["language"].as_str().unwrap()), "{t}");
    let t = transcribe(&server, &token, &wav, &[("language", "en,de"), ("response_format", "verbose_json")]);
    assert_eq!(t["language"], "en", "{t}");
    let (status, body) = post(&server, &token, &wav, &[("language", "en,xx")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("unknown language 'xx'"), "{body}");
}

#[test]
fn the_language_chosen_at_setup_is_used_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wav");
    speak("What is the weather like tomorrow?", &path);
    let wav = std::fs::read(path).unwrap();
    let data = tempfile::tempdir().unwrap();
    let whisper = model_in_cache("ggml-base.bin", "HEARTH_TEST_WHISPER_BASE");
    let options = ServerOptions::new(small_model()).env("HEARTH_STT_MODEL", whisper.to_str().unwrap());
    let server = Server::start_in(data.path(), options.clone());
    server.wait_voice();

    // The question comes with the box's locale as the default answer.
    let (_, status) = server.call("GET", "/api/onboard", None, None);
    assert_eq!(status["language"]["default"].as_str().map(str::len), Some(2), "{status}");
    let setup = server.setup_code();
    let setup = setup.as_str();
    let onboard = |language: &str| {
        let body = serde_json::json!({"code": setup, "name": "root", "password": "correct horse battery", "language": language});
        let result = server
            .agent()
            .post(&format!("{}/api/onboard", server.url))
            .set("X-Hearth-CSRF", "1")
            .send_json(body);
        match result {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(onboard("klingon"), 400);
    // French: English speech is then written down as French would be heard, and reported so.
    assert_eq!(onboard("fr"), 200);
    let token = server.user("alice");
    let t = transcribe(&server, &token, &wav, &[("response_format", "verbose_json")]);
    assert_eq!(t["language"], "fr", "{t}");
    // A request that names its language still wins.
    let t = transcribe(&server, &token, &wav, &[("language", "en"), ("response_format", "verbose_json")]);
    assert_eq!(t["language"], "en", "{t}");

    // Kept across a restart; and a config file that sets the language wins over it.
    drop(server);
    let server = Server::start_in(data.path(), options.clone());
    server.wait_voice();
    let t = transcribe(&server, &token, &wav, &[("response_format", "verbose_json")]);
    assert_eq!(t["language"], "fr", "after a restart: {t}");
    drop(server);
    let server = Server::start_in(data.path(), options.env("HEARTH_VOICE_LANGUAGE", "en"));
    server.wait_voice();
    let t = transcribe(&server, &token, &wav, &[("response_format", "verbose_json")]);
    assert_eq!(t["language"], "en", "the config file wins: {t}");
    let (_, status) = server.call("GET", "/api/onboard", None, None);
    assert_eq!(status["language"]["configured"], "en", "{status}");
}
