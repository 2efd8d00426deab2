use super::format::*;
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
        assert_eq!(fs::metadata(only).unwrap().permissions().mode() & 0o777, 0o600, "private to its user");
    }
    let mut prompt = t[..150].to_vec();
    prompt.extend([1, 2, 3]);
    let (id, shared) = spill.find(&prompt, 0, ALICE).expect("found by its prefix");
    assert_eq!(shared, 150);
    assert_eq!(spill.find(&prompt, 150 - MIN_TOKENS + 1, ALICE), None, "not worth loading for a few tokens");
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
    let ids: Vec<u64> = [0, 5000].iter().map(|&f| spill.find(&tokens(f, 100), 0, ALICE).unwrap().0).collect();
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
