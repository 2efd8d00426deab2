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

use super::slots::common_prefix;
use super::Owner;
use crate::crypt::FileKey;
use prometheus::{IntCounter, IntGauge};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Conversations shorter than this are cheaper to read again than to keep on disk, and a
/// saved one is only loaded when it spares at least this many prompt tokens.
pub(super) const MIN_TOKENS: usize = 64;

const MAGIC: &[u8; 8] = b"HEARTHKV";
/// An encrypted file's magic (encryption at rest on).
const SEALED_MAGIC: &[u8; 8] = b"HEARTHKX";
const HEAD_AAD: &[u8] = b"hearth-kv-head";
const VERSION: u32 = 2;
/// Conversations waiting for the writer at most: beyond that (a slow disk) one is not
/// saved rather than held in RAM.
const QUEUED: usize = 8;
/// Magic, version, key, owner, token count, state length, checksum.
const HEADER: usize = 8 + 4 + 8 + 8 + 4 + 8 + 4;

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

fn file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.kv"))
}

/// Creates (or truncates) a file readable by this user only.
fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn checksum(owner: Owner, tokens: &[i32], state: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&owner.key().to_le_bytes());
    for t in tokens {
        h.update(&t.to_le_bytes());
    }
    h.update(state);
    h.finalize()
}

fn encode_header(key: u64, owner: Owner, tokens: &[i32], state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + tokens.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&owner.key().to_le_bytes());
    out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(owner, tokens, state).to_le_bytes());
    for t in tokens {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// What [`read`] finds in a file.
struct File {
    owner: Owner,
    tokens: Vec<i32>,
    /// Bytes of entries.
    len: u64,
    /// The entries, when asked for.
    state: Vec<u8>,
}

/// Reads a file's header and tokens; with `state`, also its entries, checked against
/// the checksum. With a key, the file is a sealed one (see [`write_sealed`]).
fn read(path: &Path, key: u64, state: bool, cipher: Option<&FileKey>) -> io::Result<File> {
    if let Some(cipher) = cipher {
        return read_sealed(path, key, state, cipher);
    }
    let mut f = io::BufReader::new(fs::File::open(path)?);
    let mut head = [0u8; HEADER];
    f.read_exact(&mut head)?;
    let (owner, n, len, sum) = parse_head(&head, key)?;
    let size = fs::metadata(path)?.len();
    if size != HEADER as u64 + n as u64 * 4 + len {
        return Err(invalid("truncated or padded"));
    }
    let mut raw = vec![0u8; n * 4];
    f.read_exact(&mut raw)?;
    let tokens = parse_tokens(&raw);
    let mut bytes = Vec::new();
    if state {
        bytes = vec![0u8; len as usize];
        f.read_exact(&mut bytes)?;
        if checksum(owner, &tokens, &bytes) != sum {
            return Err(invalid("checksum mismatch"));
        }
    }
    Ok(File { owner, tokens, len, state: bytes })
}

/// The header's owner, token count, entries' length and checksum, if it is this model's.
fn parse_head(head: &[u8], key: u64) -> io::Result<(Owner, usize, u64, u32)> {
    if head.len() < HEADER {
        return Err(invalid("not a Hearth KV file of this version"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    if &head[..8] != MAGIC || u32_at(8) != VERSION {
        return Err(invalid("not a Hearth KV file of this version"));
    }
    if u64_at(12) != key {
        return Err(invalid("written by another model or build"));
    }
    Ok((Owner::from_key(u64_at(20) as i64), u32_at(28) as usize, u64_at(32), u32_at(40)))
}

fn parse_tokens(raw: &[u8]) -> Vec<i32> {
    raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}

/// The entries' seal names the header's seal (its nonce), so halves of two files
/// cannot be put together.
fn state_aad(sealed_head: &[u8]) -> Vec<u8> {
    let mut aad = b"hearth-kv-state".to_vec();
    aad.extend_from_slice(&sealed_head[..20.min(sealed_head.len())]);
    aad
}

/// An encrypted file: `HEARTHKX | length (u32 LE) | sealed header and tokens | sealed
/// entries`. The two halves are sealed apart so that indexing the folder at start opens
/// only the small first one.
fn write_sealed(out: &mut impl Write, cipher: &FileKey, head: &[u8], state: &[u8]) -> io::Result<u64> {
    let sealed_head = cipher.seal(HEAD_AAD, head);
    let sealed_state = cipher.seal(&state_aad(&sealed_head), state);
    out.write_all(SEALED_MAGIC)?;
    out.write_all(&(sealed_head.len() as u32).to_le_bytes())?;
    out.write_all(&sealed_head)?;
    out.write_all(&sealed_state)?;
    Ok((12 + sealed_head.len() + sealed_state.len()) as u64)
}

fn read_sealed(path: &Path, key: u64, state: bool, cipher: &FileKey) -> io::Result<File> {
    let mut f = io::BufReader::new(fs::File::open(path)?);
    let mut start = [0u8; 12];
    f.read_exact(&mut start)?;
    if &start[..8] != SEALED_MAGIC {
        return Err(invalid("not an encrypted Hearth KV file"));
    }
    let head_len = u32::from_le_bytes(start[8..].try_into().expect("4 bytes")) as usize;
    if head_len > 64 << 20 {
        return Err(invalid("damaged"));
    }
    let mut sealed_head = vec![0u8; head_len];
    f.read_exact(&mut sealed_head)?;
    let head = cipher.open(HEAD_AAD, &sealed_head)?;
    let (owner, n, len, sum) = parse_head(&head, key)?;
    if head.len() != HEADER + n * 4 {
        return Err(invalid("damaged"));
    }
    let tokens = parse_tokens(&head[HEADER..]);
    // The entries' seal: magic, nonce, the entries, the tag.
    let size = fs::metadata(path)?.len();
    if size != 12 + head_len as u64 + 8 + 12 + len + 16 {
        return Err(invalid("truncated or padded"));
    }
    let mut bytes = Vec::new();
    if state {
        let mut sealed = Vec::with_capacity((size - 12 - head_len as u64) as usize);
        f.read_to_end(&mut sealed)?;
        bytes = cipher.open(&state_aad(&sealed_head), &sealed)?;
        if checksum(owner, &tokens, &bytes) != sum {
            return Err(invalid("checksum mismatch"));
        }
    }
    Ok(File { owner, tokens, len, state: bytes })
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Owner = Owner::user(1);
    const BOB: Owner = Owner::user(2);

    fn metrics() -> SpillMetrics {
        SpillMetrics {
            saves: IntCounter::new("s", "s").unwrap(),
            loads: IntCounter::new("l", "l").unwrap(),
            bytes: IntGauge::new("b", "b").unwrap(),
        }
    }

    fn tokens(first: i32, n: usize) -> Vec<i32> {
        (0..n as i32).map(|i| first + i).collect()
    }

    fn state(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Saves conversations and waits for the writer (by closing and reopening the folder).
    fn saved(dir: &Path, budget: u64, items: Vec<(Vec<i32>, Vec<u8>)>) -> Spill {
        let spill = Spill::open(dir.into(), 7, budget, metrics(), None).unwrap();
        for (t, s) in items {
            spill.save(ALICE, t, s, true);
        }
        drop(spill);
        Spill::open(dir.into(), 7, budget, metrics(), None).unwrap()
    }

    #[test]
    fn a_saved_conversation_outlives_the_process_and_comes_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (t, s) = (tokens(100, 200), state(5000, 1));
        let spill = saved(dir.path(), 1 << 20, vec![(t.clone(), s.clone())]);
        assert_eq!(spill.stats().0, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let only = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
            assert_eq!(
                fs::metadata(only).unwrap().permissions().mode() & 0o777,
                0o600,
                "private to its user"
            );
        }
        let mut prompt = t[..150].to_vec();
        prompt.extend([1, 2, 3]);
        let (id, shared) = spill.find(&prompt, 0, ALICE).expect("found by its prefix");
        assert_eq!(shared, 150);
        assert_eq!(
            spill.find(&prompt, 150 - MIN_TOKENS + 1, ALICE),
            None,
            "not worth loading for a few tokens"
        );
        assert_eq!(spill.take(id), Some((t, s)));
        assert_eq!(spill.stats(), (0, 0), "taken out of the cache");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "and off the disk");
    }

    #[test]
    fn short_or_already_continued_conversations_are_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let long = tokens(1, 300);
        let spill = saved(
            dir.path(),
            1 << 20,
            vec![(tokens(1, MIN_TOKENS - 1), state(10, 0)), (long.clone(), state(10, 0))],
        );
        assert_eq!(spill.stats().0, 1);
        spill.save(ALICE, long[..200].to_vec(), state(10, 0), true);
        drop(spill);
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), None).unwrap();
        assert_eq!(spill.stats().0, 1, "a prefix of a saved conversation adds nothing");
        // A longer version of it replaces it.
        let mut longer = long.clone();
        longer.extend(tokens(1000, 50));
        let spill = saved(dir.path(), 1 << 20, vec![(longer.clone(), state(20, 3))]);
        assert_eq!(spill.stats().0, 1);
        let (id, _) = spill.find(&longer, 0, ALICE).unwrap();
        assert_eq!(spill.take(id).unwrap().0, longer);
    }

    #[test]
    fn the_budget_keeps_the_most_recent() {
        let dir = tempfile::tempdir().unwrap();
        let size = (HEADER + 100 * 4 + 1000) as u64;
        let items = (0..4).map(|i| (tokens(i * 1000, 100), state(1000, i as u8))).collect();
        let spill = saved(dir.path(), size * 2, items);
        assert_eq!(spill.stats(), (2, size * 2));
        assert_eq!(spill.find(&tokens(0, 100), 0, ALICE), None, "the oldest went first");
        assert!(spill.find(&tokens(3000, 100), 0, ALICE).is_some());
        assert!(spill.find(&tokens(2000, 100), 0, ALICE).is_some());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn damaged_foreign_or_stray_files_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let spill = saved(
            dir.path(),
            1 << 20,
            vec![(tokens(0, 100), state(4000, 1)), (tokens(5000, 100), state(4000, 2))],
        );
        let ids: Vec<u64> =
            [0, 5000].iter().map(|&f| spill.find(&tokens(f, 100), 0, ALICE).unwrap().0).collect();
        drop(spill);
        // One byte flipped in the first file's entries; the second left whole.
        let path = file(dir.path(), ids[0]);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        fs::write(dir.path().join("9.tmp"), b"half a write").unwrap();
        fs::write(dir.path().join("10.kv"), b"HEARTHKV short").unwrap();
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), None).unwrap();
        assert_eq!(spill.stats().0, 2, "the header still reads; the stray files are gone");
        assert!(!dir.path().join("9.tmp").exists() && !dir.path().join("10.kv").exists());
        assert_eq!(spill.take(ids[0]), None, "the checksum catches the flipped byte");
        assert!(!path.exists());
        assert_eq!(spill.take(ids[1]).map(|(t, _)| t), Some(tokens(5000, 100)));
        // Files another model or build wrote are not read.
        drop(saved(dir.path(), 1 << 20, vec![(tokens(0, 100), state(100, 1))]));
        let other = Spill::open(dir.path().into(), 8, 1 << 20, metrics(), None).unwrap();
        assert_eq!(other.stats().0, 0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn clearing_deletes_saved_and_queued_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let spill = saved(dir.path(), 1 << 20, vec![(tokens(0, 100), state(100, 1))]);
        spill.save(ALICE, tokens(1000, 100), state(100, 2), true);
        spill.clear();
        spill.save(ALICE, tokens(2000, 100), state(100, 3), true);
        drop(spill);
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), None).unwrap();
        assert_eq!(spill.stats().0, 1, "only what was saved after clearing");
        assert!(spill.find(&tokens(2000, 100), 0, ALICE).is_some());
        spill.clear();
        assert_eq!(spill.stats(), (0, 0));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(dir_for(Path::new("/d"), "qwen2.5/../x y"), Path::new("/d/kv-cache/m-qwen2.5_.._x_y"));
        assert_eq!(dir_for(Path::new("/d"), ".."), Path::new("/d/kv-cache/m-.."));
        assert_ne!(model_key(Path::new("/nonexistent/a.gguf")), model_key(Path::new("/nonexistent/b.gguf")));
    }

    #[test]
    fn a_saved_conversation_serves_only_its_owner_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(100, 200);
        let spill = saved(dir.path(), 1 << 20, vec![(t.clone(), state(500, 1))]);
        assert_eq!(spill.find(&t, 0, BOB), None, "Alice's file is not Bob's");
        assert_eq!(spill.find(&t, 0, Owner::CONSOLE), None);
        // Bob's copy of the same tokens does not replace Alice's, nor is it skipped as hers.
        spill.save(BOB, t.clone(), state(500, 2), true);
        drop(spill);
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), None).unwrap();
        assert_eq!(spill.stats().0, 2);
        let (bob, _) = spill.find(&t, 0, BOB).unwrap();
        let (alice, _) = spill.find(&t, 0, ALICE).unwrap();
        assert_ne!(bob, alice);
        assert_eq!(spill.take(bob), Some((t.clone(), state(500, 2))));
        assert_eq!(spill.find(&t, 0, BOB), None);
        assert_eq!(spill.take(alice), Some((t, state(500, 1))));
    }

    #[test]
    fn files_that_name_no_owner_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        drop(saved(dir.path(), 1 << 20, vec![(tokens(0, 100), state(100, 1))]));
        let only = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        // A version 1 file: the same header without the owner.
        let mut bytes = fs::read(&only).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        bytes.drain(20..28);
        fs::write(&only, bytes).unwrap();
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), None).unwrap();
        assert_eq!(spill.stats().0, 0);
        assert!(!only.exists());
    }

    #[test]
    fn with_a_key_files_are_sealed_and_plain_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(FileKey::new(&[9; 32]));
        let marker = b"MARKER-in-the-kv-state".repeat(8);
        {
            let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), Some(key.clone())).unwrap();
            spill.save(ALICE, tokens(1, 100), marker.clone(), true);
        }
        let only = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let bytes = fs::read(&only).unwrap();
        assert!(bytes.starts_with(SEALED_MAGIC));
        assert!(!bytes.windows(6).any(|w| w == b"MARKER"), "no plaintext on disk");
        let spill = Spill::open(dir.path().into(), 7, 1 << 20, metrics(), Some(key)).unwrap();
        let (id, _) = spill.find(&tokens(1, 120), 0, ALICE).unwrap();
        assert_eq!(spill.take(id).unwrap(), (tokens(1, 100), marker.clone()));
        drop(spill);
        // A plain file from before encryption, or another key's, is deleted at start.
        drop(saved(dir.path(), 1 << 20, vec![(tokens(1, 100), marker)]));
        let other = Arc::new(FileKey::new(&[8; 32]));
        drop(Spill::open(dir.path().into(), 7, 1 << 20, metrics(), Some(other)).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
