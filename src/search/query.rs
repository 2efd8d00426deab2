//! Queries. The user's text is always plain text: it is analyzed into terms and
//! matched with BM25, so characters that mean something in Tantivy's query syntax
//! (`:`, `(`, `"`, `AND`) cannot cause an error. Every query is confined to one user.

use super::{Result, SearchIndex};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
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
        let words: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let query = TermQuery::new(Term::from_field_text(f.text, t), IndexRecordOption::WithFreqs);
                (Occur::Should, Box::new(query) as Box<dyn Query>)
            })
            .collect();
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
        let searcher = self.inner.reader.searcher();
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
