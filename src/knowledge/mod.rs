//! The knowledge base: documents the owner uploads, turned into chunks that chat can
//! retrieve and cite. Extraction and chunking run in background jobs (`crate::jobs`);
//! retrieval fuses BM25 (Tantivy) with vector similarity when an embedding model is
//! configured, and fits what it finds into a token budget.

pub mod chunk;
mod cite;
mod excerpt;
pub mod extract;
mod ingest;
pub mod isolated;
mod retrieve;

pub use cite::{Citer, Sources};
pub use extract::{DocKind, ExtractError, SUPPORTED};
pub use retrieve::{Citation, Retrieved};

use crate::config::Settings;
use crate::engine::Registry;
use crate::search::SearchIndex;
use crate::store::Store;
use std::sync::Arc;

/// What ingestion and retrieval need; clone it freely.
#[derive(Clone)]
pub struct Knowledge {
    pub store: Store,
    /// `None` when another process (the running service) holds the index; that process
    /// then indexes what this one stores.
    pub index: Option<SearchIndex>,
    pub models: Registry,
    pub settings: Arc<Settings>,
}

impl Knowledge {
    /// Whether chunks get embedding vectors (an embedding model is configured).
    pub fn embeds(&self) -> bool {
        !self.settings.model.embedding_model.is_empty()
    }
}
