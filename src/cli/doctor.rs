//! `hearth doctor`: what this box has and lacks, component by component, and how to fix it.

use crate::config::Settings;
use crate::models::{locate, manifest};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Off,
    Missing,
    Failed,
}

struct Check {
    component: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(component: &'static str, detail: impl Into<String>) -> Check {
        Check { component, status: Status::Ok, detail: detail.into(), fix: None }
    }

    fn bad(
        component: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check { component, status, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check and prints a report; fails when anything needed is missing or broken.
pub fn run(settings: &Settings) -> ExitCode {
    let mut checks =
        vec![data_dir(&settings.storage.data_dir), chat_model(settings), speech_to_text(settings)];
    checks.extend(text_to_speech(settings));
    checks.push(wyoming(settings));
    checks.push(encryption(settings));
    checks.push(machine(settings));
    for c in &checks {
        let mark = match c.status {
            Status::Ok => "ok     ",
            Status::Off => "off    ",
            Status::Missing => "MISSING",
            Status::Failed => "FAILED ",
        };
        println!("{mark} {:<16} {}", c.component, c.detail);
        if let Some(fix) = &c.fix {
            println!("        {:<16} fix: {fix}", "");
        }
    }
    let broken = checks.iter().filter(|c| matches!(c.status, Status::Missing | Status::Failed)).count();
    if broken == 0 {
        println!("\nEverything Hearth needs is here.");
        ExitCode::SUCCESS
    } else {
        println!("\n{broken} problem(s); the fixes are listed above.");
        ExitCode::FAILURE
    }
}

fn data_dir(dir: &Path) -> Check {
    const C: &str = "data directory";
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::bad(
            C,
            Status::Failed,
            format!("{}: {e}", dir.display()),
            "check storage.data_dir and its owner",
        );
    }
    let probe = dir.join(".doctor-probe");
    match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        Ok(()) => Check::ok(C, format!("{} (writable)", dir.display())),
        Err(e) => Check::bad(
            C,
            Status::Failed,
            format!("{} is not writable: {e}", dir.display()),
            "run as the service user (sudo -u hearth hearth doctor) or fix the folder's owner",
        ),
    }
}

fn chat_model(settings: &Settings) -> Check {
    const C: &str = "language model";
    let path = match crate::models::resolve_model_path(&settings.model.path, &settings.storage.data_dir) {
        Ok(path) => path,
        Err(e) => return Check::bad(C, Status::Missing, e, "hearth models pull default"),
    };
    match crate::engine::verify_model_file(&path, settings.model.verify_sha256) {
        Ok((summary, _)) => Check::ok(
            C,
            format!(
                "{} ({}, {:.0} MB, checked)",
                path.display(),
                summary.architecture,
                summary.file_size as f64 / 1e6
            ),
        ),
        Err(e) => Check::bad(C, Status::Failed, e, "fetch the model again: hearth models pull default"),
    }
}

fn speech_to_text(settings: &Settings) -> Check {
    const C: &str = "speech to text";
    if !cfg!(feature = "stt") {
        return Check::bad(
            C,
            Status::Off,
            "built without the `stt` feature",
            "rebuild with default features",
        );
    }
    let preferred = crate::voice::stt::PREFERRED_MODELS;
    let path = match locate(&settings.voice.stt_model, preferred, &settings.storage.data_dir) {
        Ok(path) => path,
        Err(e) => {
            let name = preferred.last().copied().unwrap_or_default();
            return Check::bad(C, Status::Missing, e, format!("hearth models pull {name}"));
        }
    };
    match crate::voice::stt::check_model(&path) {
        Ok(()) => Check::ok(C, format!("{} (whisper.cpp, checked)", path.display())),
        Err(e) => Check::bad(C, Status::Failed, e, "fetch or import the whisper model again"),
    }
}

#[cfg(not(feature = "tts"))]
fn text_to_speech(_settings: &Settings) -> Vec<Check> {
    vec![Check::bad(
        "text to speech",
        Status::Off,
        "built without the `tts` feature",
        "rebuild with default features",
    )]
}

/// The voice (and its espeak-ng language), and the ONNX Runtime library it runs on.
#[cfg(feature = "tts")]
fn text_to_speech(settings: &Settings) -> Vec<Check> {
    use crate::voice::tts::{check_library, check_voice, locate_onnxruntime, PREFERRED_VOICES};
    const VOICE: &str = "text to speech";
    const RUNTIME: &str = "onnx runtime";
    let data_dir = &settings.storage.data_dir;
    let voice = match locate(&settings.voice.tts_voice, PREFERRED_VOICES, data_dir) {
        Err(e) => Check::bad(VOICE, Status::Missing, e, "hearth models pull piper-joe"),
        Ok(path) => match check_voice(&path) {
            Ok((language, rate)) => {
                Check::ok(VOICE, format!("{} ({language}, {rate} Hz, espeak-ng ok)", path.display()))
            }
            Err(e) if e.contains("espeak") => {
                Check::bad(VOICE, Status::Failed, e, "sudo apt-get install espeak-ng-data libespeak-ng1")
            }
            Err(e) => {
                Check::bad(VOICE, Status::Failed, e, "fetch the voice again: hearth models pull piper-joe")
            }
        },
    };
    let runtime = match locate_onnxruntime(&settings.voice.onnxruntime, data_dir) {
        Err(e) => Check::bad(RUNTIME, Status::Missing, e, "hearth models pull onnxruntime"),
        Ok(path) => match check_library(&path) {
            Ok(version) => Check::ok(RUNTIME, format!("{} (version {version})", path.display())),
            Err(e) => Check::bad(RUNTIME, Status::Failed, e, "hearth models pull onnxruntime"),
        },
    };
    vec![voice, runtime]
}

/// Encryption at rest: off is a choice, not a problem; on without a readable key source
/// means the service will start locked, which is said.
fn encryption(settings: &Settings) -> Check {
    let key_file = &settings.storage.key_file;
    match crate::crypt::header(&settings.storage.data_dir) {
        Ok(None) => Check {
            component: "encryption",
            status: Status::Off,
            detail: "off: the data dir is readable by whoever has the disk".into(),
            fix: Some("hearth encryption enable (docs/encryption.md)".into()),
        },
        Ok(Some(_)) => match crate::crypt::secret::unattended(key_file) {
            Ok(Some(_)) => Check::ok("encryption", "on; the key comes from a key file or systemd credential"),
            Ok(None) => Check::ok("encryption", "on; the service starts locked until `hearth unlock`"),
            Err(e) => Check::bad(
                "encryption",
                Status::Failed,
                format!("on, but {e}"),
                "fix the key file's owner and mode (0600)",
            ),
        },
        Err(e) => Check::bad("encryption", Status::Failed, e.to_string(), "see docs/encryption.md"),
    }
}

fn wyoming(settings: &Settings) -> Check {
    const C: &str = "wyoming";
    match settings.voice.wyoming_addr() {
        None => Check {
            component: C,
            status: Status::Off,
            detail: "off (set voice.wyoming_listen, e.g. 0.0.0.0:10300, for Home Assistant)".into(),
            fix: None,
        },
        Some(addr) => Check::ok(
            C,
            format!(
                "listens on {addr}; served without a token: {}",
                if settings.voice.wyoming_allow.is_empty() {
                    "nobody".to_string()
                } else {
                    settings.voice.wyoming_allow.join(", ")
                }
            ),
        ),
    }
}

fn machine(settings: &Settings) -> Check {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let avail = system.available_memory() as f64 / (1u64 << 30) as f64;
    let model_gb = manifest().default_model().bytes as f64 / (1u64 << 30) as f64;
    let simd = if cfg!(target_arch = "x86_64") {
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        if avx2 {
            "AVX2"
        } else {
            "no AVX2 (the portable build needs it)"
        }
    } else {
        "NEON"
    };
    let detail = format!(
        "{cores} cores, {simd}, {avail:.1} GiB memory available, generation threads {}",
        settings.inference_threads()
    );
    if simd.starts_with("no ") {
        return Check::bad(
            "machine",
            Status::Failed,
            detail,
            "run on a CPU with AVX2 (x86-64-v3) or build from source",
        );
    }
    if avail < model_gb + 0.5 {
        return Check::bad("machine", Status::Failed, detail, "free memory or use a smaller model");
    }
    Check::ok("machine", detail)
}
