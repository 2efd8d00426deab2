//! `hearth models import` of a CTranslate2 (faster-whisper) Whisper model into
//! whisper.cpp's ggml format.
//!
//! The sources are the real Whisper tiny.en and base as `python3 models/fetch.py
//! whisper-tiny-en whisper-base --hearth target/debug/hearth` unpacks them into the
//! model cache (`.src/<name>/`); tiny.en may also be the folder named by
//! `HEARTH_TEST_WHISPER_CT2_DIR`. Without them the tests are skipped with a message
//! saying how to get them.

use crate::common::cli;
use std::path::{Path, PathBuf};

const FILE: &str = "ggml-tiny.en.bin";

fn whisper_source() -> PathBuf {
    source("whisper-tiny-en", std::env::var_os("HEARTH_TEST_WHISPER_CT2_DIR").map(PathBuf::from))
}

/// The CTranslate2 source folder `models/fetch.py` unpacks; a missing one fails the test
/// and says how to fetch it.
fn source(name: &str, given: Option<PathBuf>) -> PathBuf {
    let dir = given.unwrap_or_else(|| {
        std::env::var_os("HEARTH_MODEL_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hearth/models"))
            .join(".src")
            .join(name)
    });
    assert!(
        dir.join("model.bin").is_file() && dir.join("vocabulary.txt").is_file(),
        "the Whisper CTranslate2 source folder {} is missing: run `python3 models/fetch.py {name} --hearth \
         target/debug/hearth`",
        dir.display()
    );
    dir
}

/// `(bytes, sha256)` of the manifest entry for `FILE`.
fn manifest_entry(file: &str) -> (u64, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/manifest.toml");
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = manifest["model"].as_array().unwrap().iter().find(|m| m["file"].as_str() == Some(file));
    let entry = entry.unwrap_or_else(|| panic!("the manifest lists {file}"));
    (entry["bytes"].as_integer().unwrap() as u64, entry["sha256"].as_str().unwrap().to_string())
}

#[test]
fn voice_whisper_ct2_imports_to_the_manifest_bytes_and_verifies() {
    let src = whisper_source();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(FILE);
    let args = ["models", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (code, stdout, stderr) = cli(dir.path(), &args);
    assert_eq!(code, 0, "import failed:\n{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 167, "{stderr}");
    assert!(
        progress[0].contains("encoder/position_encodings/encodings")
            && progress[0].contains("encoder.positional_embedding")
    );
    let (bytes, sha256) = manifest_entry(FILE);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("whisper, 167 tensors"), "{stdout}");
    assert!(last.contains(&format!("{bytes} bytes")) && last.contains(&sha256), "{stdout}");
    assert!(!dir.path().join(format!("{FILE}.partial")).exists());

    // The file has the manifest's name: verify checks structure, size and sha256.
    let (code, stdout, _) = cli(dir.path(), &["models", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("ok") && stdout.contains("whisper ggml, 167 tensors"), "{stdout}");
    assert!(stdout.contains("sha256 matches the manifest"), "{stdout}");

    // A damaged copy fails verification instead of passing as a model.
    let mut damaged = std::fs::read(&out).unwrap();
    damaged.truncate(damaged.len() - 1000);
    std::fs::write(&out, damaged).unwrap();
    let (code, stdout, _) = cli(dir.path(), &["models", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("truncated"), "{stdout}");
}

#[test]
fn voice_whisper_ct2_truncated_model_fails_cleanly() {
    let src = whisper_source();
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("vocabulary.txt"), copy.path().join("vocabulary.txt")).unwrap();
    let mut head = vec![0u8; 4 * 1024 * 1024];
    std::io::Read::read_exact(&mut std::fs::File::open(src.join("model.bin")).unwrap(), &mut head).unwrap();
    std::fs::write(copy.path().join("model.bin"), head).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join(FILE);
    let args = ["models", "import", copy.path().to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (code, _, stderr) = cli(out_dir.path(), &args);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a valid CTranslate2 model") && stderr.contains("truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}

#[test]
fn voice_whisper_base_from_two_wheels_imports_to_the_manifest_bytes() {
    let src = source("whisper-base", None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ggml-base.bin");
    let args = ["models", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (code, stdout, stderr) = cli(dir.path(), &args);
    assert_eq!(code, 0, "import failed:\n{stderr}");
    let (bytes, sha256) = manifest_entry("ggml-base.bin");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("whisper, 245 tensors"), "{stdout}");
    assert!(last.contains(&format!("{bytes} bytes")) && last.contains(&sha256), "{stdout}");
}
