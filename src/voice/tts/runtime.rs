//! Finding and checking the ONNX Runtime shared library before `ort` loads it.
//!
//! `ort` loads the library once per process and some bad paths made it hang rather than
//! fail, so a file is checked here first: it exists, is an ELF shared object, opens with
//! dlopen, exports `OrtGetApiBase` and is at least the version `ort` was built for.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest name of the ONNX Runtime library (`hearth models pull onnxruntime`).
pub const ONNXRUNTIME_MODEL: &str = "onnxruntime";

/// Where system packages put ONNX Runtime.
const SYSTEM_DIRS: &[&str] = &["/usr/lib", "/usr/local/lib", "/usr/lib64"];

/// The ONNX Runtime library to use: `configured` (the `voice.onnxruntime` setting: a path
/// or the manifest name), else the one `hearth models pull onnxruntime` installed (data dir,
/// then the model cache), else the system's (`/usr/lib/*/libonnxruntime.so*`).
pub fn locate_onnxruntime(configured: &str, data_dir: &Path) -> Result<PathBuf, String> {
    if !configured.is_empty() {
        return crate::models::locate(configured, &[], data_dir);
    }
    if let Ok(path) = crate::models::locate("", &[ONNXRUNTIME_MODEL], data_dir) {
        return Ok(path);
    }
    system_onnxruntime().ok_or_else(|| {
        "ONNX Runtime is not installed: fetch it with `hearth models pull onnxruntime`, or set \
         voice.onnxruntime to a libonnxruntime.so"
            .to_string()
    })
}

fn system_onnxruntime() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    // Multiarch folders: /usr/lib/x86_64-linux-gnu, /usr/lib/aarch64-linux-gnu.
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let mut found: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so"))
                && p.is_file()
        })
        .collect();
    // The versioned name sorts after the bare link; either is fine, prefer the longest.
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

/// Checks that `path` is an ELF shared object without loading it.
pub fn check_elf(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("ONNX Runtime library {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("ONNX Runtime library {shown} is not a file"));
    }
    let mut header = Vec::with_capacity(18);
    std::fs::File::open(path)
        .and_then(|f| f.take(18).read_to_end(&mut header))
        .map_err(|e| format!("ONNX Runtime library {shown}: {e}"))?;
    if header.len() < 18 || &header[..4] != b"\x7fELF" {
        return Err(format!("ONNX Runtime library {shown} is not a shared library (no ELF header)"));
    }
    // e_type at offset 16, in the file's byte order (EI_DATA: 1 little, 2 big endian).
    let e_type = match header[5] {
        2 => u16::from_be_bytes([header[16], header[17]]),
        _ => u16::from_le_bytes([header[16], header[17]]),
    };
    if e_type != 3 {
        return Err(format!("ONNX Runtime library {shown} is an ELF file but not a shared object"));
    }
    Ok(())
}

/// Opens the library, finds `OrtGetApiBase` and returns ONNX Runtime's version string,
/// refusing versions older than `ort` needs. Opening runs the library's initializers,
/// which is what loading it for real does anyway.
#[cfg(feature = "tts")]
pub fn check_library(path: &Path) -> Result<String, String> {
    check_elf(path)?;
    let shown = path.display();
    // SAFETY: loading a shared library runs its initializers; the file is the one the
    // operator configured (or fetched and verified) for this purpose.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("ONNX Runtime library {shown} cannot be loaded: {e}"))?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the symbol's type is ONNX Runtime's C API.
    let get = unsafe { lib.get::<GetApiBase>(b"OrtGetApiBase\0") }
        .map_err(|_| format!("{shown} is not ONNX Runtime: it has no OrtGetApiBase"))?;
    // SAFETY: OrtGetApiBase takes nothing and returns a static table or null.
    let base = unsafe { get() };
    if base.is_null() {
        return Err(format!("{shown}: OrtGetApiBase returned nothing"));
    }
    // SAFETY: a non-null table from ONNX Runtime; the version string is static.
    let version =
        unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) }.to_string_lossy().into_owned();
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    if minor < ort::MINOR_VERSION {
        return Err(format!(
            "{shown} is ONNX Runtime {version}; Hearth needs 1.{} or newer \
             (`hearth models pull onnxruntime`)",
            ort::MINOR_VERSION
        ));
    }
    // Keep it loaded: ort opens the same file next, and unloading ONNX Runtime is unsafe.
    std::mem::forget(lib);
    Ok(version)
}
