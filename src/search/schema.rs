//! The index schema and its text analyzer. Bump [`SCHEMA_VERSION`] whenever either
//! changes: an index of another version is discarded and rebuilt from SQLite.

use tantivy::schema::{Field, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING};
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer};

pub const SCHEMA_VERSION: &str = "3";
pub const ANALYZER: &str = "hearth_en";

/// The fields of the one index that holds messages, document chunks and notes.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `message:<id>`, `chunk:<id>` or `note:<id>`: the identity used for upserts and deletes.
    pub key: Field,
    /// `message`, `document` or `note`.
    pub kind: Field,
    pub user: Field,
    pub item: Field,
    pub conversation: Field,
    pub document: Field,
    pub created: Field,
    pub text: Field,
    /// A chunk's document name, title and section heading (searched, not stored).
    pub context: Field,
}

pub fn build() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(tantivy::schema::IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        key: builder.add_text_field("key", STRING),
        kind: builder.add_text_field("kind", STRING | STORED),
        user: builder.add_u64_field("user", INDEXED),
        item: builder.add_u64_field("item", STORED),
        conversation: builder.add_text_field("conversation", STRING | STORED),
        document: builder.add_u64_field("document", INDEXED | STORED),
        created: builder.add_i64_field("created", INDEXED | FAST | STORED),
        text: builder.add_text_field("text", text_options),
        context: builder.add_text_field(
            "context",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(tantivy::schema::IndexRecordOption::WithFreqs),
            ),
        ),
    };
    (builder.build(), fields)
}

/// English function words: they match everything and would drown the words that
/// matter in a question ("what is the ... of my ...").
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not",
    "of", "on", "or", "our", "should", "so", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why",
    "will", "with", "would", "you", "your",
];

/// Words split on non-alphanumerics (each CJK character a word), lower-cased, English stop words removed, stemmed:
/// "Passwords" finds "password".
pub fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(super::tokenizer::WordTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    let stop = StopWordFilter::remove(STOP_WORDS.iter().map(|w| w.to_string()));
    builder.filter_dynamic(stop).filter_dynamic(Stemmer::new(Language::English)).build()
}

/// The analyzed terms of `text`, each once, in order of first appearance.
pub fn terms(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out: Vec<String> = Vec::new();
    while stream.advance() {
        let t = &stream.token().text;
        if !out.iter().any(|o| o == t) {
            out.push(t.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn terms_are_stemmed_lowercase_and_skip_stop_words() {
        assert_eq!(super::terms("What is THE guest wifi Passwords? password"), ["guest", "wifi", "password"]);
        assert!(super::terms("the of and").is_empty());
        assert_eq!(super::terms("AND OR NOT (field:x"), ["field", "x"], "query syntax is just text");
        assert_eq!(super::terms("密码"), ["密", "码"]);
    }
}
