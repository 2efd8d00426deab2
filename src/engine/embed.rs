//! Embeddings: a model loaded in its own context with pooled embeddings, on its own
//! thread. Inputs are packed several to a batch (one sequence each) and every vector
//! is L2-normalised, as sentence-transformers and OpenAI return them.

use super::{EngineError, ModelState};
use crate::config::Settings;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot, watch};

/// Most inputs in one request.
pub const MAX_INPUTS: usize = 256;

/// Vectors for a request's inputs, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

struct EmbedJob {
    inputs: Vec<String>,
    reply: oneshot::Sender<Result<Embeddings, EngineError>>,
}

/// A handle to an embedding model's thread; clone it freely.
#[derive(Clone)]
pub struct Embedder {
    jobs: mpsc::Sender<EmbedJob>,
    state: watch::Receiver<ModelState>,
}

impl Embedder {
    pub fn start(settings: &Settings, path: PathBuf) -> Embedder {
        let (jobs_tx, jobs_rx) = mpsc::channel(settings.model.queue_size);
        let (state_tx, state_rx) = watch::channel(ModelState::Loading { path: path.clone(), progress: 0.0 });
        // Embedding is all prompt reading: the batch threads.
        let threads = settings.batch_threads() as i32;
        let verify = settings.model.verify_sha256;
        std::thread::Builder::new()
            .name("hearth-embed".into())
            .spawn(move || worker::run(path, threads, verify, jobs_rx, state_tx))
            .expect("spawning the embedding thread");
        Embedder { jobs: jobs_tx, state: state_rx }
    }

    pub fn state(&self) -> ModelState {
        self.state.borrow().clone()
    }

    pub async fn wait_loaded(&self) -> ModelState {
        let mut rx = self.state.clone();
        let settled = rx.wait_for(|s| !matches!(s, ModelState::Loading { .. })).await.map(|s| s.clone());
        settled.unwrap_or_else(|_| self.state())
    }

    /// Embeds the inputs; fails fast when the queue is full.
    pub async fn embed(&self, inputs: Vec<String>) -> Result<Embeddings, EngineError> {
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(EngineError::InvalidRequest(format!("input must hold 1 to {MAX_INPUTS} strings")));
        }
        if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
            return Err(EngineError::InvalidRequest(format!("input[{i}] is empty")));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(EmbedJob { inputs, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Overloaded(self.jobs.max_capacity()),
            mpsc::error::TrySendError::Closed(_) => {
                EngineError::NotReady("the embedding model stopped".into())
            }
        })?;
        answer.await.map_err(|_| EngineError::Failed("the embedding model stopped".into()))?
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(feature = "llm")]
mod worker {
    use super::{normalize, EmbedJob, Embeddings};
    use crate::engine::omp::on_own_thread;
    use crate::engine::{EngineError, ModelInfo, ModelState};
    use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
    use llama_cpp_2::context::LlamaContext;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::LlamaModel;
    use std::num::NonZeroU32;
    use std::path::PathBuf;
    use std::time::Instant;
    use tokio::sync::{mpsc, watch};

    /// Sequences packed into one batch.
    const SEQUENCES: usize = 16;

    pub fn run(
        path: PathBuf,
        threads: i32,
        verify: bool,
        mut jobs: mpsc::Receiver<EmbedJob>,
        state: watch::Sender<ModelState>,
    ) {
        let state = std::sync::Arc::new(state);
        let started = Instant::now();
        let fail = |error: String| {
            tracing::error!(path = %path.display(), %error, "embedding model not loaded");
            let _ = state.send(ModelState::Failed { path: path.clone(), error });
        };
        let (backend, model, verified) = match crate::engine::llama::load_model(&path, verify, &state) {
            Ok(loaded) => loaded,
            Err(e) => return fail(e),
        };
        let window = model.n_ctx_train().clamp(64, 8192);
        let params = LlamaContextParams::default()
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean)
            .with_n_ctx(NonZeroU32::new(window))
            .with_n_batch(window)
            .with_n_ubatch(window)
            .with_n_seq_max(SEQUENCES as u32)
            // Unified: every sequence may use the whole window (otherwise llama.cpp gives
            // each a 1/SEQUENCES share, rounded up to 256, shorter than the model reads).
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = match model.new_context(backend, params) {
            Ok(c) => c,
            Err(e) => return fail(format!("llama.cpp embedding context: {e}")),
        };
        let info = ModelInfo {
            id: crate::models::model_id(&path),
            path: path.clone(),
            architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
            file_size: std::fs::metadata(&path).map_or(0, |m| m.len()),
            context_size: window,
            trained_context: model.n_ctx_train(),
            parameters: model.n_params(),
            threads: threads as u32,
            parallel: SEQUENCES as u32,
            kv_cache_tokens: window,
            idle_cache_tokens: 0,
            sha256_verified: verified,
            chat_template: String::new(),
            tool_calls: None,
            load_seconds: started.elapsed().as_secs_f64(),
            loaded_at: crate::store::now(),
        };
        tracing::info!(model = %info.id, dimensions = model.n_embd(), window, "embedding model ready");
        let _ = state.send(ModelState::Ready(Box::new(info)));
        while let Some(job) = jobs.blocking_recv() {
            // On a thread of its own, so that its OpenMP pool ends with it (`engine::omp`).
            let inputs = &job.inputs;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                on_own_thread("hearth-embed-run", || embed(&model, &mut ctx, inputs, window as usize))
            }))
            .unwrap_or_else(|_| Err(EngineError::Failed("the embedding engine panicked".into())));
            let _ = job.reply.send(result);
        }
    }

    fn embed(
        model: &LlamaModel,
        ctx: &mut LlamaContext<'_>,
        inputs: &[String],
        window: usize,
    ) -> Result<Embeddings, EngineError> {
        let tokenized: Vec<_> =
            inputs.iter().map(|text| model.vocab().tokenize(text.as_bytes(), true, false)).collect();
        if let Some((i, t)) = tokenized.iter().enumerate().find(|(_, t)| t.len() > window) {
            return Err(EngineError::InvalidRequest(format!(
                "input[{i}] is {} tokens; this embedding model reads at most {window}",
                t.len()
            )));
        }
        let failed = |e: &dyn std::fmt::Display| EngineError::Failed(format!("embedding: {e}"));
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut batch = LlamaBatch::new(window, 1);
        let mut start = 0;
        while start < tokenized.len() {
            // Pack as many whole inputs as fit in the window and the sequence limit.
            let mut end = start;
            let mut used = 0;
            while end < tokenized.len() && end - start < SEQUENCES && used + tokenized[end].len() <= window {
                used += tokenized[end].len();
                end += 1;
            }
            batch.clear();
            ctx.clear_kv_cache();
            for (seq, tokens) in tokenized[start..end].iter().enumerate() {
                batch.add_sequence(tokens, seq as i32, true).map_err(|e| failed(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| failed(&e))?;
            for seq in 0..end - start {
                let mut v = ctx.embeddings_seq_ith(seq as i32).map_err(|e| failed(&e))?.to_vec();
                normalize(&mut v);
                vectors.push(v);
            }
            start = end;
        }
        let prompt_tokens = tokenized.iter().map(Vec::len).sum::<usize>() as u32;
        Ok(Embeddings { vectors, prompt_tokens })
    }
}

#[cfg(not(feature = "llm"))]
mod worker {
    use super::EmbedJob;
    use crate::engine::ModelState;
    use std::path::PathBuf;
    use tokio::sync::{mpsc, watch};

    pub fn run(
        path: PathBuf,
        _threads: i32,
        _verify: bool,
        _jobs: mpsc::Receiver<EmbedJob>,
        state: watch::Sender<ModelState>,
    ) {
        let error = "this hearth was built without the `llm` feature".to_string();
        let _ = state.send(ModelState::Failed { path, error });
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn vectors_are_scaled_to_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }
}
