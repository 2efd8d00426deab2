//! ggml CPU work for engines other than the language model runs on a thread that ends
//! with it.
//!
//! ggml's CPU workers are OpenMP threads. libgomp keeps a pool of them for every thread
//! that ever started a parallel region, for as long as that thread lives, and while the
//! process holds more pool threads than there are cores it lets waiting threads spin only
//! about a hundred times before they sleep in the kernel. ggml waits at every layer, so
//! the language model's decode then pays a futex sleep and wake-up per layer: on 2 cores,
//! with whisper's pool lingering after its warm-up, generation ran at 32-38 tok/s against
//! llama-bench's 46, and the engine threads had made ~45,000 voluntary context switches
//! eight minutes into the benchmark (76 after four requests with this change). Running each
//! transcription or embedding batch on a short-lived thread lets its pool go with it
//! (libgomp frees a pool when its thread exits), so only the language model's pool stays.

/// Runs `f` on a new thread called `name` and waits for it; a panic in `f` is re-raised here.
pub(crate) fn on_own_thread<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, f)
            .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::on_own_thread;

    #[test]
    fn the_work_runs_on_its_own_named_thread() {
        let caller = std::thread::current().id();
        let (id, name) = on_own_thread("hearth-test-run", || {
            let me = std::thread::current();
            (me.id(), me.name().map(str::to_string))
        });
        assert_ne!(id, caller);
        assert_eq!(name.as_deref(), Some("hearth-test-run"));
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| on_own_thread("hearth-test-run", || panic!("boom")));
        assert!(caught.is_err());
    }
}
