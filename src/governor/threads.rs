//! Threads that follow the load: generation gets every core while nothing else needs
//! one, and one core less while speech, an ingest job or another process is busy.
//!
//! ggml's threads wait for each other at every layer, so a thread that loses its core to
//! another busy task stalls them all: with a neighbour busy, one thread less is faster
//! than every core. On a quiet box the last core is worth having (generation is memory
//! bound, but one thread does not reach the memory's speed on a small board).
//!
//! "Others" is the CPU the whole machine used between two samples minus what generation
//! itself used (the engine threads and their OpenMP workers, `hearth-llm`), so speech,
//! ingest and other processes all count.

/// Cores others must keep busy for generation to give one up.
const BUSY_CORES: f32 = 0.5;
/// Cores others may keep busy for generation to take every core again.
const QUIET_CORES: f32 = 0.25;
/// Most generation threads chosen automatically (more rarely helps a memory-bound decode).
pub const MAX_AUTO_THREADS: u32 = 8;

/// The automatic thread count's state between samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Follow {
    cores: u32,
    /// Generation gave a core up.
    yielded: bool,
}

impl Follow {
    pub fn new(cores: u32) -> Follow {
        Follow { cores: cores.max(1), yielded: false }
    }

    /// Takes one sample's figures: cores the machine used in all (the sum of each core's
    /// use) and cores generation used. Returns the generation threads to use now.
    pub fn observe(&mut self, machine_busy: f32, generation_busy: f32) -> u32 {
        let others = (machine_busy - generation_busy).max(0.0);
        if others >= BUSY_CORES {
            self.yielded = true;
        } else if others < QUIET_CORES {
            self.yielded = false;
        }
        self.threads()
    }

    pub fn threads(&self) -> u32 {
        let all = self.cores.min(MAX_AUTO_THREADS);
        if self.yielded {
            (all - 1).max(1)
        } else {
            all
        }
    }

    pub fn yielded(&self) -> bool {
        self.yielded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_box_gives_generation_every_core() {
        let mut f = Follow::new(4);
        assert_eq!(f.threads(), 4);
        assert_eq!(f.observe(3.9, 3.8), 4, "generation's own use is not a neighbour");
    }

    #[test]
    fn a_busy_neighbour_takes_one_core_until_it_is_quiet_again() {
        let mut f = Follow::new(2);
        assert_eq!(f.observe(2.0, 1.0), 1, "another process keeps a core busy");
        assert_eq!(f.observe(1.35, 1.0), 1, "between the marks: no change");
        assert_eq!(f.observe(1.1, 1.0), 2, "quiet again");
    }

    #[test]
    fn one_core_stays_one_thread_and_big_boxes_are_capped() {
        let mut f = Follow::new(1);
        assert_eq!(f.observe(1.0, 0.0), 1);
        assert_eq!(Follow::new(32).threads(), MAX_AUTO_THREADS);
    }
}
