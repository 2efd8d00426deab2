//! `hearth models add` (a model file copied over, for a box without network) and
//! `hearth models pull` on the command line (issue 20).

use crate::common::{cli, small_model};
use std::path::Path;

/// Every file in `<data_dir>/models`, hidden ones included (none when it does not exist).
fn files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("models"))
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_copied_model_is_added_and_a_corrupted_copy_is_refused_without_a_trace() {
    let data = tempfile::tempdir().unwrap();
    let usb = tempfile::tempdir().unwrap();
    let file = "SmolLM2-135M-Instruct.Q4_1.gguf";

    // A corrupted copy (one byte flipped in the middle): the size is right, the sha256 not.
    let corrupted = usb.path().join(file);
    let mut bytes = std::fs::read(small_model()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&corrupted, &bytes).unwrap();
    let (status, out, err) = cli(data.path(), &["models", "add", corrupted.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(
        err.contains("refused") && err.contains("sha256") && err.contains("smollm2-135m-instruct"),
        "{err}"
    );
    assert!(files(data.path()).is_empty(), "left behind: {:?}", files(data.path()));

    // The real file, under another name (as a USB stick might have it): recognised by its bytes.
    let renamed = usb.path().join("model-from-the-usb-stick.gguf");
    std::fs::copy(small_model(), &renamed).unwrap();
    let (status, out, err) = cli(data.path(), &["models", "add", renamed.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("smollm2-135m-instruct") && out.contains("sha256 match"), "{out}");
    let installed = data.path().join("models").join(file);
    assert_eq!(std::fs::read(&installed).unwrap().len(), bytes.len());
    assert_eq!(files(data.path()), [file.to_string(), format!("{file}.sha256")]);
    let (status, out, _) = cli(data.path(), &["models", "verify", installed.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");

    // The corrupted copy again: the good file stays as it was.
    let (status, _, err) = cli(data.path(), &["models", "add", corrupted.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(small_model()).unwrap());
    assert_eq!(files(data.path()), [file.to_string(), format!("{file}.sha256")]);
    // Adding the same file twice changes nothing.
    let (status, out, err) = cli(data.path(), &["models", "add", renamed.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("installed already"), "{out}");

    // Not a model at all.
    let notes = usb.path().join("notes.txt");
    std::fs::write(&notes, "the wifi password is on the fridge").unwrap();
    let (status, _, err) = cli(data.path(), &["models", "add", notes.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("neither a GGUF model nor a whisper.cpp ggml file"), "{err}");
    assert_eq!(files(data.path()).len(), 2, "{:?}", files(data.path()));
}

#[test]
fn models_pull_on_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let (status, _, err) = cli(data.path(), &["models", "pull", "gpt-17"]);
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("unknown model 'gpt-17'") && err.contains("all-minilm-l6-v2"), "{err}");

    // The smallest manifest file: ONNX Runtime's library (about 25-30 MB).
    let (status, out, err) = cli(data.path(), &["models", "pull", "onnxruntime"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("size and sha256 match the manifest"), "{out}");
    let names = files(data.path());
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("libonnxruntime.so.") && names[1].ends_with(".sha256"), "{names:?}");
    // Pulled already: verified again, nothing downloaded.
    let (status, out, err) = cli(data.path(), &["models", "pull", "onnxruntime"]);
    assert_eq!(status, 0, "{out}{err}");

    // A fetcher that is not there: exit code 3 and what to do.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["models", "pull", "onnxruntime", "--data-dir"])
        .arg(data.path())
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_FETCHER", "/nonexistent/fetch.py")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("HEARTH_FETCHER names /nonexistent/fetch.py"), "{err}");
}
