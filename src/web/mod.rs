//! The web UI's files, embedded in the binary (no file is read at run time) and
//! prepared once: each gets an ETag and a gzip copy. `index.html` names the other
//! files under `/assets/<version>/`, where the version is a hash of every file, so
//! those URLs can be cached forever and an upgrade changes them all at once.

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

/// The placeholder in `index.html` replaced by the bundle's version.
const VERSION_MARK: &str = "{{VERSION}}";

const INDEX: &[u8] = include_bytes!("../../web/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file under `/assets/`: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", CSS, include_bytes!("../../web/app.css")),
    ("app.js", JS, include_bytes!("../../web/app.js")),
    ("api.js", JS, include_bytes!("../../web/api.js")),
    ("dom.js", JS, include_bytes!("../../web/dom.js")),
    ("markdown.js", JS, include_bytes!("../../web/markdown.js")),
    ("auth.js", JS, include_bytes!("../../web/auth.js")),
    ("chat.js", JS, include_bytes!("../../web/chat.js")),
    ("admin.js", JS, include_bytes!("../../web/admin.js")),
    ("audit.js", JS, include_bytes!("../../web/audit.js")),
    ("documents.js", JS, include_bytes!("../../web/documents.js")),
    ("notes.js", JS, include_bytes!("../../web/notes.js")),
    ("workflows.js", JS, include_bytes!("../../web/workflows.js")),
    ("notices.js", JS, include_bytes!("../../web/notices.js")),
    ("voice.js", JS, include_bytes!("../../web/voice.js")),
    ("voice-worklet.js", JS, include_bytes!("../../web/voice-worklet.js")),
    ("icon.svg", SVG, include_bytes!("../../web/icon.svg")),
];

/// One file ready to serve.
pub struct Asset {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The gzip-compressed body, when that is smaller.
    pub gzip: Option<Vec<u8>>,
    /// A strong ETag, quotes included.
    pub etag: String,
}

impl Asset {
    fn new(content_type: &'static str, body: Vec<u8>) -> Asset {
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..20]);
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let gzip =
            encoder.write_all(&body).and_then(|()| encoder.finish()).ok().filter(|g| g.len() < body.len());
        Asset { content_type, body, gzip, etag }
    }

    /// Bytes on the wire for a client that accepts gzip.
    pub fn wire_size(&self) -> usize {
        self.gzip.as_ref().map_or(self.body.len(), Vec::len)
    }
}

/// The whole UI.
pub struct Bundle {
    pub version: String,
    pub index: Asset,
    assets: HashMap<&'static str, Asset>,
}

impl Bundle {
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.get(name)
    }

    /// Raw and gzipped bytes of everything a first visit downloads.
    pub fn sizes(&self) -> (usize, usize) {
        let all = || std::iter::once(&self.index).chain(self.assets.values());
        (all().map(|a| a.body.len()).sum(), all().map(Asset::wire_size).sum())
    }
}

/// The bundle, prepared on first use.
pub fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let mut hasher = Sha256::new();
        hasher.update(INDEX);
        for (name, _, bytes) in FILES {
            hasher.update(name.as_bytes());
            hasher.update(bytes);
        }
        let version = hex::encode(hasher.finalize())[..12].to_string();
        let index = String::from_utf8_lossy(INDEX).replace(VERSION_MARK, &version);
        let assets =
            FILES.iter().map(|(name, kind, bytes)| (*name, Asset::new(kind, bytes.to_vec()))).collect();
        Bundle { index: Asset::new("text/html; charset=utf-8", index.into_bytes()), version, assets }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_versioned_assets_that_exist() {
        let b = bundle();
        let index = String::from_utf8(b.index.body.clone()).unwrap();
        assert!(!index.contains(VERSION_MARK));
        let prefix = format!("/assets/{}/", b.version);
        let named: Vec<&str> =
            index.split(&prefix).skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
        assert!(named.contains(&"app.js") && named.contains(&"app.css"), "{named:?}");
        for name in named {
            assert!(b.asset(name).is_some(), "index.html names a missing asset {name}");
        }
    }

    #[test]
    fn modules_import_only_embedded_files() {
        for (name, _, bytes) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit("from").next().unwrap().trim().trim_matches(|c| "'\";".contains(c));
                let file =
                    target.strip_prefix("./").unwrap_or_else(|| panic!("{name}: non-local import {line}"));
                assert!(bundle().asset(file).is_some(), "{name} imports missing {file}");
            }
            assert!(!text.contains("innerHTML"), "{name}: build DOM nodes, never innerHTML");
            // The SVG namespace is a name, not an address: nothing is fetched from it.
            let text = text.replace("'http://www.w3.org/2000/svg'", "");
            assert!(!text.contains("http://") && !text.contains("https://"), "{name}: nothing from outside");
        }
    }

    /// Prints the download size of the UI; run with `--nocapture` to see it.
    #[test]
    fn the_bundle_stays_small() {
        let (raw, gzip) = bundle().sizes();
        println!("web UI bundle: {raw} bytes, {gzip} bytes gzipped");
        assert!(gzip < 48 * 1024, "the UI grew to {gzip} gzipped bytes; keep it small for phones and Pis");
    }
}
