//! Turning a token stream into text: UTF-8 reassembly and stop strings.
//!
//! A token's bytes may end in the middle of a UTF-8 character, and a stop string may
//! arrive split over several tokens. Both helpers hold back just enough text to
//! decide, and release everything else at once.

/// Reassembles UTF-8 text from byte pieces that may split characters.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream; an incomplete trailing character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out =
            if self.pending.is_empty() { String::new() } else { char::REPLACEMENT_CHARACTER.to_string() };
        self.pending.clear();
        out
    }
}

/// Finds stop strings in streamed text, holding back possible partial matches.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), pending: String::new() }
    }

    /// Adds text. Returns the text safe to emit and whether a stop string was reached
    /// (the stop string itself and anything after it are never emitted).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        let hold = self.partial_match_len();
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// Ends the stream, releasing held-back text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that begins some stop string.
    fn partial_match_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (end, _) in stop.char_indices().skip(1) {
                if end > best && self.pending.ends_with(&stop[..end]) {
                    best = end;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_characters_are_joined() {
        let text = "héllo, 世界 🙂";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut s = Utf8Stream::default();
            let mut out = s.push(&bytes[..split]);
            out += &s.push(&bytes[split..]);
            out += &s.finish();
            assert_eq!(out, text, "split at {split}");
        }
    }

    #[test]
    fn utf8_invalid_bytes_become_replacement() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(s.push(b"\xe4\xb8"), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_string_split_over_pieces_is_caught() {
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        let (a, stopped) = m.push("hello ST");
        assert_eq!((a.as_str(), stopped), ("hello ", false));
        let (b, stopped) = m.push("OP and more");
        assert_eq!((b.as_str(), stopped), ("", true));
    }

    #[test]
    fn false_partial_match_is_released() {
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        let (a, _) = m.push("a ST");
        let (b, stopped) = m.push("ay");
        assert_eq!(format!("{a}{b}"), "a STay");
        assert!(!stopped);
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn earliest_stop_wins_and_no_stops_passes_through() {
        let mut m = StopMatcher::new(vec!["b".into(), "a".into()]);
        assert_eq!(m.push("xaby"), ("x".to_string(), true));
        let mut plain = StopMatcher::new(vec![String::new()]);
        assert_eq!(plain.push("abc"), ("abc".to_string(), false));
    }

    #[test]
    fn held_text_is_flushed_at_the_end() {
        let mut m = StopMatcher::new(vec!["\n\nUser:".into()]);
        let (a, _) = m.push("done\n\nUs");
        assert_eq!(a, "done");
        assert_eq!(m.finish(), "\n\nUs");
    }
}
