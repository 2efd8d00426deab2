//! whisper.cpp's CPU work runs on a thread that ends with it.
//!
//! ggml's CPU workers are OpenMP threads. libgomp keeps a pool of them for every thread
//! that ever started a parallel region, for as long as that thread lives, and while the
//! process holds more pool threads than there are cores it lets waiting threads spin only
//! about a hundred times before they sleep in the kernel. ggml waits at every layer, so
//! the language model's decode then pays a futex sleep and wake-up per layer: on 2 cores,
//! with whisper's pool lingering after its warm-up, generation ran at 32-38 tok/s against
//! llama-bench's 46, and the engine threads had made ~45,000 voluntary context switches
//! eight minutes into the benchmark (76 after four requests with this change). Running each
//! transcription on a short-lived thread lets its pool go with it (libgomp frees a pool
//! when its thread exits), so only the language model's pool stays between utterances.

/// Runs `f` on a new thread and waits for it; a panic in `f` is re-raised here.
pub(super) fn on_own_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("hearth-stt-run".into())
            .spawn_scoped(scope, f)
            .expect("spawning a speech-to-text thread");
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
