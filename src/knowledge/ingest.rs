//! One ingest job: read the stored bytes, extract text, chunk, embed (when an
//! embedding model is configured), and store the chunks in one transaction.

use super::extract::{DocKind, ExtractError};
use super::isolated::{extract_in_child, Limits};
use super::Knowledge;
use crate::store::{Job, NewChunk, StoreError};

/// Inputs embedded per request to the embedding model.
const EMBED_BATCH: usize = 16;

impl Knowledge {
    /// Runs an ingest job. `progress` takes a percentage and returns `false` when the
    /// job should stop (it was deleted or taken over). Returns the number of chunks.
    pub fn ingest(
        &self,
        job: &Job,
        runtime: &tokio::runtime::Handle,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<usize, String> {
        let deleted = || "the document was deleted".to_string();
        let id = job.document_id.ok_or_else(deleted)?;
        let (document, data) = self.store.document_content(id).map_err(|e| match e {
            StoreError::NotFound(_) => deleted(),
            other => other.to_string(),
        })?;
        let kind =
            DocKind::parse(&document.kind).ok_or_else(|| format!("unknown kind '{}'", document.kind))?;
        progress(5.0);
        // On failure the job runner marks the document failed with this message.
        let text = self.extract(kind, &data).map_err(|e| e.to_string())?;
        drop(data);
        let texts = super::chunk::chunk(&text, self.settings.knowledge.chunk_chars);
        if !progress(20.0) {
            return Err(deleted());
        }
        let vectors = self.embed_all(&texts, runtime, progress)?;
        let chunks: Vec<NewChunk> = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| NewChunk { text, embedding: vectors.as_ref().map(|v| v[i].clone()) })
            .collect();
        match self.store.finish_document(id, &chunks) {
            Ok(()) => Ok(chunks.len()),
            Err(StoreError::NotFound(_)) => Err(deleted()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The document's text, extracted in a child process bounded in time and memory:
    /// uploads are untrusted, and a parser that hangs, runs out of memory or crashes
    /// must fail this document only, not the job thread or the server (issue 25).
    fn extract(&self, kind: DocKind, data: &[u8]) -> Result<String, ExtractError> {
        let k = &self.settings.knowledge;
        let limits = Limits {
            timeout: std::time::Duration::from_secs(k.extract_timeout_secs),
            memory_bytes: k.extract_memory_bytes,
        };
        // This very binary, even after a package upgrade replaced the file on disk (the
        // child must speak the same protocol); elsewhere than Linux, the file by name.
        let this_binary = std::path::Path::new("/proc/self/exe");
        let program = if this_binary.exists() {
            this_binary.to_path_buf()
        } else {
            std::env::current_exe()
                .map_err(|e| ExtractError::Unavailable(format!("cannot find the hearth binary: {e}")))?
        };
        extract_in_child(&program, kind, data, limits)
    }

    /// Vectors for every chunk, or `None` without an embedding model (or when it
    /// cannot load: the document is still searchable by its words).
    fn embed_all(
        &self,
        texts: &[String],
        runtime: &tokio::runtime::Handle,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<Option<Vec<Vec<f32>>>, String> {
        if !self.embeds() || texts.is_empty() {
            return Ok(None);
        }
        let embedder = match runtime.block_on(self.models.embedder(None)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "embedding model unavailable; storing chunks without vectors");
                return Ok(None);
            }
        };
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let embeddings = runtime
                .block_on(embedder.embed(batch.to_vec()))
                .map_err(|e| format!("embedding failed: {e}"))?;
            vectors.extend(embeddings.vectors);
            if !progress(20.0 + 75.0 * vectors.len() as f64 / texts.len() as f64) {
                return Err("the document was deleted".into());
            }
        }
        Ok(Some(vectors))
    }
}
