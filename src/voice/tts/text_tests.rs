//! Sentences, clauses and voice configs: no voice or runtime needed.

use super::text::{chunks, clauses, Clause, MAX_CHUNK_CHARS};
use super::voice::VoiceConfig;
use super::*;
use crate::error::ApiError;

#[test]
fn sentences_split_at_end_punctuation_and_line_breaks() {
    assert_eq!(
        split_sentences("Hello there. How are you? Great!\nNext line\n\n  last one  "),
        ["Hello there.", "How are you?", "Great!", "Next line", "last one"]
    );
    assert_eq!(
        split_sentences("Really?! Yes... \"Stop.\" he said."),
        ["Really?!", "Yes...", "\"Stop.\"", "he said."]
    );
    assert_eq!(split_sentences("No punctuation"), ["No punctuation"]);
    assert!(split_sentences(" \n . ").iter().all(|s| s == "."));
    assert!(split_sentences("   \n\n").is_empty());
}

#[test]
fn abbreviations_initials_and_numbers_do_not_split() {
    assert_eq!(
        split_sentences("Dr. Smith paid 3.5 dollars, e.g. for tea. Then Mr. J. Doe left."),
        ["Dr. Smith paid 3.5 dollars, e.g. for tea.", "Then Mr. J. Doe left."]
    );
    assert_eq!(split_sentences("It is 10.30 in the U.S. now. Ok."), ["It is 10.30 in the U.S. now.", "Ok."]);
    assert_eq!(split_sentences("Version 2.0.1 is out."), ["Version 2.0.1 is out."]);
}

#[test]
fn clauses_keep_the_punctuation_espeak_drops() {
    let c = |text: &str, t: Option<char>| Clause { text: text.into(), terminator: t };
    assert_eq!(
        clauses("Hello, world; it is 3,000 miles: far?!"),
        [
            c("Hello", Some(',')),
            c("world", Some(';')),
            c("it is 3,000 miles", Some(':')),
            c("far", Some('?'))
        ]
    );
    assert_eq!(clauses("Stop!"), [c("Stop", Some('!'))]);
    assert_eq!(clauses("Wait..."), [c("Wait", Some('.'))]);
    assert_eq!(clauses("\"Go home.\""), [c("\"Go home", Some('.'))]);
    assert_eq!(clauses("no end"), [c("no end", None)]);
    assert_eq!(clauses("first — then"), [c("first", Some(';')), c("then", None)]);
    assert_eq!(clauses("Wait, , !"), [c("Wait", Some('!'))]);
}

#[test]
fn long_sentences_are_cut_into_bounded_chunks() {
    let long = "word, ".repeat(200) + "end.";
    let pieces = chunks(&long);
    assert!(pieces.len() > 1, "{pieces:?}");
    assert!(pieces.iter().all(|p| p.chars().count() <= MAX_CHUNK_CHARS), "{pieces:?}");
    assert_eq!(pieces.join(" ").split_whitespace().count(), long.split_whitespace().count());
    let unbroken = "x".repeat(MAX_CHUNK_CHARS * 2 + 5);
    assert!(chunks(&unbroken).iter().all(|p| p.chars().count() <= MAX_CHUNK_CHARS));
}

const CONFIG: &str = r#"{
  "audio": {"sample_rate": 22050},
  "espeak": {"voice": "en-us"},
  "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
  "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], ",": [8], "a": [14], "b": [15], "ç": [40], "c": [16], "̧": [141]},
  "num_speakers": 1,
  "language": {"code": "en_US"}
}"#;

#[test]
fn phonemes_become_ids_the_way_piper_feeds_them() {
    let config = VoiceConfig::parse(CONFIG).unwrap();
    assert_eq!(
        (config.sample_rate, config.espeak_voice.as_str(), config.language.as_str()),
        (22050, "en-us", "en_US")
    );
    assert_eq!(config.phoneme_ids("ab, a"), (vec![1, 0, 14, 0, 15, 0, 8, 0, 3, 0, 14, 0, 2], 0));
    // Decomposed like Piper (NFD): ç is c + combining cedilla; unknown phonemes skipped.
    assert_eq!(config.phoneme_ids("çz"), (vec![1, 0, 16, 0, 141, 0, 2], 1));
    assert!(config.is_empty(&config.phoneme_ids("zz").0));
}

#[test]
fn bad_voice_configs_are_refused_with_a_reason() {
    let without = |key: &str| {
        let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        v.as_object_mut().unwrap().remove(key);
        VoiceConfig::parse(&v.to_string()).unwrap_err()
    };
    assert!(without("espeak").contains("espeak"));
    assert!(without("audio").contains("audio"));
    assert!(VoiceConfig::parse("{}").unwrap_err().contains("not a Piper voice config"));
    let no_pad = CONFIG.replace(r#""_": [0], "#, "");
    assert!(VoiceConfig::parse(&no_pad).unwrap_err().contains("'_'"));
    let text = CONFIG.replace(r#""num_speakers""#, r#""phoneme_type": "text", "num_speakers""#);
    assert!(VoiceConfig::parse(&text).unwrap_err().contains("not supported"));
}

#[test]
fn errors_map_to_api_codes() {
    let code = |e: TtsError| ApiError::from(e).code;
    assert_eq!(code(TtsError::NotReady("x".into())), ErrorCode::ModelNotReady);
    assert_eq!(code(TtsError::Busy(8)), ErrorCode::Overloaded);
    assert_eq!(code(TtsError::InvalidRequest("x".into())), ErrorCode::InvalidRequest);
    assert_eq!(code(TtsError::Failed("x".into())), ErrorCode::EngineError);
    let voice = ApiError::from(TtsError::VoiceNotFound("bob".into()));
    assert_eq!((voice.code.status(), voice.code.code()), (404, "voice_not_found"));
}

#[test]
fn state_serializes_with_a_tag() {
    let ready = serde_json::to_value(TtsState::Ready { voice: "piper-joe".into(), rate: 22050 }).unwrap();
    assert_eq!(ready, serde_json::json!({"state": "ready", "voice": "piper-joe", "rate": 22050}));
}

#[test]
fn the_runtime_check_refuses_what_is_not_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("libonnxruntime.so");
    std::fs::write(&text, b"not a library at all").unwrap();
    assert!(check_elf(&text).unwrap_err().contains("no ELF header"));
    assert!(check_elf(&dir.path().join("missing.so")).unwrap_err().contains("missing.so"));
    assert!(check_elf(dir.path()).unwrap_err().contains("not a file"));
}
