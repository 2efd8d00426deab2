//! What documents Hearth reads, and their plain text: UTF-8 text and Markdown as they
//! are, HTML through `html2text`, PDF through `pdf-extract`. Extraction of hostile or
//! broken files must fail with a message, never take the process down: the PDF path
//! runs under `catch_unwind`, and the server runs all of this in a bounded child
//! process (`isolated.rs`) because a panic is not the only way a parser can fail.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The supported kinds, as shown in errors.
pub const SUPPORTED: &[&str] =
    &["text (.txt)", "Markdown (.md, .markdown)", "HTML (.html, .htm)", "PDF (.pdf)"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Text => "text",
            DocKind::Markdown => "markdown",
            DocKind::Html => "html",
            DocKind::Pdf => "pdf",
        }
    }

    pub fn parse(s: &str) -> Option<DocKind> {
        Some(match s {
            "text" => DocKind::Text,
            "markdown" => DocKind::Markdown,
            "html" => DocKind::Html,
            "pdf" => DocKind::Pdf,
            _ => return None,
        })
    }
}

/// Serializable: the extractor child (`isolated.rs`) sends it to the server as JSON.
#[derive(Debug, thiserror::Error, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ExtractError {
    #[error("unsupported file type; supported: {}", SUPPORTED.join(", "))]
    Unsupported,
    #[error("the file is not UTF-8 text")]
    NotText,
    #[error("the PDF is encrypted with a password; remove the password and upload it again")]
    Encrypted,
    #[error("the PDF could not be read: {0}")]
    BrokenPdf(String),
    #[error("the document contains no text")]
    Empty,
    /// The extractor ran past `knowledge.extract_timeout_secs` and was stopped.
    #[error("extraction timed out after {0} s (knowledge.extract_timeout_secs); the file may be hostile or too complex")]
    TimedOut(u64),
    /// The extractor wanted more than `knowledge.extract_memory_bytes`.
    #[error(
        "extraction needed more memory than allowed ({} MiB, knowledge.extract_memory_bytes); the file may be hostile or too complex",
        .0 >> 20
    )]
    OutOfMemory(u64),
    /// The extractor process died some other way (a crash in the parser).
    #[error("the extractor crashed reading this file ({0})")]
    Crashed(String),
    /// The extractor process could not be started or followed (not the file's fault).
    #[error("cannot run the document extractor: {0}")]
    Unavailable(String),
}

/// Decides the kind from the content (PDF magic), the file name's extension and the
/// declared content type, in that order. Text kinds must be UTF-8 without NUL bytes.
pub fn detect(name: &str, content_type: Option<&str>, data: &[u8]) -> Result<DocKind, ExtractError> {
    let mut text = TextCheck::default();
    text.feed(data);
    detect_streamed(name, content_type, data, text.is_text())
}

/// [`detect`] for a file that was never whole in memory: `head` is its first bytes
/// (at least [`HEAD_BYTES`] when it is that long) and `is_text` is [`TextCheck`]'s
/// verdict over all of it.
pub fn detect_streamed(
    name: &str,
    content_type: Option<&str>,
    head: &[u8],
    is_text: bool,
) -> Result<DocKind, ExtractError> {
    if head.starts_with(b"%PDF-") {
        return Ok(DocKind::Pdf);
    }
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let by_extension = match extension.as_deref() {
        Some("txt" | "text") => Some(DocKind::Text),
        Some("md" | "markdown") => Some(DocKind::Markdown),
        Some("html" | "htm") => Some(DocKind::Html),
        Some("pdf") => return Err(ExtractError::BrokenPdf("it does not start with %PDF-".into())),
        _ => None,
    };
    let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let by_type = match mime.as_deref() {
        Some("text/plain") => Some(DocKind::Text),
        Some("text/markdown" | "text/x-markdown") => Some(DocKind::Markdown),
        Some("text/html") => Some(DocKind::Html),
        _ => None,
    };
    let kind = by_extension.or(by_type).ok_or(ExtractError::Unsupported)?;
    if !is_text {
        return Err(ExtractError::NotText);
    }
    Ok(kind)
}

/// How much of a file's start [`detect_streamed`] looks at.
pub const HEAD_BYTES: usize = 8;

/// Checks piece by piece that bytes are UTF-8 without NUL bytes, also when a
/// character is split between two pieces (uploads arrive in chunks).
#[derive(Debug, Default)]
pub struct TextCheck {
    /// The start of a character cut off at the end of the last piece (at most 3 bytes).
    carry: Vec<u8>,
    bad: bool,
}

impl TextCheck {
    pub fn feed(&mut self, piece: &[u8]) {
        if self.bad {
            return;
        }
        let joined;
        let bytes = if self.carry.is_empty() {
            piece
        } else {
            joined = [self.carry.as_slice(), piece].concat();
            &joined
        };
        if bytes.contains(&0) {
            self.bad = true;
            return;
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => self.carry.clear(),
            // Only an incomplete last character: it may finish in the next piece.
            Err(e) if e.error_len().is_none() => self.carry = bytes[e.valid_up_to()..].to_vec(),
            Err(_) => self.bad = true,
        }
    }

    /// Whether everything fed so far is text (an unfinished last character is not).
    pub fn is_text(&self) -> bool {
        !self.bad && self.carry.is_empty()
    }
}

/// The document's text, paragraphs separated by blank lines.
pub fn extract(kind: DocKind, data: &[u8]) -> Result<String, ExtractError> {
    let text = match kind {
        DocKind::Text | DocKind::Markdown => {
            let s = std::str::from_utf8(data).map_err(|_| ExtractError::NotText)?;
            s.strip_prefix('\u{feff}').unwrap_or(s).replace("\r\n", "\n")
        }
        DocKind::Html => html2text::config::plain_no_decorate()
            .no_table_borders()
            .string_from_read(data, 10_000)
            .map_err(|_| ExtractError::NotText)?,
        DocKind::Pdf => pdf_text(data)?,
    };
    if text.trim().is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(text)
}

fn pdf_text(data: &[u8]) -> Result<String, ExtractError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let document =
            pdf_extract::Document::load_mem(data).map_err(|e| ExtractError::BrokenPdf(e.to_string()))?;
        let encrypted = document.is_encrypted();
        drop(document);
        // pdf-extract tries the empty user password, which opens "owner-only" PDFs.
        pdf_extract::extract_text_from_mem(data).map_err(|e| {
            if encrypted {
                ExtractError::Encrypted
            } else {
                ExtractError::BrokenPdf(e.to_string())
            }
        })
    }));
    match outcome {
        Ok(result) => result,
        Err(_) => Err(ExtractError::BrokenPdf("the PDF's structure is damaged".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_detected_by_content_name_and_type() {
        assert_eq!(detect("a.TXT", None, b"hi"), Ok(DocKind::Text));
        assert_eq!(detect("notes", Some("text/markdown; charset=utf-8"), b"# hi"), Ok(DocKind::Markdown));
        assert_eq!(detect("x.htm", None, b"<p>hi</p>"), Ok(DocKind::Html));
        assert_eq!(detect("report", None, b"%PDF-1.4 ..."), Ok(DocKind::Pdf));
        assert_eq!(detect("a.docx", None, b"PK\x03\x04"), Err(ExtractError::Unsupported));
        assert_eq!(detect("a.txt", None, b"\xff\xfe\x00h"), Err(ExtractError::NotText));
        assert!(matches!(detect("a.pdf", None, b"hello"), Err(ExtractError::BrokenPdf(_))));
        assert!(ExtractError::Unsupported.to_string().contains("PDF (.pdf)"));
    }

    #[test]
    fn text_is_checked_across_pieces() {
        let text = "grüße – 🏠 home".as_bytes();
        for cut in 0..text.len() {
            let mut check = TextCheck::default();
            check.feed(&text[..cut]);
            check.feed(&text[cut..]);
            assert!(check.is_text(), "cut at {cut}");
        }
        let mut check = TextCheck::default();
        check.feed(&text[..5]); // inside 'ß'
        assert!(!check.is_text(), "an unfinished character is not text yet");
        for bad in [&b"a\x00b"[..], b"\xff", b"\xc3\x28"] {
            let mut check = TextCheck::default();
            check.feed(b"ok ");
            check.feed(bad);
            check.feed(b" more");
            assert!(!check.is_text(), "{bad:?}");
        }
        assert_eq!(detect_streamed("a.txt", None, b"hi", false), Err(ExtractError::NotText));
        assert_eq!(detect_streamed("x", None, b"%PDF-1.7", false), Ok(DocKind::Pdf));
    }

    #[test]
    fn html_becomes_text_without_markup() {
        let html = b"<html><head><script>var x = 1;</script><style>p{}</style></head>
            <body><h1>Title</h1><p>First <b>bold</b> paragraph.</p><p>Second.</p></body></html>";
        let text = extract(DocKind::Html, html).unwrap();
        assert!(text.contains("First bold paragraph."), "{text}");
        assert!(!text.contains('<') && !text.contains("var x"), "{text}");
    }

    #[test]
    fn pdf_text_is_extracted_and_a_password_is_reported() {
        let text = extract(DocKind::Pdf, include_bytes!("../../tests/data/house.pdf")).unwrap();
        assert!(text.contains("blue flowerpot") && text.contains("Tuesday evenings"), "{text}");
        let locked = extract(DocKind::Pdf, include_bytes!("../../tests/data/locked.pdf"));
        assert_eq!(locked, Err(ExtractError::Encrypted));
    }

    #[test]
    fn broken_and_empty_documents_fail_cleanly() {
        assert!(matches!(extract(DocKind::Pdf, b"%PDF-1.4\n garbage"), Err(ExtractError::BrokenPdf(_))));
        assert_eq!(extract(DocKind::Text, b"  \n\n "), Err(ExtractError::Empty));
        assert_eq!(extract(DocKind::Text, b"\xef\xbb\xbfhi\r\nthere").unwrap(), "hi\nthere");
    }
}
