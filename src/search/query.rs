//! Queries. The user's text is always plain text: it is analyzed into terms and
//! matched with BM25, so characters that mean something in Tantivy's query syntax
//! (`:`, `(`, `"`, `AND`) cannot cause an error. Every query is confined to one user.

use super::{Result, SearchIndex};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{TantivyDocument, Term};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    Message,
    Document,
    Note,
}

impl HitKind {
    fn as_str(self) -> &'static str {
        match self {
            HitKind::Message => "message",
            HitKind::Document => "document",
            HitKind::Note => "note",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub user_id: i64,
    pub text: String,
    pub kind: Option<HitKind>,
    pub conversation_id: Option<String>,
    /// Only items created at or after / before this Unix time.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
    pub offset: usize,
    /// Snippet length in characters (0: no snippets).
    pub snippet_chars: usize,
}

/// A piece of a snippet; `matched` pieces are what the query found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnippetPart {
    pub text: String,
    pub matched: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub kind: HitKind,
    /// The message, chunk or note id.
    pub id: i64,
    pub score: f32,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<i64>,
    pub snippet: String,
    pub snippet_parts: Vec<SnippetPart>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub total: usize,
    pub hits: Vec<Hit>,
}

impl SearchIndex {
    /// One page of this user's matching messages, chunks and notes, best first.
    pub fn search(&self, q: &SearchQuery) -> Result<Page> {
        let f = &self.inner.fields;
        let terms = super::terms(&q.text);
        if terms.is_empty() || q.limit == 0 {
            return Ok(Page { total: 0, hits: Vec::new() });
        }
        let searcher = self.inner.reader.searcher();
        let word = |t: &str| TermQuery::new(Term::from_field_text(f.text, t), IndexRecordOption::WithFreqs);
        let mut words: Vec<(Occur, Box<dyn Query>)> =
            terms.iter().map(|t| (Occur::Should, Box::new(word(t)) as Box<dyn Query>)).collect();
        // A chunk's document and section (its context) count too, less than its own words.
        for t in &terms {
            let under = TermQuery::new(Term::from_field_text(f.context, t), IndexRecordOption::WithFreqs);
            words.push((Occur::Should, Box::new(BoostQuery::new(Box::new(under), CONTEXT_BOOST))));
        }
        for longer in compounds(&searcher, f.text, &terms)? {
            let query = BoostQuery::new(Box::new(word(&longer)), COMPOUND_BOOST);
            words.push((Occur::Should, Box::new(query)));
        }
        let text_query = BooleanQuery::new(words);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(text_query.clone())),
            (Occur::Must, exact(Term::from_field_u64(f.user, q.user_id as u64))),
        ];
        if let Some(kind) = q.kind {
            clauses.push((Occur::Must, exact(Term::from_field_text(f.kind, kind.as_str()))));
        }
        if let Some(c) = &q.conversation_id {
            clauses.push((Occur::Must, exact(Term::from_field_text(f.conversation, c))));
        }
        if q.from.is_some() || q.to.is_some() {
            let bound = |t: Option<i64>| {
                t.map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_i64(f.created, t)))
            };
            clauses.push((Occur::Must, Box::new(RangeQuery::new(bound(q.from), bound(q.to)))));
        }
        let query = BooleanQuery::new(clauses);
        let top = TopDocs::with_limit(q.limit).and_offset(q.offset).order_by_score();
        let (top, total) = searcher.search(&query, &(top, Count))?;
        let snippets = if q.snippet_chars > 0 {
            let mut generator = SnippetGenerator::create(&searcher, &text_query, f.text)?;
            generator.set_max_num_chars(q.snippet_chars);
            Some(generator)
        } else {
            None
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let kind = match doc.get_first(f.kind).and_then(|v| v.as_str()) {
                Some("document") => HitKind::Document,
                Some("note") => HitKind::Note,
                _ => HitKind::Message,
            };
            let (snippet, snippet_parts) = match &snippets {
                Some(generator) => split_snippet(&generator.snippet_from_doc(&doc)),
                None => (String::new(), Vec::new()),
            };
            hits.push(Hit {
                kind,
                id: doc.get_first(f.item).and_then(|v| v.as_u64()).unwrap_or_default() as i64,
                score,
                created_at: doc.get_first(f.created).and_then(|v| v.as_i64()).unwrap_or_default(),
                conversation_id: doc.get_first(f.conversation).and_then(|v| v.as_str()).map(String::from),
                document_id: doc.get_first(f.document).and_then(|v| v.as_u64()).map(|d| d as i64),
                snippet,
                snippet_parts,
            });
        }
        Ok(Page { total, hits })
    }
}

/// The weight of a word found in a chunk's context (its document's name, title and section
/// heading) against one found in its text: "How long should the banana bread stay in the
/// tin?" should find the recipe's step that says so, though only the title says "banana".
const CONTEXT_BOOST: f32 = 0.5;
/// A question's word matches the longer words that end with it, at this share of a word's
/// weight: English closes many compounds with their head last ("grapefruit" is a fruit,
/// "bedtime" a time), and "Which fruit must Dad avoid?" should find "No grapefruit".
const COMPOUND_BOOST: f32 = 0.5;
/// Only words of at least this many characters (not "tin" in "Martin")...
const COMPOUND_WORD_MIN: usize = 4;
/// ...inside words with at least this many characters in front of them.
const COMPOUND_HEAD_MIN: usize = 3;
/// At most this many longer words per word of the question (in dictionary order).
const COMPOUNDS_PER_WORD: usize = 8;

/// Whether `word` is a longer word that ends with `tail` ("grapefruit", "fruit"), in the
/// sense of [`COMPOUND_BOOST`].
pub fn ends_compound(word: &str, tail: &str) -> bool {
    tail.chars().count() >= COMPOUND_WORD_MIN
        && word.strip_suffix(tail).is_some_and(|head| {
            head.chars().count() >= COMPOUND_HEAD_MIN && head.chars().all(char::is_alphabetic)
        })
}

/// The indexed terms that end with one of `terms` (see [`COMPOUND_BOOST`]), read from
/// the term dictionaries: one pass over them per query.
fn compounds(searcher: &tantivy::Searcher, field: Field, terms: &[String]) -> Result<Vec<String>> {
    let tails: Vec<&str> = terms.iter().map(String::as_str).collect();
    let mut found: Vec<String> = Vec::new();
    let mut per_tail = vec![0usize; tails.len()];
    if tails.is_empty() {
        return Ok(found);
    }
    for segment in searcher.segment_readers() {
        let index = segment.inverted_index(field)?;
        let mut stream = index.terms().stream()?;
        while stream.advance() {
            let Ok(key) = std::str::from_utf8(stream.key()) else { continue };
            let tail = tails.iter().position(|tail| ends_compound(key, tail));
            if let Some(t) = tail {
                if per_tail[t] < COMPOUNDS_PER_WORD && !found.iter().any(|f| f == key) {
                    per_tail[t] += 1;
                    found.push(key.to_string());
                }
            }
        }
    }
    Ok(found)
}

fn exact(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// A snippet as plain text plus its matched and unmatched pieces, so that clients can
/// highlight without parsing HTML.
fn split_snippet(snippet: &tantivy::snippet::Snippet) -> (String, Vec<SnippetPart>) {
    let text = snippet.fragment();
    let mut parts = Vec::new();
    let mut at = 0;
    for range in snippet.highlighted() {
        if range.start < at || range.end > text.len() {
            continue;
        }
        if range.start > at {
            parts.push(SnippetPart { text: text[at..range.start].to_string(), matched: false });
        }
        parts.push(SnippetPart { text: text[range.clone()].to_string(), matched: true });
        at = range.end;
    }
    if at < text.len() {
        parts.push(SnippetPart { text: text[at..].to_string(), matched: false });
    }
    (text.to_string(), parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Role, Store};

    #[test]
    fn a_word_finds_the_longer_words_it_ends_but_ranks_below_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.db")).unwrap();
        let index = SearchIndex::open(&dir.path().join("index")).unwrap();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let grapefruit = store.add_note(alice, "Rules", "No grapefruit or grapefruit juice.").unwrap().id;
        let fruit = store.add_note(alice, "Shopping", "Fruit from the market on Saturday.").unwrap().id;
        store.add_note(alice, "Martin", "Martin fixed the cabin door.").unwrap();
        index.sync(&store).unwrap();
        let search = |text: &str| {
            let q = SearchQuery { user_id: alice, text: text.into(), limit: 10, ..SearchQuery::default() };
            index.search(&q).unwrap().hits.iter().map(|h| h.id).collect::<Vec<_>>()
        };
        assert_eq!(search("Which fruit must I avoid?"), [fruit, grapefruit], "the word itself first");
        assert!(search("tin bin").is_empty(), "short words are not looked for inside others");
        assert_eq!(search("grapefruit"), [grapefruit], "nor a longer word inside a shorter one");
    }

    #[test]
    fn a_chunk_is_found_by_its_documents_title_and_section_too() {
        use crate::store::NewChunk;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.db")).unwrap();
        let index = SearchIndex::open(&dir.path().join("index")).unwrap();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let add = |name: &str, chunks: &[&str]| {
            let doc = store.add_document(alice, name, "markdown", name.as_bytes()).unwrap().document;
            let chunks: Vec<NewChunk> =
                chunks.iter().map(|t| NewChunk { text: t.to_string(), embedding: None }).collect();
            store.finish_document(doc.id, &chunks).unwrap();
        };
        add(
            "bread.md",
            &[
                "# Banana bread\n\nMakes one loaf.",
                "## Method\n\n1. Heat the oven.",
                "2. Leave it in the tin.",
            ],
        );
        add("garage.md", &["# Garage\n\nThe tin of paint is on the shelf, next to the other tin."]);
        index.sync(&store).unwrap();
        let found = |text: &str| {
            let q = SearchQuery { user_id: alice, text: text.into(), limit: 10, ..SearchQuery::default() };
            let hits = index.search(&q).unwrap().hits;
            let chunks = store.chunks_by_ids(alice, &hits.iter().map(|h| h.id).collect::<Vec<_>>()).unwrap();
            hits.iter()
                .map(|h| chunks.iter().find(|c| c.id == h.id).unwrap().text.clone())
                .collect::<Vec<_>>()
        };
        let method = found("method");
        assert_eq!(method.len(), 2, "the section's heading and the chunk that continues it: {method:?}");
        assert!(method[0].starts_with("## Method"), "its own words count more: {method:?}");
        let tin = found("banana tin");
        let at = |text: &str| tin.iter().position(|t| t.contains(text)).unwrap();
        assert!(at("Leave it") < at("paint"), "the tin in the banana bread's document first: {tin:?}");
        assert!(found("garage tin")[0].contains("paint"), "{:?}", found("garage tin"));
    }
}
