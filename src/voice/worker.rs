//! The request/reply plumbing the speech threads share: a job carries its own answer
//! channel and a cancellation flag that is set when the caller stops waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One request to a speech thread.
pub(crate) struct Job<Q, A> {
    pub request: Q,
    pub reply: oneshot::Sender<A>,
    /// Set when the caller stops waiting; the thread checks it between steps.
    pub cancelled: Arc<AtomicBool>,
}

/// Why a job was not queued.
pub(crate) enum Refused {
    /// The queue is full.
    Full,
    /// The thread has stopped.
    Stopped,
}

/// Marks a job cancelled when the caller's future is dropped before the answer came.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Queues `request` without waiting for room and waits for its answer; `Ok(None)` when
/// the thread dropped the job unanswered.
pub(crate) async fn call<Q, A>(jobs: &mpsc::Sender<Job<Q, A>>, request: Q) -> Result<Option<A>, Refused> {
    let (reply, answer) = oneshot::channel();
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    jobs.try_send(Job { request, reply, cancelled }).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => Refused::Full,
        mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
    })?;
    // Speech needs a core while it runs: generation gives one up at its next decode.
    let _busy = crate::governor::busy();
    // Once answered, the guard setting the flag changes nothing.
    Ok(answer.await.ok())
}
