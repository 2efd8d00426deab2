//! Chunking that follows the document's own structure: paragraphs (blank-line
//! separated) are kept whole and packed together up to the target size; a Markdown
//! heading starts a new chunk; only a paragraph larger than the target is split, at
//! sentence ends, and only a sentence larger than the target at spaces.

/// Splits `text` into chunks of at most about `target` characters.
pub fn chunk(text: &str, target: usize) -> Vec<String> {
    let target = target.max(50);
    let mut chunks = Vec::new();
    let mut current = String::new();
    for paragraph in paragraphs(text) {
        let heading = paragraph.starts_with('#');
        let fits = chars(&current) + 2 + chars(&paragraph) <= target;
        if !current.is_empty() && (heading || !fits) {
            chunks.push(std::mem::take(&mut current));
        }
        if chars(&paragraph) > target {
            let mut pieces = split_long(&paragraph, target);
            let last = pieces.pop().unwrap_or_default();
            chunks.extend(pieces);
            current = last;
        } else {
            if !current.is_empty() {
                current.push_str("\n\n");
            }
            current.push_str(&paragraph);
        }
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Paragraphs: runs of non-blank lines, each trimmed; inner line breaks kept.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !lines.is_empty() {
                out.push(lines.join("\n"));
                lines.clear();
            }
        } else {
            lines.push(line.trim_end());
        }
    }
    if !lines.is_empty() {
        out.push(lines.join("\n"));
    }
    out
}

/// Sentences of a long paragraph packed up to `target`; over-long sentences split at
/// whitespace (or anywhere, for text without spaces).
fn split_long(paragraph: &str, target: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for sentence in sentences(paragraph) {
        if chars(&current) + chars(sentence) > target && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        if chars(sentence) > target {
            let mut words = hard_split(sentence, target);
            let last = words.pop().unwrap_or_default();
            pieces.extend(words);
            current = last;
        } else {
            current.push_str(sentence);
        }
    }
    if !current.trim().is_empty() {
        pieces.push(current);
    }
    pieces.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// Sentences, each keeping its end punctuation and following whitespace.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end_mark = matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '\n');
        if !end_mark {
            continue;
        }
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        if next_is_space || !c.is_ascii() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, n)) = chars.peek() {
                if !n.is_whitespace() {
                    break;
                }
                end = j + n.len_utf8();
                chars.next();
            }
            out.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn hard_split(text: &str, target: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split_inclusive(char::is_whitespace) {
        if chars(&current) + chars(word) > target && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        if chars(word) > target {
            let letters: Vec<char> = word.chars().collect();
            for piece in letters.chunks(target) {
                pieces.push(piece.iter().collect());
            }
        } else {
            current.push_str(word);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_packed_and_never_cut() {
        let text = "First paragraph here.\n\nSecond one.\n\n\nThird paragraph, a bit longer than the rest.";
        assert_eq!(
            chunk(text, 1000),
            ["First paragraph here.\n\nSecond one.\n\nThird paragraph, a bit longer than the rest."]
        );
        let small = chunk(text, 60);
        assert_eq!(
            small,
            ["First paragraph here.\n\nSecond one.", "Third paragraph, a bit longer than the rest."]
        );
    }

    #[test]
    fn headings_start_chunks() {
        let text = "# One\n\nAlpha.\n\n# Two\n\nBeta.";
        assert_eq!(chunk(text, 1000), ["# One\n\nAlpha.", "# Two\n\nBeta."]);
    }

    #[test]
    fn long_paragraphs_split_at_sentences_and_words() {
        let sentence = "This sentence has exactly fifty characters in it. ";
        let paragraph = sentence.repeat(10);
        let chunks = chunk(&paragraph, 120);
        assert!(chunks.iter().all(|c| c.chars().count() <= 120), "{chunks:?}");
        assert!(chunks.iter().all(|c| c.ends_with('.')), "cut at sentence ends: {chunks:?}");
        assert_eq!(chunks.join(" ").matches("fifty").count(), 10, "nothing lost");

        let unbroken = "x".repeat(250);
        let chunks = chunk(&unbroken, 100);
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [100, 100, 50]);
        let cjk = "这是一个很长的句子。".repeat(30);
        assert!(chunk(&cjk, 100).iter().all(|c| c.chars().count() <= 100));
    }
}
