//! WordPiece vocabularies (BERT) in llama.cpp's form.
//!
//! llama.cpp's WPM tokenizer marks the start of a word with U+2581 ("▁") instead
//! of marking continuations with "##" as Hugging Face does: `play` becomes
//! `▁play` and `##ing` becomes `ing`. Control tokens ([CLS], [SEP], ...) keep
//! their text. Tokens come from `vocab.txt` (one per line, the line number is
//! the id) or else from `tokenizer.json`'s WordPiece vocabulary.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value as Json;

use super::{read_optional_json, ImportError};

/// llama.cpp's `LLAMA_TOKEN_TYPE_*`.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// A converted vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub cls: u32,
    pub sep: u32,
    pub unk: u32,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    /// The normalizer's lowercasing, when the tokenizer files say.
    pub lowercase: Option<bool>,
    /// Its accent stripping, when the tokenizer files say (null means "follow lowercase").
    pub strip_accents: Option<bool>,
}

/// Reads the vocabulary of the model in `dir` and pads it with unused tokens to
/// `rows`, the number of rows of the token embedding matrix.
pub fn load(dir: &Path, rows: u64) -> Result<Vocab, ImportError> {
    let tokenizer_json = read_optional_json(&dir.join("tokenizer.json"))?;
    let vocab_txt = dir.join("vocab.txt");
    let raw: Vec<String> = if vocab_txt.is_file() {
        let text = std::fs::read(&vocab_txt)
            .map_err(|source| ImportError::Io { path: vocab_txt.clone(), source })?;
        let text = String::from_utf8(text).map_err(|_| vocab_err(&vocab_txt, "is not UTF-8 text"))?;
        text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect()
    } else if let Some(json) = &tokenizer_json {
        from_tokenizer_json(json).map_err(|reason| vocab_err(&dir.join("tokenizer.json"), &reason))?
    } else {
        return Err(ImportError::Missing {
            path: vocab_txt,
            what: "vocabulary",
            hint: "a BERT model needs vocab.txt or a WordPiece tokenizer.json".into(),
        });
    };
    if raw.is_empty() {
        return Err(vocab_err(&vocab_txt, "is empty"));
    }
    if raw.len() as u64 > rows {
        let reason = format!("has {} tokens but the embedding matrix has only {rows} rows", raw.len());
        return Err(vocab_err(&vocab_txt, &reason));
    }

    // Special tokens: tokenizer.json's added tokens, and the roles named in the
    // tokenizer config files (BERT's usual names where nothing says otherwise).
    let mut control: HashSet<&str> = HashSet::new();
    let mut user_defined: HashSet<&str> = HashSet::new();
    let added = tokenizer_json.as_ref().and_then(|j| j.get("added_tokens")).and_then(Json::as_array);
    for token in added.into_iter().flatten() {
        if let Some(content) = token.get("content").and_then(Json::as_str) {
            let special = token.get("special").and_then(Json::as_bool).unwrap_or(false);
            if special {
                control.insert(content)
            } else {
                user_defined.insert(content)
            };
        }
    }
    let special_map = read_optional_json(&dir.join("special_tokens_map.json"))?;
    let tokenizer_config = read_optional_json(&dir.join("tokenizer_config.json"))?;
    let role = |name: &str, default: &'static str| -> String {
        for source in [&special_map, &tokenizer_config].into_iter().flatten() {
            match source.get(format!("{name}_token")) {
                Some(Json::String(s)) => return s.clone(),
                Some(Json::Object(o)) => {
                    if let Some(Json::String(s)) = o.get("content") {
                        return s.clone();
                    }
                }
                _ => {}
            }
        }
        default.to_string()
    };
    let roles = [
        role("cls", "[CLS]"),
        role("sep", "[SEP]"),
        role("unk", "[UNK]"),
        role("pad", "[PAD]"),
        role("mask", "[MASK]"),
    ];
    control.extend(roles.iter().map(String::as_str));

    let find = |text: &str| raw.iter().position(|t| t == text).map(|i| i as u32);
    let required = |text: &str, what: &str| {
        find(text).ok_or_else(|| vocab_err(&vocab_txt, &format!("has no {what} token {text:?}")))
    };
    let (cls, sep, unk) =
        (required(&roles[0], "CLS")?, required(&roles[1], "SEP")?, required(&roles[2], "UNK")?);
    let (pad, mask) = (find(&roles[3]), find(&roles[4]));

    let mut tokens = Vec::with_capacity(rows as usize);
    let mut types = Vec::with_capacity(rows as usize);
    for token in &raw {
        if control.contains(token.as_str()) {
            tokens.push(token.clone());
            types.push(CONTROL);
        } else {
            let bare = token.strip_prefix("##").map_or_else(|| format!("\u{2581}{token}"), str::to_string);
            tokens.push(bare);
            types.push(if user_defined.contains(token.as_str()) { USER_DEFINED } else { NORMAL });
        }
    }
    for i in raw.len() as u64..rows {
        tokens.push(format!("[PAD{i}]"));
        types.push(UNUSED);
    }
    // llama.cpp asserts (aborts the process) when two tokens have the same text.
    let mut seen = HashSet::with_capacity(tokens.len());
    if let Some(dup) = tokens.iter().find(|t| !t.is_empty() && !seen.insert(t.as_str())) {
        return Err(vocab_err(&vocab_txt, &format!("has the token {dup:?} twice (after conversion)")));
    }

    let normalizer = tokenizer_json.as_ref().and_then(|j| j.get("normalizer"));
    let flag = |source: Option<&Json>, key: &str| source.and_then(|s| s.get(key)).and_then(Json::as_bool);
    let lowercase =
        flag(normalizer, "lowercase").or_else(|| flag(tokenizer_config.as_ref(), "do_lower_case"));
    let strip_accents =
        flag(normalizer, "strip_accents").or_else(|| flag(tokenizer_config.as_ref(), "strip_accents"));
    Ok(Vocab { tokens, types, cls, sep, unk, pad, mask, lowercase, strip_accents })
}

/// The tokens of a WordPiece `tokenizer.json`, in id order.
fn from_tokenizer_json(json: &Json) -> Result<Vec<String>, String> {
    let model = json.get("model").ok_or("has no model")?;
    let kind = model.get("type").and_then(Json::as_str).unwrap_or("?");
    if kind != "WordPiece" {
        return Err(format!("has a {kind} tokenizer; BERT models need WordPiece (or a vocab.txt)"));
    }
    let vocab = model.get("vocab").and_then(Json::as_object).ok_or("has no model.vocab object")?;
    let mut tokens = vec![None; vocab.len()];
    for (token, id) in vocab {
        let slot = id.as_u64().and_then(|id| tokens.get_mut(id as usize));
        match slot {
            Some(slot @ None) => *slot = Some(token.clone()),
            _ => {
                return Err(format!(
                    "gives token {token:?} the id {id}, which is not a unique id below {}",
                    vocab.len()
                ))
            }
        }
    }
    Ok(tokens.into_iter().map(|t| t.expect("every slot filled: ids are unique and in range")).collect())
}

fn vocab_err(path: &Path, reason: &str) -> ImportError {
    ImportError::Vocab { path: path.to_path_buf(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn vocab_txt_gets_phantom_spaces_and_padding() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nplay\n##ing\n");
        write(dir.path(), "tokenizer_config.json", r#"{"do_lower_case": true}"#);
        let v = load(dir.path(), 9).unwrap();
        assert_eq!(
            v.tokens,
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "▁play", "ing", "[PAD7]", "[PAD8]"]
        );
        assert_eq!(v.types, [3, 3, 3, 3, 3, 1, 1, 5, 5]);
        assert_eq!((v.cls, v.sep, v.unk, v.pad, v.mask), (2, 3, 1, Some(0), Some(4)));
        assert_eq!((v.lowercase, v.strip_accents), (Some(true), None));
    }

    #[test]
    fn tokenizer_json_alone_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"added_tokens": [{"id": 0, "content": "<c>", "special": true}],
            "normalizer": {"type": "BertNormalizer", "lowercase": false, "strip_accents": null},
            "model": {"type": "WordPiece", "vocab": {"<c>": 0, "[SEP]": 1, "[UNK]": 2, "x": 3}}}"#;
        write(dir.path(), "tokenizer.json", json);
        write(dir.path(), "special_tokens_map.json", r#"{"cls_token": {"content": "<c>"}}"#);
        let v = load(dir.path(), 4).unwrap();
        assert_eq!(v.tokens, ["<c>", "[SEP]", "[UNK]", "▁x"]);
        assert_eq!((v.cls, v.sep, v.unk, v.pad, v.mask), (0, 1, 2, None, None));
        assert_eq!(v.lowercase, Some(false));
    }

    #[test]
    fn bad_vocabularies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), 4).unwrap_err().to_string();
        assert!(err.contains("vocab.txt") && err.contains("not found"), "{err}");
        write(dir.path(), "vocab.txt", "[CLS]\n[SEP]\n[UNK]\na\n##\u{2581}a\nb\n");
        assert!(load(dir.path(), 4).unwrap_err().to_string().contains("only 4 rows"));
        assert!(load(dir.path(), 6).unwrap_err().to_string().contains("twice"));
        write(dir.path(), "vocab.txt", "[CLS]\n[UNK]\na\n");
        assert!(load(dir.path(), 3).unwrap_err().to_string().contains("no SEP token"));
        std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
        write(dir.path(), "tokenizer.json", r#"{"model": {"type": "BPE", "vocab": {}}}"#);
        assert!(load(dir.path(), 3).unwrap_err().to_string().contains("BPE tokenizer"));
        write(dir.path(), "tokenizer.json", r#"{"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 0}}}"#);
        assert!(load(dir.path(), 3).unwrap_err().to_string().contains("not a unique id"));
    }
}
