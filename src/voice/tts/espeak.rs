//! Phonemes from espeak-ng (the system `libespeak-ng`), through the few calls Piper needs.
//!
//! espeak-ng keeps global state and is not thread-safe, so every call goes through one
//! process-wide lock; only synthesis threads call it.

use super::text::{clauses, Clause};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// Return an error instead of calling `exit()` when the data folder is missing.
const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

/// espeak-ng's state: initialized once per process (or why it failed), and the voice set.
static ESPEAK: Mutex<Option<Result<Option<String>, String>>> = Mutex::new(None);

/// Phonemizes one sentence in `voice` (an espeak-ng voice name such as `en-us`), the way
/// Piper does: IPA per clause, the clause's punctuation put back (`,` `;` `:` followed
/// by a space), language-switch marks such as `(fr)` removed.
pub(super) fn phonemize(voice: &str, sentence: &str) -> Result<String, String> {
    let mut guard = ESPEAK.lock().unwrap_or_else(|e| e.into_inner());
    let current = guard.get_or_insert_with(initialize).as_mut().map_err(|e| e.clone())?;
    if current.as_deref() != Some(voice) {
        let name = CString::new(voice).map_err(|_| format!("bad espeak-ng voice name {voice:?}"))?;
        // SAFETY: espeak-ng is initialized and the lock is held; `name` is NUL-terminated.
        let rc = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
        if rc != EE_OK {
            *current = None;
            return Err(format!(
                "espeak-ng has no voice '{voice}' (error {rc}); is espeak-ng-data installed?"
            ));
        }
        *current = Some(voice.to_string());
    }
    let mut out = String::new();
    for Clause { text, terminator } in clauses(sentence) {
        // SAFETY: as above.
        let phonemes = unsafe { text_to_phonemes(&text)? };
        out.push_str(&strip_language_marks(&phonemes));
        if let Some(t) = terminator {
            out.push(t);
            if matches!(t, ',' | ';' | ':') {
                out.push(' ');
            }
        }
    }
    Ok(out.trim_end().to_string())
}

fn initialize() -> Result<Option<String>, String> {
    // SAFETY: called once, under the lock. A null path means espeak-ng's own data folder
    // (or $ESPEAK_DATA_PATH).
    let rate = unsafe {
        espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), ESPEAK_INITIALIZE_DONT_EXIT)
    };
    if rate <= 0 {
        return Err("espeak-ng failed to initialize: is espeak-ng-data installed?".into());
    }
    Ok(None)
}

/// All the clauses espeak-ng finds in `text`, phonemized and joined by spaces.
///
/// # Safety
/// espeak-ng must be initialized and its lock held.
unsafe fn text_to_phonemes(text: &str) -> Result<String, String> {
    let text = CString::new(text.replace('\0', " ")).map_err(|e| e.to_string())?;
    let mut ptr = text.as_ptr() as *const c_void;
    let mut parts = Vec::new();
    // espeak-ng stops at each clause end and moves `ptr` on; null when all is done. The
    // bound guards against a pointer that never advances.
    for _ in 0..=text.as_bytes().len() {
        if ptr.is_null() {
            break;
        }
        // SAFETY: `ptr` points into `text`, which outlives the loop; the returned buffer is
        // espeak-ng's own and is copied before the next call.
        let phonemes = unsafe { espeak_TextToPhonemes(&mut ptr, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA) };
        if phonemes.is_null() {
            break;
        }
        let part = unsafe { CStr::from_ptr(phonemes) }.to_string_lossy();
        let part = part.trim();
        if !part.is_empty() {
            parts.push(part.to_string());
        }
    }
    Ok(parts.join(" "))
}

/// Removes espeak-ng's language-switch marks: `(fr)bõʒˈuʁ(en)` becomes `bõʒˈuʁ`.
fn strip_language_marks(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut depth = 0usize;
    for c in phonemes.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_marks_are_removed() {
        assert_eq!(strip_language_marks("(fr)bõʒˈuʁ(en) wˈɜːld"), "bõʒˈuʁ wˈɜːld");
    }

    #[test]
    fn punctuation_comes_back_after_each_clause() {
        let p = phonemize("en-us", "Hello, world!").unwrap();
        assert!(p.contains(", ") && p.ends_with('!'), "{p}");
        let q = phonemize("en-us", "How are you?").unwrap();
        assert!(q.ends_with('?'), "{q}");
        let none = phonemize("en-us", "Hello world").unwrap();
        assert!(!none.contains(',') && none.chars().last().is_some_and(char::is_alphabetic), "{none}");
    }

    #[test]
    fn an_unknown_voice_is_an_error_and_the_next_call_works() {
        assert!(phonemize("xx-no-such-voice", "hi").is_err());
        assert!(!phonemize("en-us", "hi").unwrap().is_empty());
    }
}
