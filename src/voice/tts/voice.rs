//! A Piper voice's settings (the `.onnx.json` beside the model) and phonemes to ids.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;

/// Piper's markers: padding between phonemes, beginning and end of an utterance.
const PAD: &str = "_";
const BOS: &str = "^";
const EOS: &str = "$";

/// Largest `.onnx.json` read (Piper's are a few KB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// What synthesis needs from a voice's `.onnx.json`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct VoiceConfig {
    pub sample_rate: u32,
    /// The espeak-ng voice that phonemizes for this model (`en-us`).
    pub espeak_voice: String,
    /// The language for listings (`en_US`).
    pub language: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    ids: HashMap<char, Vec<i64>>,
    pad: Vec<i64>,
    bos: Vec<i64>,
    eos: Vec<i64>,
}

#[derive(Deserialize)]
struct Raw {
    audio: RawAudio,
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: RawInference,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default = "one")]
    num_speakers: u32,
    phoneme_type: Option<String>,
    language: Option<RawLanguage>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for RawInference {
    fn default() -> Self {
        // Piper's defaults.
        Self { noise_scale: 0.667, length_scale: 1.0, noise_w: 0.8 }
    }
}

#[derive(Deserialize)]
struct RawLanguage {
    code: String,
}

fn one() -> u32 {
    1
}

/// The `.onnx.json` that goes with a voice model.
pub(super) fn config_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

impl VoiceConfig {
    /// Reads and checks the `.onnx.json` beside `model`.
    pub fn load(model: &Path) -> Result<VoiceConfig, String> {
        let path = config_path(model);
        let meta = std::fs::metadata(&path).map_err(|e| {
            format!("{}: {e} (a Piper voice needs its .onnx.json beside the .onnx file)", path.display())
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(format!("{}: {} bytes is too large for a voice config", path.display(), meta.len()));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(json: &str) -> Result<VoiceConfig, String> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| format!("not a Piper voice config: {e}"))?;
        if let Some(kind) = raw.phoneme_type.as_deref().filter(|k| *k != "espeak") {
            return Err(format!("phoneme_type '{kind}' is not supported (only espeak voices)"));
        }
        let Some(espeak) = raw.espeak.filter(|e| !e.voice.trim().is_empty()) else {
            return Err("no espeak.voice: Hearth needs an espeak-ng voice to phonemize".into());
        };
        if !(8_000..=48_000).contains(&raw.audio.sample_rate) {
            return Err(format!("audio.sample_rate {} is out of range", raw.audio.sample_rate));
        }
        let inf = &raw.inference;
        let scales = [inf.noise_scale, inf.length_scale, inf.noise_w];
        if scales.iter().any(|s| !s.is_finite() || *s < 0.0 || *s > 10.0) || inf.length_scale <= 0.0 {
            return Err(format!("inference scales {scales:?} are out of range"));
        }
        let mut ids = HashMap::new();
        for (phoneme, id) in &raw.phoneme_id_map {
            let mut chars = phoneme.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !id.is_empty() && id.iter().all(|&i| (0..=65_535).contains(&i)) => {
                    ids.insert(c, id.clone());
                }
                _ => return Err(format!("phoneme_id_map entry {phoneme:?} => {id:?} is not supported")),
            }
        }
        let marker = |m: &str| {
            raw.phoneme_id_map.get(m).cloned().ok_or_else(|| format!("phoneme_id_map has no '{m}'"))
        };
        Ok(VoiceConfig {
            sample_rate: raw.audio.sample_rate,
            language: raw.language.map_or_else(|| espeak.voice.clone(), |l| l.code),
            espeak_voice: espeak.voice,
            noise_scale: inf.noise_scale,
            length_scale: inf.length_scale,
            noise_w: inf.noise_w,
            num_speakers: raw.num_speakers.max(1),
            pad: marker(PAD)?,
            bos: marker(BOS)?,
            eos: marker(EOS)?,
            ids,
        })
    }

    /// Piper's model input: BOS, then each phoneme (a code point after NFD decomposition)
    /// followed by PAD, then EOS. Phonemes the voice lacks are skipped; the second value
    /// counts them.
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, usize) {
        let mut out = self.bos.clone();
        out.extend(&self.pad);
        let mut missing = 0;
        for c in phonemes.nfd() {
            match self.ids.get(&c) {
                Some(id) => {
                    out.extend(id);
                    out.extend(&self.pad);
                }
                None => missing += 1,
            }
        }
        out.extend(&self.eos);
        (out, missing)
    }

    /// True when `ids` (from [`Self::phoneme_ids`]) carry no phoneme at all.
    pub fn is_empty(&self, ids: &[i64]) -> bool {
        ids.len() <= self.bos.len() + self.pad.len() + self.eos.len()
    }
}
