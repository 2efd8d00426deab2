//! `hearth models add FILE`: a model file brought on a USB stick or from another machine,
//! for a box without network. The copy is written beside its final name, hashed as it is
//! written, validated the way the engines validate files, and renamed into place only once
//! it passed: a bad file never replaces a good one, and a refused one leaves nothing behind.
//!
//! What passes: a manifest file (named as in the manifest, or recognised by its size and
//! sha256 under any name) whose size and sha256 match, and whose structure checks out when
//! it is a GGUF or whisper.cpp file; or, not in the manifest, a GGUF or whisper.cpp ggml
//! file whose structure checks out.

use super::{check_entry, manifest, ManifestModel};
use crate::import::whisper::ggml;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// The name to install it under: a manifest name or file, or a file name of its own.
    /// Default: the file's own name (or its manifest name, when recognised by sha256).
    pub name: Option<String>,
    /// Replace a different file of the same name (only ever needed for files the
    /// manifest does not list: a listed one is replaced only by its verified bytes).
    pub force: bool,
}

/// What was installed.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub path: PathBuf,
    /// The manifest name, when the file is a manifest model.
    pub listed: Option<String>,
    /// "GGUF", "whisper ggml", or "file" (a listed voice or library: checked by sha256).
    pub kind: &'static str,
    pub bytes: u64,
    pub sha256: String,
    /// Side files installed with it (a Piper voice's `.onnx.json`).
    pub side_files: Vec<PathBuf>,
    /// The same file was installed already: nothing changed.
    pub unchanged: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// Not a file Hearth would load; nothing was installed.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
}

fn io_error(path: &Path, e: io::Error) -> AddError {
    AddError::Io(format!("{}: {e}", path.display()))
}

/// Copies `src` into the models folder `dir` as described in the module docs;
/// `progress(done, total)` follows the copy's bytes.
pub fn add(
    src: &Path,
    dir: &Path,
    options: &AddOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Added, AddError> {
    let meta = fs::metadata(src).map_err(|e| io_error(src, e))?;
    if !meta.is_file() {
        return Err(AddError::Refused(format!("{}: not a regular file", src.display())));
    }
    let own_name = src.file_name().and_then(|n| n.to_str());
    let named = match (&options.name, own_name) {
        (Some(name), _) => check_file_name(name)?,
        (None, Some(name)) => name,
        (None, None) => return Err(AddError::Refused(format!("{}: name it with --name", src.display()))),
    };
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    remove_stale(dir);
    let mut scratch = Scratch::default();
    let tmp = scratch.file(dir, named);
    let (bytes, sha) = copy(src, &tmp, meta.len(), progress)?;
    // The manifest entry: by the name it comes or is given under, else by its bytes.
    let entry = manifest().find(named).or_else(|| {
        let by_content = || manifest().models.iter().find(|m| m.bytes == bytes && m.sha256 == sha);
        options.name.is_none().then(by_content).flatten()
    });
    let kind = validate(&tmp, src, entry, bytes, &sha)?;
    let file = entry.map_or(named, |e| e.file.as_str());
    if entry.is_none() && kind == "GGUF" && !file.ends_with(".gguf") {
        return Err(AddError::Refused(format!(
            "{}: a GGUF model must be named *.gguf to be found; add it with --name {file}.gguf",
            src.display()
        )));
    }
    let sides = match entry {
        Some(entry) => side_files(entry, src, dir, &mut scratch)?,
        None => Vec::new(),
    };
    let dest = dir.join(file);
    let added = |unchanged| Added {
        path: dest.clone(),
        listed: entry.map(|e| e.name.clone()),
        kind,
        bytes,
        sha256: sha.clone(),
        side_files: sides.iter().map(|(_, to)| to.clone()).collect(),
        unchanged,
    };
    if dest.exists() {
        if same_content(&dest, bytes, &sha) && sides.iter().all(|(from, to)| same_file(from, to)) {
            return Ok(added(true));
        }
        if entry.is_none() && !options.force {
            return Err(AddError::Refused(format!(
                "{} exists and is a different file; pass --force to replace it",
                dest.display()
            )));
        }
    }
    // Side files first: a main file in place means its side files are too.
    for (from, to) in &sides {
        fs::rename(from, to).map_err(|e| io_error(to, e))?;
    }
    fs::rename(&tmp, &dest).map_err(|e| io_error(&dest, e))?;
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
    if entry.is_some() {
        write_sidecar(&dest, &sha);
    }
    Ok(added(false))
}

/// A file name of its own: no folders, not hidden.
fn check_file_name(name: &str) -> Result<&str, AddError> {
    let plain =
        !name.is_empty() && !name.contains(['/', '\0']) && !name.starts_with('.') && name.len() <= 255;
    match plain {
        true => Ok(name),
        false => {
            Err(AddError::Refused(format!("--name {name:?}: give a plain file name, e.g. my-model.gguf")))
        }
    }
}

/// Copies and hashes in one pass, then syncs the copy to disk; returns its size and sha256.
fn copy(
    src: &Path,
    to: &Path,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, String), AddError> {
    let mut input = File::open(src).map_err(|e| io_error(src, e))?;
    let mut out =
        OpenOptions::new().write(true).create_new(true).mode(0o644).open(to).map_err(|e| io_error(to, e))?;
    let (mut hasher, mut buf, mut done) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(src, e)),
        };
        out.write_all(&buf[..n]).map_err(|e| io_error(to, e))?;
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total.max(done));
    }
    out.sync_all().map_err(|e| io_error(to, e))?;
    Ok((done, hex::encode(hasher.finalize())))
}

/// Checks the copy at `tmp` (of `src`, as messages name it); returns what kind it is.
fn validate(
    tmp: &Path,
    src: &Path,
    entry: Option<&ManifestModel>,
    bytes: u64,
    sha: &str,
) -> Result<&'static str, AddError> {
    let refuse = |e: String| AddError::Refused(format!("{}: {e}", src.display()));
    if let Some(entry) = entry {
        check_entry(entry, src, bytes, || Ok(sha.to_string())).map_err(AddError::Refused)?;
    }
    let mut magic = [0u8; 4];
    let read = File::open(tmp).and_then(|mut f| f.read_exact(&mut magic));
    if read.is_ok() && &magic == b"GGUF" {
        crate::engine::gguf::validate(tmp).map_err(|e| refuse(e.to_string()))?;
        return Ok("GGUF");
    }
    if read.is_ok() && u32::from_le_bytes(magic) == ggml::MAGIC {
        ggml::read_summary(tmp).map_err(|e| refuse(format!("not a valid whisper.cpp model: {e}")))?;
        return Ok("whisper ggml");
    }
    match entry {
        Some(_) => Ok("file"),
        None => Err(refuse(
            "not a model Hearth can use: the manifest lists no file of this name or sha256, and it \
             is neither a GGUF model nor a whisper.cpp ggml file"
                .into(),
        )),
    }
}

/// Copies the side files a listed model needs from beside `src`, each checked against
/// the manifest; returns (copy, final path) pairs.
fn side_files(
    entry: &ManifestModel,
    src: &Path,
    dir: &Path,
    scratch: &mut Scratch,
) -> Result<Vec<(PathBuf, PathBuf)>, AddError> {
    let mut copies = Vec::new();
    for (name, side) in &entry.source.extra {
        let from = src.with_file_name(name);
        if !from.is_file() {
            return Err(AddError::Refused(format!(
                "{} needs its side file {name} beside {}; copy that too",
                entry.name,
                src.display()
            )));
        }
        let tmp = scratch.file(dir, name);
        let (bytes, sha) = copy(&from, &tmp, 0, &mut |_, _| {})?;
        if bytes != side.bytes || sha != side.sha256 {
            return Err(AddError::Refused(format!(
                "{}: expected {} bytes with sha256 {} for {}; got {bytes} bytes, sha256 {sha}",
                from.display(),
                side.bytes,
                side.sha256,
                entry.name
            )));
        }
        copies.push((tmp, dir.join(name)));
    }
    Ok(copies)
}

fn same_content(path: &Path, bytes: u64, sha: &str) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() == bytes)
        && crate::engine::gguf::sha256_file(path).is_ok_and(|s| s == sha)
}

fn same_file(a: &Path, b: &Path) -> bool {
    fs::metadata(a)
        .is_ok_and(|m| same_content(b, m.len(), &crate::engine::gguf::sha256_file(a).unwrap_or_default()))
}

/// `<file>.sha256` as `fetch.py` writes it (sha256, size, mtime in ns), so that it does
/// not hash the file again.
fn write_sidecar(path: &Path, sha: &str) {
    let Ok(meta) = fs::metadata(path) else { return };
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".sha256");
    let _ = fs::write(sidecar, format!("{sha} {} {mtime_ns}\n", meta.len()));
}

/// Copies in progress, removed unless they were renamed into place.
#[derive(Default)]
struct Scratch(Vec<PathBuf>);

impl Scratch {
    fn file(&mut self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!(".{name}.add-{}.partial", std::process::id()));
        let _ = fs::remove_file(&path);
        self.0.push(path.clone());
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Removes the copies of adds that were killed (their process is gone).
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_suffix(".partial")?.rsplit_once(".add-")) else {
            continue;
        };
        if pid.1.parse::<u32>().is_ok() && !Path::new("/proc").join(pid.1).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_file(dir: &Path, name: &str, bytes: &[u8], options: &AddOptions) -> Result<Added, AddError> {
        let usb = dir.join("usb");
        fs::create_dir_all(&usb).unwrap();
        let src = usb.join(name);
        fs::write(&src, bytes).unwrap();
        add(&src, &dir.join("models"), options, &mut |_, _| {})
    }

    fn refused(result: Result<Added, AddError>, needle: &str) {
        match result {
            Err(AddError::Refused(m)) => assert!(m.contains(needle), "expected {needle:?} in {m:?}"),
            other => panic!("expected a refusal with {needle:?}, got {other:?}"),
        }
    }

    /// Files in the models folder, hidden ones included.
    fn installed(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("models"))
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_valid_gguf_is_installed_once() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = crate::engine::gguf::tests::sample_file();
        let added = add_file(dir.path(), "tiny.gguf", &gguf, &AddOptions::default()).unwrap();
        assert_eq!((added.kind, added.listed.as_deref(), added.unchanged), ("GGUF", None, false));
        assert_eq!(fs::read(&added.path).unwrap(), gguf);
        assert_eq!(installed(dir.path()), ["tiny.gguf"]);
        let again = add_file(dir.path(), "tiny.gguf", &gguf, &AddOptions::default()).unwrap();
        assert!(again.unchanged);
        let named = AddOptions { name: Some("renamed".into()), force: false };
        refused(add_file(dir.path(), "tiny.gguf", &gguf, &named), "--name renamed.gguf");
        let hidden = AddOptions { name: Some("../x.gguf".into()), force: false };
        refused(add_file(dir.path(), "tiny.gguf", &gguf, &hidden), "plain file name");
        assert_eq!(installed(dir.path()), ["tiny.gguf"], "refusals leave nothing behind");
    }

    #[test]
    fn bad_magic_and_truncated_gguf_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        refused(
            add_file(dir.path(), "notes.gguf", b"hello, not a model", &AddOptions::default()),
            "neither a GGUF",
        );
        let gguf = crate::engine::gguf::tests::sample_file();
        refused(
            add_file(dir.path(), "cut.gguf", &gguf[..gguf.len() - 100], &AddOptions::default()),
            "past end of file",
        );
        refused(add_file(dir.path(), "cut.gguf", &gguf[..40], &AddOptions::default()), "truncated");
        let mut whisper = ggml::MAGIC.to_le_bytes().to_vec();
        whisper.extend([1, 0, 0, 0]);
        refused(add_file(dir.path(), "ggml-x.bin", &whisper, &AddOptions::default()), "whisper.cpp");
        assert!(installed(dir.path()).is_empty(), "{:?}", installed(dir.path()));
    }

    #[test]
    fn a_good_file_is_never_replaced_by_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = crate::engine::gguf::tests::sample_file();
        add_file(dir.path(), "tiny.gguf", &gguf, &AddOptions::default()).unwrap();
        refused(add_file(dir.path(), "tiny.gguf", &gguf[..64], &AddOptions::default()), "truncated");
        let mut other = gguf.clone();
        other.extend([0u8; 32]); // valid, but a different file of the same name
        refused(add_file(dir.path(), "tiny.gguf", &other, &AddOptions::default()), "--force");
        assert_eq!(fs::read(dir.path().join("models/tiny.gguf")).unwrap(), gguf);
        let force = AddOptions { name: None, force: true };
        assert!(!add_file(dir.path(), "tiny.gguf", &other, &force).unwrap().unchanged);
        assert_eq!(installed(dir.path()), ["tiny.gguf"]);
    }

    #[test]
    fn a_listed_name_must_have_the_listed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let smallest = manifest().models.iter().min_by_key(|m| m.bytes).unwrap();
        // The right size, the wrong bytes: the sha256 decides.
        let zeros = vec![0u8; smallest.bytes as usize];
        refused(add_file(dir.path(), &smallest.file, &zeros, &AddOptions::default()), "sha256");
        // A valid GGUF under a listed model's name is still not that model.
        let gguf = crate::engine::gguf::tests::sample_file();
        let listed = AddOptions { name: Some(smallest.name.clone()), force: false };
        refused(add_file(dir.path(), "tiny.gguf", &gguf, &listed), "does not match the manifest");
        assert!(installed(dir.path()).is_empty(), "{:?}", installed(dir.path()));
    }

    #[test]
    fn copies_of_killed_adds_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        fs::create_dir_all(&models).unwrap();
        // pid_max is at most 4194304: this process cannot exist.
        fs::write(models.join(".m.gguf.add-4194399.partial"), b"x").unwrap();
        fs::write(models.join(format!(".m.gguf.add-{}.partial", std::process::id())), b"x").unwrap();
        remove_stale(&models);
        assert_eq!(installed(dir.path()), [format!(".m.gguf.add-{}.partial", std::process::id())]);
    }
}
