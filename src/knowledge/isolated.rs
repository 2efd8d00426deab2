//! Text extraction of uploaded files in a child process with a wall-clock and a memory
//! bound (issue 25). Parsers of hostile formats (PDF above all) can loop, allocate
//! without end or crash in ways `catch_unwind` cannot stop (aborts, stack overflows):
//! in the job thread that would hang every later job or take the server down. Here the
//! child (`hearth extract`, a hidden subcommand of the same binary) reads the file on
//! stdin and writes the outcome as JSON on stdout; the parent kills it when time runs
//! out and turns any other death into a clear, per-document error.

use super::extract::{extract, DocKind, ExtractError};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand the parent runs.
pub const SUBCOMMAND: &str = "extract";
/// How often the parent looks whether the child has ended.
const POLL: Duration = Duration::from_millis(20);
/// Enough of the child's stderr to explain a crash.
const STDERR_KEEP: u64 = 16 * 1024;

/// The bounds one extraction runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    /// Memory the parser may use beyond what the child holds when it starts, in bytes.
    pub memory_bytes: u64,
}

/// Runs `program extract --kind KIND --memory-bytes N` on `data` and returns the text.
pub fn extract_in_child(
    program: &Path,
    kind: DocKind,
    data: &[u8],
    limits: Limits,
) -> Result<String, ExtractError> {
    let spawn_failed = |e: std::io::Error| ExtractError::Unavailable(format!("cannot start it: {e}"));
    let mut child = Command::new(program)
        .args([SUBCOMMAND, "--kind", kind.as_str(), "--memory-bytes", &limits.memory_bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_failed)?;
    let started = Instant::now();
    let (mut stdin, mut stdout, stderr) =
        (child.stdin.take().unwrap(), child.stdout.take().unwrap(), child.stderr.take().unwrap());
    std::thread::scope(|scope| {
        // Separate threads for each pipe, so a child that stops reading or floods one
        // pipe cannot block the parent; they end when the child dies.
        scope.spawn(move || {
            let _ = stdin.write_all(data); // a child that died early closes the pipe: fine
        });
        let out = scope.spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).map(|_| buf)
        });
        let err = scope.spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.take(STDERR_KEEP).read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        let (status, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (Ok(status), false),
                Ok(None) if started.elapsed() >= limits.timeout => {
                    let _ = child.kill();
                    break (child.wait(), true);
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => {
                    let _ = child.kill();
                    break (Err(e), false);
                }
            }
        };
        let stdout = out.join().unwrap_or_else(|_| Ok(Vec::new())).unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if timed_out {
            return Err(ExtractError::TimedOut(limits.timeout.as_secs()));
        }
        let status = status.map_err(|e| ExtractError::Unavailable(format!("lost track of it: {e}")))?;
        outcome(status, &stdout, &stderr, limits)
    })
}

/// What a finished child's exit status and output mean.
fn outcome(status: ExitStatus, stdout: &[u8], stderr: &str, limits: Limits) -> Result<String, ExtractError> {
    if status.success() {
        if let Ok(result) = serde_json::from_slice::<Result<String, ExtractError>>(stdout) {
            return result;
        }
    }
    // Rust reports a failed allocation on stderr before it aborts; with the address
    // space capped, that is the parser wanting more memory than allowed.
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return Err(ExtractError::OutOfMemory(limits.memory_bytes));
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let how = match (status.signal(), status.code()) {
        (Some(signal), _) => format!("signal {signal}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "unknown exit".into(),
    };
    Err(ExtractError::Crashed(if last.is_empty() { how } else { format!("{how}: {last}") }))
}

/// `hearth extract`: the child. Caps its own address space first, then reads the file
/// from stdin and writes `Result<String, ExtractError>` as JSON to stdout.
pub fn child_main(kind: &str, memory_bytes: u64) -> ExitCode {
    // A server killed mid-job (kill -9, OOM killer) must not leave its extractor
    // running on: the kernel ends the child with its parent.
    // SAFETY: prctl with these arguments only sets this process's death signal.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let Some(kind) = DocKind::parse(kind) else {
        eprintln!("unknown document kind '{kind}'");
        return ExitCode::from(2);
    };
    if let Err(e) = limit_memory(memory_bytes) {
        eprintln!("cannot limit the extractor's memory: {e}");
        return ExitCode::from(2);
    }
    let mut data = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut data) {
        eprintln!("cannot read the document: {e}");
        return ExitCode::from(2);
    }
    let result = extract(kind, &data);
    drop(data);
    let mut stdout = std::io::stdout().lock();
    match serde_json::to_writer(&mut stdout, &result)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the text: {e}");
            ExitCode::from(2)
        }
    }
}

/// Caps the address space at what the process maps now plus `extra` bytes, so the
/// setting means "memory the parser may use" whatever the binary's own size.
fn limit_memory(extra: u64) -> std::io::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let mapped_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))?;
    // rlim_t is 32 bits on some 32-bit ARM boxes: a cap it cannot hold means no cap.
    let cap =
        libc::rlim_t::try_from((mapped_kib * 1024).saturating_add(extra)).unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit { rlim_cur: cap, rlim_max: cap };
    // SAFETY: setrlimit only reads the struct we pass; it affects this process alone.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { timeout: Duration::from_secs(5), memory_bytes: 64 << 20 };

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn a_childs_end_becomes_a_clear_error() {
        let ok = serde_json::to_vec(&Ok::<String, ExtractError>("hello".into())).unwrap();
        assert_eq!(outcome(exited(0), &ok, "", LIMITS), Ok("hello".into()));
        let typed = serde_json::to_vec(&Err::<String, ExtractError>(ExtractError::Encrypted)).unwrap();
        assert_eq!(outcome(exited(0), &typed, "", LIMITS), Err(ExtractError::Encrypted));
        let oom = "memory allocation of 268435456 bytes failed\n";
        assert_eq!(
            outcome(ExitStatus::from_raw(6), b"", oom, LIMITS),
            Err(ExtractError::OutOfMemory(64 << 20))
        );
        let overflow = "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n";
        let Err(ExtractError::Crashed(why)) = outcome(ExitStatus::from_raw(6), b"", overflow, LIMITS) else {
            panic!()
        };
        assert_eq!(why, "signal 6: fatal runtime error: stack overflow");
        assert!(matches!(outcome(exited(0), b"{trunc", "", LIMITS), Err(ExtractError::Crashed(_))));
        assert!(ExtractError::OutOfMemory(64 << 20).to_string().contains("more memory than allowed (64 MiB"));
        assert!(ExtractError::TimedOut(3).to_string().starts_with("extraction timed out after 3 s"));
    }

    #[test]
    fn a_missing_extractor_is_an_error_not_a_panic() {
        let gone = Path::new("/nonexistent/hearth");
        let result = extract_in_child(gone, DocKind::Text, b"hi", LIMITS);
        assert!(
            matches!(result, Err(ExtractError::Unavailable(ref m)) if m.contains("cannot start")),
            "{result:?}"
        );
    }
}
