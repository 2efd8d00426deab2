//! Text before phonemes: sentences (each one inference), clauses (each one espeak-ng call,
//! with its punctuation put back afterwards) and chunks of bounded length.

/// Longest piece of text given to one inference; longer sentences are cut at clause
/// punctuation, else between words, so memory per inference stays bounded.
pub(super) const MAX_CHUNK_CHARS: usize = 400;

/// Words that end with a full stop without ending a sentence ("Dr. Smith").
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "no", "inc", "ltd", "co", "mt", "approx",
    "dept", "fig", "gen", "gov", "sen", "rep", "rev", "capt", "lt", "col", "sgt", "ave", "blvd", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Closing marks that belong to the sentence before them: `"Stop!" he said`.
fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// True when the word ending just before a full stop at byte `dot` is an abbreviation,
/// an initial ("J. Smith") or has dots of its own ("e.g", "U.S").
fn is_abbreviation(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"').next().unwrap_or("");
    if word.is_empty() {
        return false;
    }
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    word.contains('.')
        || (letters == 1 && word.chars().all(char::is_alphabetic))
        || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Splits text into sentences at `.`, `!`, `?` (and `…`) followed by a space, and at line
/// breaks. The punctuation stays with its sentence; "Dr.", "e.g." and "3.5" do not split.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = if c == '\n' || c == '\r' {
            Some((i, i + c.len_utf8()))
        } else if is_terminator(c) {
            // The whole run of marks: "?!", "...", '."'.
            let mut end = i + c.len_utf8();
            while let Some(&(j, next)) = chars.peek() {
                if !is_terminator(next) && !is_closing(next) {
                    break;
                }
                end = j + next.len_utf8();
                chars.next();
            }
            let at_break = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
            let single_dot = c == '.' && text[i..end].chars().filter(|&m| is_terminator(m)).count() == 1;
            (at_break && !(single_dot && is_abbreviation(text, i))).then_some((end, end))
        } else {
            None
        };
        if let Some((cut, resume)) = end {
            push_trimmed(&mut sentences, &text[start..cut]);
            start = resume;
        }
    }
    push_trimmed(&mut sentences, &text[start..]);
    sentences
}

fn push_trimmed(out: &mut Vec<String>, piece: &str) {
    let piece = piece.split_whitespace().collect::<Vec<_>>().join(" ");
    if !piece.is_empty() {
        out.push(piece);
    }
}

/// Sentences cut to at most [`MAX_CHUNK_CHARS`] characters each.
pub(super) fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sentence in split_sentences(text) {
        let mut rest = sentence.as_str();
        while rest.chars().count() > MAX_CHUNK_CHARS {
            let limit = rest.char_indices().nth(MAX_CHUNK_CHARS).map_or(rest.len(), |(i, _)| i);
            let head = &rest[..limit];
            // Prefer a clause boundary in the second half, else the last space.
            let cut = head
                .rfind([',', ';', ':'])
                .filter(|&p| p > limit / 2)
                .map(|p| p + 1)
                .or_else(|| head.rfind(' '))
                .unwrap_or(limit);
            push_trimmed(&mut out, &rest[..cut]);
            rest = &rest[cut..];
        }
        push_trimmed(&mut out, rest);
    }
    out
}

/// A piece of a sentence between clause punctuation, and the punctuation that ended it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Clause {
    pub text: String,
    /// Piper's terminator: `,` `;` `:` inside a sentence; `.` `?` `!` at its end; none.
    pub terminator: Option<char>,
}

/// Splits one sentence into clauses the way espeak-ng would, keeping the punctuation that
/// espeak-ng's phoneme output drops (Piper's voices were trained with it).
pub(super) fn clauses(sentence: &str) -> Vec<Clause> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = sentence.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let mark = match c {
            ',' | ';' | ':' => c,
            '—' | '–' => ';',
            _ => continue,
        };
        // "3,000" and "10:30" are numbers, not clauses.
        let spaced = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
        if !spaced && mark != ';' {
            continue;
        }
        push_clause(&mut out, &sentence[start..i], Some(mark));
        start = i + c.len_utf8();
    }
    let last = sentence[start..].trim_end_matches(|c: char| is_closing(c) || c.is_whitespace());
    let body = last.trim_end_matches(is_terminator);
    let marks = &last[body.len()..];
    let terminator = if marks.contains('?') {
        Some('?')
    } else if marks.contains('!') {
        Some('!')
    } else if !marks.is_empty() {
        Some('.')
    } else {
        None
    };
    push_clause(&mut out, body, terminator);
    out
}

fn push_clause(out: &mut Vec<Clause>, text: &str, terminator: Option<char>) {
    let text = text.trim();
    if text.chars().any(char::is_alphanumeric) {
        out.push(Clause { text: text.to_string(), terminator });
    } else if let (Some(last), Some(t)) = (out.last_mut(), terminator) {
        // Punctuation with no words ("Wait, ... !"): it still ends the clause before.
        last.terminator = Some(t);
    }
}
