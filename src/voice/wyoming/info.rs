//! The `info` event: which services, models and voices a program offers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who made an artifact and where it is from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub name: String,
    pub url: String,
}

/// The fields every program, model and voice has. `description` and
/// `version` are always written (as `null` when unknown), as the Python
/// library writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub attribution: Attribution,
    pub installed: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// A speech-to-text model, or an intent-handling model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LanguageModel {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub languages: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AsrProgram {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub models: Vec<LanguageModel>,
    #[serde(default)]
    pub supports_transcript_streaming: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtsSpeaker {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtsVoice {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub languages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speakers: Option<Vec<TtsSpeaker>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtsProgram {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub voices: Vec<TtsVoice>,
    #[serde(default)]
    pub supports_synthesize_streaming: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandleProgram {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub models: Vec<LanguageModel>,
    #[serde(default)]
    pub supports_handled_streaming: bool,
}

/// The answer to `describe`. Services this server does not offer (wake word,
/// intent recognition, microphone, sound output) are kept as plain JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Info {
    #[serde(default)]
    pub asr: Vec<AsrProgram>,
    #[serde(default)]
    pub tts: Vec<TtsProgram>,
    #[serde(default)]
    pub handle: Vec<HandleProgram>,
    #[serde(default)]
    pub intent: Vec<Value>,
    #[serde(default)]
    pub wake: Vec<Value>,
    #[serde(default)]
    pub mic: Vec<Value>,
    #[serde(default)]
    pub snd: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellite: Option<Value>,
}

impl Artifact {
    /// An installed artifact attributed to `by` (`name`, `url`).
    pub fn new(name: &str, description: &str, by: (&str, &str), version: Option<&str>) -> Artifact {
        Artifact {
            name: name.into(),
            attribution: Attribution { name: by.0.into(), url: by.1.into() },
            installed: true,
            description: Some(description.into()),
            version: version.map(String::from),
        }
    }
}
