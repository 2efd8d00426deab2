//! The numbers behind keeping the index in RAM on an encrypted box (docs/encryption.md):
//! a household's corpus in an encrypted database, indexed in RAM and on disk, with the
//! time to build each and the search p99. Run by hand:
//! `cargo test --release --lib search::measure -- --ignored --nocapture`.

use super::{SearchIndex, SearchQuery};
use crate::crypt::{Header, Secret};
use crate::store::{NewChunk, Role, Store};
use std::time::Instant;

const WORDS: &[&str] = &[
    "garden",
    "kitchen",
    "recipe",
    "school",
    "holiday",
    "invoice",
    "doctor",
    "car",
    "insurance",
    "birthday",
    "winter",
    "heating",
    "boiler",
    "password",
    "router",
    "grandmother",
    "football",
    "piano",
    "lesson",
    "train",
    "ticket",
    "tax",
    "return",
    "bread",
    "oven",
    "shelf",
    "paint",
    "window",
    "roof",
    "gutter",
    "cat",
    "vet",
];

fn text(seed: usize, words: usize) -> String {
    (0..words).map(|i| WORDS[(seed * 31 + i * 7 + i * i) % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

fn p99(index: &SearchIndex, user: i64) -> f64 {
    let mut times: Vec<f64> = (0..300)
        .map(|i| {
            let q = SearchQuery { user_id: user, text: text(i, 3), limit: 10, ..SearchQuery::default() };
            let t = Instant::now();
            index.search(&q).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() * 99 / 100]
}

#[test]
#[ignore = "a measurement, run by hand"]
fn measure_index_in_ram_against_disk() {
    let (messages, documents, chunks_each) = (20_000, 1_000, 5);
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() };
    let (_, keys) = Header::create(&Secret::from_bytes(b"measurement secret".to_vec())).unwrap();
    let store = Store::open_keyed(&dir.path().join("hearth.db"), Some(&keys.db)).unwrap();
    let user = store.create_user("alice", Role::User).unwrap().id;
    let mut bytes = 0;
    for i in 0..messages {
        let t = text(i, 30);
        bytes += t.len();
        store.add_note(user, "message", &t).unwrap();
    }
    for d in 0..documents {
        let doc =
            store.add_document(user, &format!("doc{d}.md"), "markdown", format!("{d}").as_bytes()).unwrap();
        let chunks: Vec<NewChunk> =
            (0..chunks_each).map(|c| NewChunk { text: text(d * 10 + c, 150), embedding: None }).collect();
        bytes += chunks.iter().map(|c| c.text.len()).sum::<usize>();
        store.finish_document(doc.document.id, &chunks).unwrap();
    }
    let items = messages + documents * chunks_each;
    println!("corpus: {items} items, {:.1} MB of text, encrypted database", bytes as f64 / 1e6);

    let t = Instant::now();
    let ram = SearchIndex::in_ram().unwrap();
    ram.rebuild(&store, &|_, _| {}).unwrap();
    let ram_build = t.elapsed().as_secs_f64();
    let ram_p99 = p99(&ram, user);

    let disk_dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let disk = SearchIndex::open(&disk_dir.path().join("index")).unwrap();
    disk.rebuild(&store, &|_, _| {}).unwrap();
    let disk_build = t.elapsed().as_secs_f64();
    let disk_p99 = p99(&disk, user);
    let disk_bytes: u64 = std::fs::read_dir(disk_dir.path().join("index"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    println!("in RAM:  built in {ram_build:.2} s, search p99 {ram_p99:.2} ms");
    println!(
        "on disk: built in {disk_build:.2} s, search p99 {disk_p99:.2} ms, {:.1} MB of files",
        disk_bytes as f64 / 1e6
    );
    assert_eq!(ram.num_docs(), disk.num_docs());
}
