//! `hearth models import`: converting safetensors models to GGUF.
//!
//! The source is the real all-MiniLM-L6-v2 (sentence-transformers, safetensors) as
//! `python3 models/fetch.py all-minilm-l6-v2` unpacks it into the model cache, or the
//! folder named by `HEARTH_TEST_MINILM_DIR`.

use crate::common::cli;
use std::path::{Path, PathBuf};

const FILE: &str = "all-minilm-l6-v2-f16.gguf";

fn minilm_source() -> PathBuf {
    let dir = match std::env::var_os("HEARTH_TEST_MINILM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HEARTH_MODEL_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hearth/models"))
            .join(".src/all-minilm-l6-v2"),
    };
    assert!(
        dir.join("model.safetensors").is_file() && dir.join("config.json").is_file(),
        "the MiniLM source folder {} is missing: run `python3 models/fetch.py all-minilm-l6-v2 --hearth target/debug/hearth` \
         (or set HEARTH_TEST_MINILM_DIR to a sentence-transformers model folder)",
        dir.display()
    );
    dir
}

/// `(bytes, sha256)` of the manifest entry for the imported file.
fn manifest_entry() -> (u64, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/manifest.toml");
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = manifest["model"].as_array().unwrap().iter().find(|m| m["file"].as_str() == Some(FILE));
    let entry = entry.expect("the manifest lists the imported MiniLM");
    (entry["bytes"].as_integer().unwrap() as u64, entry["sha256"].as_str().unwrap().to_string())
}

/// Imports MiniLM into `dir/FILE`; returns its path.
fn import_minilm(dir: &Path) -> PathBuf {
    let out = dir.join(FILE);
    let src = minilm_source();
    let (code, stdout, stderr) =
        cli(dir, &["models", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "import failed:\n{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 101, "{stderr}");
    assert!(
        progress[0].contains("embeddings.word_embeddings.weight")
            && progress[0].contains("token_embd.weight")
    );
    assert!(progress[100].starts_with("[101/101]"), "{}", progress[100]);
    let (bytes, sha256) = manifest_entry();
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains(out.to_str().unwrap()), "{stdout}");
    assert!(last.contains(&format!("{bytes} bytes")) && last.contains(&sha256), "{stdout}");
    out
}

#[test]
fn minilm_imports_to_the_manifest_bytes_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = import_minilm(dir.path());
    assert!(!dir.path().join(format!("{FILE}.partial")).exists());

    // The file has the manifest's name, so verify checks size and sha256 as well.
    let (code, stdout, _) = cli(dir.path(), &["models", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("ok") && stdout.contains("bert, 101 tensors"), "{stdout}");
    assert!(stdout.contains("sha256 matches the manifest"), "{stdout}");

    // An existing output is kept unless --force.
    let src = minilm_source();
    let args = ["models", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (code, _, stderr) = cli(dir.path(), &args);
    assert_ne!(code, 0);
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");
}

/// A copy of the MiniLM folder whose model.safetensors is only its first `keep` bytes.
fn truncated_copy(keep: usize) -> tempfile::TempDir {
    let src = minilm_source();
    let copy = tempfile::tempdir().unwrap();
    for name in
        ["config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    {
        if src.join(name).is_file() {
            std::fs::copy(src.join(name), copy.path().join(name)).unwrap();
        }
    }
    let mut head = vec![0u8; keep];
    std::io::Read::read_exact(&mut std::fs::File::open(src.join("model.safetensors")).unwrap(), &mut head)
        .unwrap();
    std::fs::write(copy.path().join("model.safetensors"), head).unwrap();
    copy
}

#[test]
fn corrupt_sources_fail_with_a_clear_message() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.gguf");
    let import = |src: &Path| {
        let (code, _, stderr) =
            cli(out_dir.path(), &["models", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(!out.exists() && !out_dir.path().join("out.gguf.partial").exists());
        (code, stderr)
    };

    let truncated = truncated_copy(4 * 1024 * 1024);
    let (code, stderr) = import(truncated.path());
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("model.safetensors: not a valid safetensors file"), "{stderr}");
    assert!(stderr.contains("truncated or corrupt"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let header_cut = truncated_copy(1000); // the JSON header itself is cut off
    let (code, stderr) = import(header_cut.path());
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("not a valid safetensors file") && stderr.contains("truncated"), "{stderr}");

    let config = truncated.path().join("config.json");
    std::fs::write(&config, r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#).unwrap();
    let (code, stderr) = import(truncated.path());
    assert_ne!(code, 0);
    assert!(
        stderr.contains("unsupported model architecture") && stderr.contains("LlamaForCausalLM"),
        "{stderr}"
    );

    std::fs::remove_file(&config).unwrap();
    let (code, stderr) = import(truncated.path());
    assert_ne!(code, 0);
    assert!(stderr.contains("not found") && stderr.contains("config.json"), "{stderr}");

    let (code, stderr) = import(&truncated.path().join("missing"));
    assert_ne!(code, 0);
    assert!(stderr.contains("model folder not found"), "{stderr}");
}

/// llama.cpp itself loads the imported file as a BERT embedding model with mean
/// pooling, and its embeddings make sense.
#[cfg(feature = "llm")]
#[test]
fn llama_cpp_embeds_with_the_imported_model() {
    use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
    use llama_cpp_2::llama_backend::LlamaBackend;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::params::LlamaModelParams;
    use llama_cpp_2::model::LlamaModel;
    use std::num::NonZeroU32;

    let dir = tempfile::tempdir().unwrap();
    let path = import_minilm(dir.path());

    // The backend may be initialised once per process; nothing else in this test
    // binary uses llama.cpp in-process (servers run as child processes).
    let mut backend = LlamaBackend::init().expect("llama.cpp backend");
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).expect("load");
    assert_eq!(model.n_embd(), 384);
    let params = LlamaContextParams::default()
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_ctx(NonZeroU32::new(512))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(1)
        .with_n_threads_batch(1);
    let mut ctx = model.new_context(&backend, params).expect("context");

    let mut embed = |text: &str| -> Vec<f32> {
        let tokens = model.vocab().tokenize(text.as_bytes(), true, false);
        let mut batch = LlamaBatch::new(512, 1);
        batch.add_sequence(&tokens, 0, true).unwrap();
        ctx.decode(&mut batch).expect("decode");
        ctx.embeddings_seq_ith(0).expect("pooled embedding").to_vec()
    };
    // WordPiece ids as the Hugging Face tokenizer gives them: [CLS] the cat sits on the mat . [SEP]
    let ids: Vec<i32> =
        model.vocab().tokenize(b"The cat sits on the mat.", true, false).iter().map(|t| t.0).collect();
    assert_eq!(ids, [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102]);

    let cat = embed("The cat sits on the mat.");
    let cat2 = embed("A cat is sitting on a mat.");
    let stocks = embed("Stock markets fell sharply today.");
    assert_eq!(cat.len(), 384);
    assert!(cat.iter().all(|v| v.is_finite()));
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    };
    let (similar, unrelated) = (cosine(&cat, &cat2), cosine(&cat, &stocks));
    eprintln!("cosine(cat, cat sitting) = {similar:.4}, cosine(cat, stock markets) = {unrelated:.4}");
    assert!(similar > unrelated + 0.2, "similar {similar} vs unrelated {unrelated}");
    assert!((cosine(&cat, &embed("The cat sits on the mat.")) - 1.0).abs() < 1e-4);
}
