//! Conversations forgotten from RAM wait on disk.
//!
//! Parked conversations (see `park`) are bounded by a token budget and by the number of
//! sequences, so a household with more conversations than that used to lose the cache
//! of the least recently used one: its next turn read the whole history again, seconds
//! per few hundred tokens on a small CPU. Such a conversation's keys and values are now
//! written to `<data_dir>/kv-cache/<model>/` instead, by a writer thread so that running
//! requests do not wait on the disk, and its next turn reads them back: a file of a few
//! MB instead of a prompt evaluation. The files outlive the process, so conversations
//! saved before a restart continue fast after it.
//!
//! The files are a cache. They are bounded by `model.disk_cache_mb` (the least recently
//! saved or used go first), each carries a checksum and the identity of the model and
//! build that wrote it, and a file that fails either check is deleted: its conversation
//! is read again, as it would be without this cache.
//!
//! Each file also names its owner (see [`Owner`]), and only that owner's prompts are served
//! from it. Files of version 1 named none: they are deleted at start like any stale file.

mod format;
#[cfg(test)]
mod tests;

use super::slots::common_prefix;
use super::Owner;
use crate::crypt::FileKey;
use format::{encode_header, file, invalid, private_file, read, write_sealed, File, HEADER, VERSION};
use prometheus::{IntCounter, IntGauge};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Conversations shorter than this are cheaper to read again than to keep on disk, and a
/// saved one is only loaded when it spares at least this many prompt tokens.
pub(super) const MIN_TOKENS: usize = 64;
/// Conversations waiting for the writer at most: beyond that (a slow disk) one is not
/// saved rather than held in RAM.
const QUEUED: usize = 8;

/// Counters for `/metrics`.
#[derive(Clone)]
pub(super) struct SpillMetrics {
    pub saves: IntCounter,
    pub loads: IntCounter,
    pub bytes: IntGauge,
}

struct Entry {
    id: u64,
    owner: Owner,
    tokens: Vec<i32>,
    bytes: u64,
    used: u64,
}

struct Index {
    entries: Vec<Entry>,
    next_id: u64,
    clock: u64,
    bytes: u64,
    /// Raised by [`Spill::clear`]: writes queued before it are dropped.
    epoch: u64,
}

struct Shared {
    dir: PathBuf,
    key: u64,
    budget: u64,
    index: Mutex<Index>,
    metrics: SpillMetrics,
    /// Encryption at rest: files are sealed with this key.
    cipher: Option<Arc<FileKey>>,
}

/// A conversation queued for the writer, with the epoch it was queued in.
struct Saved {
    owner: Owner,
    tokens: Vec<i32>,
    state: Vec<u8>,
    epoch: u64,
}

/// The saved conversations of one model.
pub(super) struct Spill {
    shared: Arc<Shared>,
    writer: Option<SyncSender<Saved>>,
    thread: Option<JoinHandle<()>>,
}

/// Identifies what may read a file: the model (its name and size) and this build, whose
/// llama.cpp wrote the entries in its own layout.
pub(super) fn model_key(model: &Path) -> u64 {
    let size = fs::metadata(model).map_or(0, |m| m.len());
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let id = format!("{name}\0{size}\0{}\0{VERSION}", env!("CARGO_PKG_VERSION"));
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `<data_dir>/kv-cache/<model id>`, the id kept to characters safe in a file name.
pub(super) fn dir_for(data_dir: &Path, model_id: &str) -> PathBuf {
    let safe: String = model_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    // Never "", "." or "..": those name no folder of its own.
    data_dir.join("kv-cache").join(format!("m-{safe}"))
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops entries (and their files) until the total fits the budget, oldest use first.
    fn trim(&self, index: &mut Index) {
        while index.bytes > self.budget && !index.entries.is_empty() {
            let oldest = (0..index.entries.len()).min_by_key(|&i| index.entries[i].used).expect("non-empty");
            let e = index.entries.swap_remove(oldest);
            index.bytes -= e.bytes;
            let _ = fs::remove_file(file(&self.dir, e.id));
            tracing::debug!(
                tokens = e.tokens.len(),
                "dropped a saved conversation: over the disk cache budget"
            );
        }
        self.metrics.bytes.set(index.bytes as i64);
    }

    /// Writes one conversation (to a temporary name, then renamed) and indexes it,
    /// replacing saved earlier versions of it (same owner, tokens it continues). Not
    /// synced: a file cut short by a power loss fails its checksum, and one taken back or
    /// replaced within the kernel's writeback delay (~30 s) never wears the flash of an SD
    /// card.
    fn write(&self, Saved { owner, tokens, state, epoch }: Saved) {
        let id = {
            let mut index = self.index();
            if index.epoch != epoch {
                return; // cleared since it was queued
            }
            index.next_id += 1;
            index.next_id
        };
        let (tmp, path) = (self.dir.join(format!("{id}.tmp")), file(&self.dir, id));
        let written = (|| {
            // The folder may have been deleted to free space: that only loses what was in it.
            // Readable by this user only: the files hold what was said.
            crate::private_files::private_dir(&self.dir)?;
            let mut f = io::BufWriter::new(private_file(&tmp)?);
            let head = encode_header(self.key, owner, &tokens, &state);
            let size = match &self.cipher {
                Some(cipher) => write_sealed(&mut f, cipher, &head, &state)?,
                None => {
                    f.write_all(&head)?;
                    f.write_all(&state)?;
                    (head.len() + state.len()) as u64
                }
            };
            f.flush()?;
            drop(f);
            fs::rename(&tmp, &path).map(|()| size)
        })();
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not save a conversation's cache");
                return;
            }
        };
        let mut index = self.index();
        if index.epoch != epoch {
            let _ = fs::remove_file(&path);
            return;
        }
        let mut i = 0;
        while i < index.entries.len() {
            if index.entries[i].owner == owner && tokens.starts_with(&index.entries[i].tokens) {
                let old = index.entries.swap_remove(i);
                index.bytes -= old.bytes;
                let _ = fs::remove_file(file(&self.dir, old.id));
            } else {
                i += 1;
            }
        }
        index.clock += 1;
        let used = index.clock;
        index.entries.push(Entry { id, owner, tokens, bytes, used });
        index.bytes += bytes;
        self.metrics.saves.inc();
        self.trim(&mut index);
    }
}

impl Spill {
    /// Opens (creating) a model's folder, indexes the files that are valid for this model and
    /// build, deletes the rest, and starts the writer thread.
    /// With `cipher` (encryption at rest), files are sealed with it, and files that it
    /// does not open (plain ones from before, another key's) are deleted like stale ones.
    pub fn open(
        dir: PathBuf,
        key: u64,
        budget_bytes: u64,
        metrics: SpillMetrics,
        cipher: Option<Arc<FileKey>>,
    ) -> io::Result<Spill> {
        crate::private_files::private_dir(&dir)?;
        let mut found = Vec::new();
        for item in fs::read_dir(&dir)? {
            let path = item?.path();
            let id = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
            let is_kv = path.extension().is_some_and(|e| e == "kv");
            let checked = match id.filter(|_| is_kv) {
                Some(id) => read(&path, key, false, cipher.as_deref()).map(|f| (id, f)),
                None => Err(invalid("not a cache file")),
            };
            match checked {
                Ok((id, f)) => {
                    let mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
                    found.push((mtime, id, f));
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "removing a stale KV cache file");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        found.sort_by_key(|(mtime, id, _)| (*mtime, *id));
        let mut index = Index { entries: Vec::new(), next_id: 0, clock: 0, bytes: 0, epoch: 0 };
        for (_, id, File { owner, tokens, len, .. }) in found {
            index.clock += 1;
            index.next_id = index.next_id.max(id);
            let bytes =
                fs::metadata(file(&dir, id)).map_or((HEADER + tokens.len() * 4) as u64 + len, |m| m.len());
            index.bytes += bytes;
            index.entries.push(Entry { id, owner, tokens, bytes, used: index.clock });
        }
        let shared =
            Arc::new(Shared { dir, key, budget: budget_bytes, index: Mutex::new(index), metrics, cipher });
        shared.trim(&mut shared.index());
        let (tx, rx) = sync_channel::<Saved>(QUEUED);
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hearth-kv-save".into())
            .spawn(move || rx.into_iter().for_each(|saved| writer.write(saved)))?;
        Ok(Spill { shared, writer: Some(tx), thread: Some(thread) })
    }

    /// Queues `owner`'s conversation for saving, unless it is too short or a saved
    /// conversation of theirs already continues it. Unless told to `wait` (the engine is
    /// stopping), it is dropped when the writer is already [`QUEUED`] conversations behind.
    pub fn save(&self, owner: Owner, tokens: Vec<i32>, state: Vec<u8>, wait: bool) {
        if tokens.len() < MIN_TOKENS || state.is_empty() {
            return;
        }
        let epoch = {
            let index = self.shared.index();
            if index.entries.iter().any(|e| e.owner == owner && e.tokens.starts_with(&tokens)) {
                return;
            }
            index.epoch
        };
        let Some(writer) = &self.writer else { return };
        let saved = Saved { owner, tokens, state, epoch };
        if wait {
            let _ = writer.send(saved);
        } else if let Err(TrySendError::Full(_)) = writer.try_send(saved) {
            tracing::debug!("the disk cache is still writing; a conversation was not saved");
        }
    }

    /// Deletes every saved conversation, and drops those still queued for writing.
    pub fn clear(&self) {
        let mut index = self.shared.index();
        index.epoch += 1;
        for e in std::mem::take(&mut index.entries) {
            let _ = fs::remove_file(file(&self.shared.dir, e.id));
        }
        index.bytes = 0;
        self.shared.metrics.bytes.set(0);
    }

    /// The conversation saved for `owner` sharing the longest prefix with `prompt`, if it
    /// spares at least `MIN_TOKENS` more than `reuse` (what the KV cache and RAM offer). At
    /// least one prompt token is left to evaluate. Returns its id and the tokens it spares.
    pub fn find(&self, prompt: &[i32], reuse: usize, owner: Owner) -> Option<(u64, usize)> {
        let limit = prompt.len().saturating_sub(1);
        let index = self.shared.index();
        index
            .entries
            .iter()
            .filter(|e| e.owner == owner)
            .map(|e| (e.id, common_prefix(&e.tokens, prompt).min(limit)))
            .max_by_key(|(_, shared)| *shared)
            .filter(|(_, shared)| *shared >= reuse + MIN_TOKENS)
    }

    /// Takes a saved conversation out of the cache: reads and checks its file, then
    /// deletes it (the conversation is live again, and is saved anew when forgotten).
    /// Returns its tokens and entries, or `None` when the file is gone or fails its check.
    pub fn take(&self, id: u64) -> Option<(Vec<i32>, Vec<u8>)> {
        let expected = {
            let mut index = self.shared.index();
            let at = index.entries.iter().position(|e| e.id == id)?;
            let e = index.entries.swap_remove(at);
            index.bytes -= e.bytes;
            self.shared.metrics.bytes.set(index.bytes as i64);
            (e.owner, e.tokens)
        };
        let path = file(&self.shared.dir, id);
        let got = read(&path, self.shared.key, true, self.shared.cipher.as_deref());
        let _ = fs::remove_file(&path);
        match got {
            Ok(f) if (f.owner, &f.tokens) == (expected.0, &expected.1) => {
                self.shared.metrics.loads.inc();
                Some((f.tokens, f.state))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a saved conversation could not be read");
                None
            }
        }
    }

    /// Saved conversations and their total size in bytes.
    #[cfg(test)]
    fn stats(&self) -> (usize, u64) {
        let index = self.shared.index();
        (index.entries.len(), index.bytes)
    }
}

impl Drop for Spill {
    /// Finishes the queued writes.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
