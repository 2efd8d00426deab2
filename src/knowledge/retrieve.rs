//! Retrieval for chat: the user's own chunks that best match a question, ranked by
//! BM25 and, with an embedding model, by cosine similarity too, the two lists fused by
//! reciprocal rank. What fits the token budget goes into the prompt, numbered, and
//! comes back as citations.

use super::{excerpt, Knowledge, Sources};
use crate::search::{HitKind, SearchQuery};
use crate::store::ChunkRow;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Candidates taken from each ranking before fusion.
const CANDIDATES: usize = 20;
/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f64 = 60.0;
/// Characters per token, for the budget (a deliberate over-estimate of the tokens).
const CHARS_PER_TOKEN: usize = 4;
const SNIPPET_CHARS: usize = 200;

/// A source the answer may rely on.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct Citation {
    /// The number the prompt gave it: `[n]`.
    pub n: usize,
    pub document_id: i64,
    pub document_name: String,
    pub chunk_id: i64,
    /// The chunk's position in its document (0-based).
    pub chunk: i64,
    pub snippet: String,
}

/// The prompt to send in place of the user's message, and its sources.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub prompt: String,
    pub citations: Vec<Citation>,
    /// The excerpts' words, for [`super::Citer`] to cite the reply with.
    pub sources: Sources,
}

impl Retrieved {
    /// The excerpts' labels: a reply that begins to write one out is copying the excerpts
    /// (the default model did, once they came best last), so generation stops there.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for c in &self.citations {
            let label = label(&c.document_name);
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels
    }
}

/// What an excerpt is headed with in the prompt.
fn label(document_name: &str) -> String {
    format!("From {document_name}:")
}

impl Knowledge {
    /// Retrieves for `question`; `None` when nothing of this user's matches.
    pub async fn retrieve(&self, user_id: i64, question: &str) -> Result<Option<Retrieved>, String> {
        let vector_ranking = self.vector_ranking(user_id, question).await;
        let this = self.clone();
        let question_owned = question.to_string();
        let (chunks, by_words) =
            tokio::task::spawn_blocking(move || this.ranked_chunks(user_id, &question_owned, vector_ranking))
                .await
                .map_err(|e| e.to_string())??;
        if chunks.is_empty() {
            return Ok(None);
        }
        Ok(Some(assemble(question, chunks, &by_words, &self.settings.knowledge)))
    }

    /// Chunk ids by cosine similarity to the question, best first; empty without an
    /// embedding model or vectors.
    async fn vector_ranking(&self, user_id: i64, question: &str) -> Vec<i64> {
        if !self.embeds() {
            return Vec::new();
        }
        let query = match self.models.embedder(None).await {
            Ok(embedder) => match embedder.embed(vec![question.to_string()]).await {
                Ok(mut e) => e.vectors.pop().unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "could not embed the question; using words only");
                    return Vec::new();
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "embedding model unavailable; using words only");
                return Vec::new();
            }
        };
        let store = self.store.clone();
        let vectors = match store.run(move |s| s.chunk_vectors(user_id)).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not read chunk vectors");
                return Vec::new();
            }
        };
        let mut scored: Vec<(f32, i64)> = vectors
            .iter()
            .filter(|(_, v)| v.len() == query.len())
            .map(|(id, v)| (v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>(), *id))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(CANDIDATES).map(|(_, id)| id).collect()
    }

    /// BM25 ranking fused with the vector ranking; rows re-read from SQLite, where
    /// ownership is checked a second time. Also the ids that BM25 found (by words).
    fn ranked_chunks(
        &self,
        user_id: i64,
        question: &str,
        vectors: Vec<i64>,
    ) -> Result<(Vec<ChunkRow>, HashSet<i64>), String> {
        let mut words = Vec::new();
        if let Some(index) = &self.index {
            index.sync(&self.store).map_err(|e| e.to_string())?;
            let query = SearchQuery {
                user_id,
                text: question.to_string(),
                kind: Some(HitKind::Document),
                limit: CANDIDATES,
                ..SearchQuery::default()
            };
            words = index.search(&query).map_err(|e| e.to_string())?.hits.into_iter().map(|h| h.id).collect();
        }
        let by_words: HashSet<i64> = words.iter().copied().collect();
        let ids = fuse(&[words, vectors]);
        let ids: Vec<i64> = ids.into_iter().take(self.settings.knowledge.top_k * 2).collect();
        Ok((self.store.chunks_by_ids(user_id, &ids).map_err(|e| e.to_string())?, by_words))
    }
}

/// Reciprocal rank fusion of several rankings (best first) into one.
pub fn fuse(rankings: &[Vec<i64>]) -> Vec<i64> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for ranking in rankings {
        for (rank, id) in ranking.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(id, _)| id).collect()
}

/// Numbers the chunks that fit the budget and writes the prompt around the question.
///
/// Each excerpt is shaped for a small model ([`excerpt`]: tables as lines, only the
/// sentences that bear on the question), and the model is asked for plain words without
/// markers: asked to cite by number, the default model answered with the number alone
/// (issue 22). The reply is cited afterwards by [`super::Citer`], from the excerpts'
/// words ([`Retrieved::sources`]).
fn assemble(
    question: &str,
    chunks: Vec<ChunkRow>,
    by_words: &HashSet<i64>,
    settings: &crate::config::KnowledgeSettings,
) -> Retrieved {
    let budget = settings.context_tokens * CHARS_PER_TOKEN;
    // Each candidate is focused first, so the budget counts what the prompt carries: a
    // long chunk whose one relevant line is short is not pushed out by its own length.
    let texts: Vec<(String, bool)> = chunks
        .iter()
        .map(|chunk| {
            let text: String = chunk.text.trim().chars().take(budget).collect();
            (excerpt::rows_as_lines(&text), by_words.contains(&chunk.id))
        })
        .collect();
    let focused = excerpt::focus(question, &texts);
    let mut used = 0;
    let mut citations = Vec::new();
    let mut given = Vec::new();
    let mut excerpts = Vec::new();
    for (chunk, text) in chunks.into_iter().zip(focused) {
        let Some(text) = text else { continue };
        let size = text.chars().count();
        if citations.len() == settings.top_k || (used + size > budget && !citations.is_empty()) {
            continue;
        }
        used += size;
        let n = citations.len() + 1;
        excerpts.push(format!("{}\n{text}\n\n", label(&chunk.document_name)));
        given.push((n, text));
        let size = chunk.text.chars().count();
        let mut snippet: String = chunk.text.chars().take(SNIPPET_CHARS).collect();
        if size > SNIPPET_CHARS {
            snippet.push('…');
        }
        citations.push(Citation {
            n,
            document_id: chunk.document_id,
            document_name: chunk.document_name,
            chunk_id: chunk.id,
            chunk: chunk.ord,
            snippet,
        });
    }
    // The best excerpt last, next to the question: the default model answers from the
    // excerpt it read last more often than from the first (issue 22, benches/RESULTS.md).
    excerpts.reverse();
    let excerpts = excerpts.concat();
    let prompt = format!(
        "Excerpts from my documents:\n\n{excerpts}My question: {question}\n\n\
         Answer my question in one or two full sentences, using the exact names and numbers from the \
         excerpts. Do not mention the excerpts, file names or links."
    );
    // Trace only: the prompt carries the user's documents.
    tracing::trace!(%prompt, "prompt with excerpts");
    let sources = Sources::new(given.iter().map(|(n, t)| (*n, t.as_str()))).for_question(question);
    Retrieved { prompt, citations, sources }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, text: &str) -> ChunkRow {
        ChunkRow { id, document_id: 1, document_name: "notes.md".into(), ord: id, text: text.into() }
    }

    #[test]
    fn fusion_rewards_agreement() {
        assert_eq!(fuse(&[vec![1, 2, 3], vec![2, 9]]), [2, 1, 9, 3]);
        assert_eq!(fuse(&[vec![5, 6], vec![]]), [5, 6]);
    }

    #[test]
    fn the_budget_limits_retrieved_text() {
        let settings =
            crate::config::KnowledgeSettings { context_tokens: 50, top_k: 3, ..Default::default() };
        let chunks = vec![row(1, &"a".repeat(150)), row(2, &"b".repeat(100)), row(3, &"c".repeat(40))];
        let r = assemble("Why?", chunks, &HashSet::from([1, 2, 3]), &settings);
        let numbered: Vec<i64> = r.citations.iter().map(|c| c.chunk_id).collect();
        assert_eq!(numbered, [1, 3], "the 100-char chunk does not fit 200 chars after the first");
        assert!(r.prompt.contains("From notes.md:\ncccc"), "{}", r.prompt);
        assert_eq!(r.labels(), ["From notes.md:"], "once for a document's two excerpts");
        assert!(r.prompt.contains("My question: Why?"));
        assert!(!r.prompt.contains("[1]"), "no numbers for the model to copy: {}", r.prompt);
        assert_eq!(r.sources.attribute("cccc"), None, "one word is not enough");
    }

    #[test]
    fn excerpts_found_by_words_without_a_word_of_the_question_are_left_out() {
        let settings = crate::config::KnowledgeSettings::default();
        let chunks = vec![
            row(1, "Feed the cat at seven."),
            row(2, "The boiler pressure is 1.5 bar."),
            row(3, "Bleed the boiler radiators."),
        ];
        let r = assemble("What is the boiler pressure?", chunks, &HashSet::from([1, 2, 3]), &settings);
        let given: Vec<(usize, i64)> = r.citations.iter().map(|c| (c.n, c.chunk_id)).collect();
        assert_eq!(given, [(1, 2), (2, 3)], "numbered as given: {}", r.prompt);
        assert!(!r.prompt.contains("cat"), "{}", r.prompt);
        // Found by meaning only (an embedding model), the cat's chunk stays, whole.
        let chunks = vec![row(1, "Feed the cat at seven."), row(2, "The boiler pressure is 1.5 bar.")];
        let r = assemble("What is the boiler pressure?", chunks, &HashSet::from([2]), &settings);
        let given: Vec<(usize, i64)> = r.citations.iter().map(|c| (c.n, c.chunk_id)).collect();
        assert_eq!(given, [(1, 1), (2, 2)], "{}", r.prompt);
        assert!(r.prompt.contains("Feed the cat at seven."), "{}", r.prompt);
    }
}
