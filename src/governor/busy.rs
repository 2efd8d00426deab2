//! Work inside Hearth that needs a core now: speech (whisper.cpp, Piper) and ingest jobs
//! say so while they run, and automatic generation threads give one core up at the next
//! decode, without waiting for the next sample to show the load.
//!
//! A process-wide count, since each of these runs on a thread of its own far from the
//! engines; [`Busy`] is the guard that holds one.

use std::sync::atomic::{AtomicU32, Ordering};

static BUSY: AtomicU32 = AtomicU32::new(0);

/// Held while some work besides generation keeps a core busy.
#[must_use = "the work counts as busy only while the guard lives"]
pub struct Busy(());

/// Counts the caller's work as busy until the guard is dropped.
pub fn busy() -> Busy {
    BUSY.fetch_add(1, Ordering::Relaxed);
    Busy(())
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether any such work is running now.
pub fn any() -> bool {
    BUSY.load(Ordering::Relaxed) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_counts_while_it_lives() {
        let before = BUSY.load(Ordering::Relaxed);
        let guard = busy();
        assert!(any());
        assert_eq!(BUSY.load(Ordering::Relaxed), before + 1);
        drop(guard);
        assert!(BUSY.load(Ordering::Relaxed) <= before + 1);
    }
}
