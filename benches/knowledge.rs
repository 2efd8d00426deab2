//! Knowledge-base benchmark: ingest throughput (MB/s of text through chunking, SQLite
//! and the Tantivy index) and search latency p50/p99 over 100k chunks.
//!
//! `cargo bench --bench knowledge` runs the full size and prints a Markdown table;
//! `cargo bench --bench knowledge -- --write benches/RESULTS.md` also puts it in its
//! section of RESULTS.md. `cargo test --all-targets` runs it at a tiny size as a smoke
//! test. Options after `--`: `--chunks N` (default 100000), `--queries N` (default 500).
//!
//! The corpus is synthetic but shaped like prose: a Zipf-distributed vocabulary of
//! 20,000 words in paragraphs of ~1,000 characters, so posting lists have realistic
//! lengths. Queries are 2-4 words drawn from the same distribution (excluding the
//! commonest 50, as a real question's content words would). Embeddings are not part
//! of this figure (see benches/RESULTS.md): they are bounded by the embedding model.

use hearth::knowledge::chunk::chunk;
use hearth::search::{SearchIndex, SearchQuery};
use hearth::store::{NewChunk, Store};
use std::time::{Duration, Instant};

const VOCABULARY: usize = 20_000;
const PARAGRAPH_CHARS: usize = 1_000;
const CHUNK_CHARS: usize = 1_200;
/// Paragraphs per stored document.
const DOC_PARAGRAPHS: usize = 200;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Words and a Zipf(1.0) sampler over them.
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(rng: &mut Rng) -> Words {
        let letters = b"abcdefghijklmnopqrstuvwxyz";
        let words = (0..VOCABULARY)
            .map(|_| {
                let len = 3 + (rng.next() % 8) as usize;
                (0..len).map(|_| letters[(rng.next() % 26) as usize] as char).collect()
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Words { words, cumulative }
    }

    fn sample(&self, rng: &mut Rng, skip: usize) -> &str {
        let last = *self.cumulative.last().unwrap();
        let low = self.cumulative[skip.min(VOCABULARY - 1)];
        let x = low + rng.unit() * (last - low);
        let i = self.cumulative.partition_point(|c| *c < x).min(VOCABULARY - 1);
        &self.words[i]
    }

    fn paragraph(&self, rng: &mut Rng) -> String {
        let mut p = String::with_capacity(PARAGRAPH_CHARS + 20);
        while p.len() < PARAGRAPH_CHARS {
            p.push_str(self.sample(rng, 0));
            p.push(if rng.next().is_multiple_of(12) { '.' } else { ' ' });
            if p.ends_with('.') {
                p.push(' ');
            }
        }
        p.push('.');
        p
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let chunks = option("--chunks", if full { 100_000 } else { 2_000 });
    let queries = option("--queries", if full { 500 } else { 50 });

    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("hearth.db"))?;
    let user = store.create_user("bench", hearth::store::Role::User)?;
    let index = SearchIndex::open(&dir.path().join("index"))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let words = Words::new(&mut rng);

    // Ingest: documents of DOC_PARAGRAPHS paragraphs, chunked, stored, indexed.
    let documents = chunks.div_ceil(DOC_PARAGRAPHS);
    let texts: Vec<String> = (0..documents)
        .map(|_| (0..DOC_PARAGRAPHS).map(|_| words.paragraph(&mut rng)).collect::<Vec<_>>().join("\n\n"))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let started = Instant::now();
    let mut stored_chunks = 0;
    for (i, text) in texts.iter().enumerate() {
        let queued = store.add_document(user.id, &format!("doc{i}.txt"), "text", text.as_bytes())?;
        let pieces: Vec<NewChunk> =
            chunk(text, CHUNK_CHARS).into_iter().map(|text| NewChunk { text, embedding: None }).collect();
        stored_chunks += pieces.len();
        store.finish_document(queued.document.id, &pieces)?;
        index.sync(&store)?;
    }
    let ingest = started.elapsed();
    let mb = bytes as f64 / 1e6;

    // Search: the API's query (with snippets), one user's documents.
    let mut latencies = Vec::with_capacity(queries);
    let mut hits = 0usize;
    for _ in 0..queries {
        let n = 2 + (rng.next() % 3) as usize;
        let text: Vec<&str> = (0..n).map(|_| words.sample(&mut rng, 50)).collect();
        let query = SearchQuery {
            user_id: user.id,
            text: text.join(" "),
            limit: 20,
            snippet_chars: 160,
            ..SearchQuery::default()
        };
        let t = Instant::now();
        let page = index.search(&query)?;
        latencies.push(t.elapsed());
        hits += page.hits.len();
    }
    latencies.sort();

    let table = [
        "| figure | value |".to_string(),
        "|---|---|".to_string(),
        format!("| corpus | {stored_chunks} chunks in {documents} documents, {mb:.1} MB of text |"),
        format!(
            "| ingest (chunk + SQLite + index) | {:.2} MB/s ({:.0} chunks/s, {:.1} s) |",
            mb / ingest.as_secs_f64(),
            stored_chunks as f64 / ingest.as_secs_f64(),
            ingest.as_secs_f64()
        ),
        format!(
            "| search over {stored_chunks} chunks ({queries} queries, top 20 with snippets) | p50 {:.2} ms, p99 {:.2} ms |",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        ),
        format!("| mean hits per query | {:.1} |", hits as f64 / queries as f64),
    ]
    .join("\n");
    println!("{table}");
    assert!(hits > 0, "queries found nothing: the corpus or the index is broken");
    if let Some(path) = args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)) {
        write_section(std::path::Path::new(path), &table)?;
    }
    Ok(())
}

const START: &str = "<!-- knowledge:start -->";
const END: &str = "<!-- knowledge:end -->";

/// Replaces this benchmark's section of RESULTS.md (appending it the first time).
fn write_section(path: &std::path::Path, table: &str) -> anyhow::Result<()> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "{START}\n## Knowledge base: ingest and search\n\nProduced by `cargo bench --bench knowledge -- --write \
         benches/RESULTS.md` ({} profile) on {cpus} logical CPUs, load average at start {}. Synthetic prose \
         (Zipf vocabulary of {VOCABULARY} words, ~{PARAGRAPH_CHARS}-character paragraphs, {CHUNK_CHARS}-character \
         chunks); ingest is extraction-free text through chunking, SQLite (synchronous=FULL) and the Tantivy \
         index, without embeddings. How it is measured: `benches/knowledge.rs`.\n\n{table}\n{END}\n",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(START), old.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &old[..a], &old[b + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{section}", old.trim_end()),
    };
    std::fs::write(path, new)?;
    Ok(())
}
