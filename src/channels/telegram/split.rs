//! Replies longer than one Telegram message, in pieces.

/// Telegram's limit for one message's text, in UTF-16 code units.
pub const MAX_MESSAGE: usize = 4096;

/// Splits `text` into pieces of at most `max` UTF-16 code units, each ending where a
/// reader would pause if there is such a place in its second half (a blank line, a line
/// break, a sentence's end, a space), else at the limit. Never empty pieces; an empty or
/// blank text gives none.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // The byte index where `max` UTF-16 units end (whole characters only).
        let mut units = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                end = i;
                break;
            }
            units += c.len_utf16();
        }
        if end < rest.len() {
            let window = &rest[..end];
            let half = window.len() / 2;
            let pause = ["\n\n", "\n", ". ", "! ", "? ", " "]
                .iter()
                .find_map(|sep| window.rfind(sep).filter(|&i| i >= half).map(|i| i + sep.len()));
            if let Some(at) = pause {
                end = at;
            }
        }
        let (piece, tail) = rest.split_at(end);
        let piece = piece.trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_string());
        }
        rest = tail.trim_start();
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split("  Hello there.  ", MAX_MESSAGE), ["Hello there."]);
        assert!(split("  \n ", MAX_MESSAGE).is_empty());
    }

    #[test]
    fn long_text_breaks_at_paragraphs_then_words() {
        let paragraph = "word ".repeat(500); // 2500 bytes
        let text = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
        let pieces = split(&text, MAX_MESSAGE);
        assert_eq!(pieces.len(), 3, "{:?}", pieces.iter().map(|p| p.len()).collect::<Vec<_>>());
        assert!(pieces.iter().all(|p| utf16(p) <= MAX_MESSAGE && p.ends_with("word")));
        let words: usize = pieces.iter().map(|p| p.split_whitespace().count()).sum();
        assert_eq!(words, 1500, "nothing lost");
    }

    #[test]
    fn counts_utf16_and_never_cuts_a_character() {
        // Emoji are two UTF-16 units each, with no place to pause.
        let text = "😀".repeat(5000);
        let pieces = split(&text, MAX_MESSAGE);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| utf16(p) <= MAX_MESSAGE));
        assert_eq!(pieces.concat(), text);
        let text = "é".repeat(9000);
        assert_eq!(split(&text, MAX_MESSAGE).concat(), text);
    }
}
