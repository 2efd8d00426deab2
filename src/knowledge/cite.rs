//! Citations that Hearth writes itself. The model is asked to answer from the excerpts in
//! plain words; small models asked to cite by number often answered with the number alone
//! (`[1]`), put it before the claim, or invented a link (issue 22). So the reply is read
//! one sentence at a time as it is generated: markers, `(from "file.md")` notes and links
//! that appear in no excerpt are removed, and each sentence that shares enough words with
//! an excerpt gets that excerpt's marker, `[n]`, before its closing punctuation.
//!
//! This is deterministic: the same reply and excerpts always give the same markers, a
//! marker is never alone and always follows the claim it supports.

use std::collections::HashSet;

/// Text held back without a sentence end before it is let through anyway (a long code
/// line or a list without punctuation must not wait for the end of the reply).
const LONGEST_PENDING: usize = 600;
/// Words that say nothing about which excerpt a sentence comes from.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "for",
    "from",
    "had",
    "has",
    "have",
    "he",
    "her",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "me",
    "my",
    "no",
    "not",
    "of",
    "on",
    "or",
    "our",
    "she",
    "should",
    "so",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "up",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "will",
    "with",
    "would",
    "you",
    "your",
    "answer",
    "excerpt",
    "excerpts",
    "document",
    "documents",
    "according",
    "based",
    "provided",
];
/// The reply when the model wrote only markers, links or file names.
pub const NO_ANSWER: &str =
    "I found passages in your documents that may answer this, but I could not put the answer into words.";
/// Top-level domains that make a word a web address (`docs.example.com/boiler`).
const DOMAINS: &[&str] =
    &["com", "org", "net", "io", "uk", "info", "app", "dev", "de", "fr", "eu", "us", "gov", "edu"];

/// The excerpts a reply may cite: their numbers and words, and all their text to tell a
/// real link from an invented one.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    excerpts: Vec<(usize, HashSet<String>)>,
    /// Every excerpt's text, lowercased.
    text: String,
    /// The excerpts as given, with their numbers.
    texts: Vec<(usize, String)>,
    /// The question's words: a sentence made of nothing else only restates it.
    asked: HashSet<String>,
    /// The line quoted when the reply says nothing the question did not: the best
    /// excerpt's line that shares the most words with the question, and its number.
    quote: Option<(usize, String)>,
}

impl Sources {
    /// Sources from `(n, text)` pairs, as numbered in the prompt.
    pub fn new<'a>(excerpts: impl IntoIterator<Item = (usize, &'a str)>) -> Sources {
        let mut sources = Sources::default();
        for (n, text) in excerpts {
            sources.texts.push((n, text.to_string()));
            sources.excerpts.push((n, content_words(text).collect()));
            sources.text.push_str(&text.to_lowercase());
            sources.text.push('\n');
        }
        sources
    }

    /// With the question the excerpts were chosen for: a reply that only restates it
    /// (the default model answered "Which light should be solid green?" with "The light
    /// should be solid green.") is replaced by the best excerpt's line that bears on it,
    /// quoted.
    pub fn for_question(mut self, question: &str) -> Sources {
        self.asked = content_words(question).collect();
        self.quote = self.best_line(question);
        self
    }

    /// The line of the first (best-ranked) excerpt sharing the most of the question's
    /// words; headings and excerpt labels are not lines to quote.
    fn best_line(&self, question: &str) -> Option<(usize, String)> {
        let asked: HashSet<String> = content_words(question).collect();
        let (n, text) = self.texts.first()?;
        let mut best: Option<(usize, &str)> = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let shared = content_words(line).filter(|w| asked.contains(w)).count();
            if shared > 0 && best.is_none_or(|(b, _)| shared > b) {
                best = Some((shared, line));
            }
        }
        best.map(|(_, line)| (*n, line.trim_start_matches(['-', '*', ' ']).to_string()))
    }

    /// Whether a sentence has words, all of them the question's ("No." has none).
    fn restates_question(&self, sentence: &str) -> bool {
        let words: Vec<String> = content_words(sentence).collect();
        !self.asked.is_empty() && !words.is_empty() && words.iter().all(|w| self.asked.contains(w))
    }

    pub fn is_empty(&self) -> bool {
        self.excerpts.is_empty()
    }

    /// The excerpt a sentence relies on: the one sharing the most of its words (numbers
    /// count double, words found in every excerpt count less), if it shares a number or
    /// at least two words. Ties go to the better-ranked (lower-numbered) excerpt.
    pub fn attribute(&self, sentence: &str) -> Option<usize> {
        let words: HashSet<String> = content_words(sentence).collect();
        let mut best: Option<(f64, usize)> = None;
        for (n, excerpt) in &self.excerpts {
            let shared: Vec<&String> = words.iter().filter(|w| excerpt.contains(*w)).collect();
            let numbers = shared.iter().filter(|w| w.chars().any(|c| c.is_ascii_digit())).count();
            if numbers == 0 && shared.len() < 2 {
                continue;
            }
            let score: f64 = shared
                .iter()
                .map(|w| {
                    let weight = if w.chars().any(|c| c.is_ascii_digit()) { 2.0 } else { 1.0 };
                    let spread = self.excerpts.iter().filter(|(_, e)| e.contains(*w)).count();
                    weight / spread as f64
                })
                .sum();
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, *n));
            }
        }
        best.map(|(_, n)| n)
    }

    /// Whether a link or web address appears in one of the excerpts.
    fn knows(&self, link: &str) -> bool {
        let link = link.to_lowercase();
        let bare = link.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
        !bare.is_empty() && self.text.contains(bare)
    }
}

/// Reads a reply as it is generated and gives it back sentence by sentence, cleaned and
/// cited. What [`Citer::push`] and [`Citer::finish`] return, concatenated, is the reply.
#[derive(Debug)]
pub struct Citer {
    sources: Sources,
    /// Whether to add markers; spoken replies only lose the model's.
    mark: bool,
    pending: String,
    /// Whether anything of the reply was given out.
    said: bool,
}

impl Citer {
    pub fn new(sources: Sources, mark: bool) -> Citer {
        Citer { sources, mark, pending: String::new(), said: false }
    }

    /// Adds generated text; returns the sentences it completed, if any.
    pub fn push(&mut self, token: &str) -> Option<String> {
        self.pending.push_str(token);
        let mut out = String::new();
        while let Some(end) = sentence_end(&self.pending).or_else(|| self.overflow()) {
            let rest = self.pending.split_off(end);
            let piece = std::mem::replace(&mut self.pending, rest);
            out.push_str(&self.piece(&piece));
        }
        (!out.is_empty()).then_some(out)
    }

    /// The rest of the reply once generation ended. A reply that was nothing but markers,
    /// or only restated the question, quotes the line of the documents that bears on it
    /// (or says in words that it could not answer) rather than being empty.
    pub fn finish(&mut self) -> Option<String> {
        let piece = std::mem::take(&mut self.pending);
        let out = self.piece(&piece);
        if !self.said {
            self.said = true;
            return Some(match &self.sources.quote {
                Some((n, line)) if self.mark => format!("Your documents say: “{line}” [{n}]"),
                Some((_, line)) => format!("Your documents say: {line}"),
                None => NO_ANSWER.to_string(),
            });
        }
        (!out.is_empty()).then_some(out)
    }

    /// Where to cut a pending text that has grown too long without a sentence end.
    fn overflow(&self) -> Option<usize> {
        if self.pending.len() < LONGEST_PENDING {
            return None;
        }
        self.pending.rfind(char::is_whitespace).filter(|i| *i > 0).or(Some(self.pending.len()))
    }

    /// One sentence with the whitespace before it: cleaned, cited, or dropped when
    /// nothing of its own is left (a lone marker, a dangling "Source:").
    fn piece(&mut self, piece: &str) -> String {
        let body = piece.trim_start();
        let lead = &piece[..piece.len() - body.len()];
        if body.is_empty() {
            // Whitespace between sentences waits for the next one; at the end it goes.
            return String::new();
        }
        let cleaned = clean(body, &self.sources);
        if !has_words(&cleaned) || self.sources.restates_question(&cleaned) {
            return String::new();
        }
        let cited = match self.sources.attribute(&cleaned).filter(|_| self.mark) {
            Some(n) => with_marker(&cleaned, n),
            None => cleaned,
        };
        let lead = if self.said { lead } else { "" };
        self.said = true;
        format!("{lead}{cited}")
    }
}

/// The end of the first sentence in `text` (after its closing punctuation, or before a
/// line break), once what follows shows it ended; leading whitespace belongs to it.
fn sentence_end(text: &str) -> Option<usize> {
    let start = text.len() - text.trim_start().len();
    let mut chars = text[start..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let i = start + i;
        if c == '\n' {
            return Some(i);
        }
        if matches!(c, '.' | '!' | '?') {
            match chars.peek() {
                Some((_, next)) if next.is_whitespace() => return Some(i + c.len_utf8()),
                Some(_) => {}
                None => return None,
            }
        }
    }
    None
}

/// Whether a sentence says something once punctuation is set aside.
fn has_words(sentence: &str) -> bool {
    sentence.chars().any(char::is_alphanumeric)
        && !matches!(
            sentence.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().as_str(),
            "source" | "sources" | "reference" | "references" | "citation" | "citations" | "excerpt"
        )
}

/// `sentence` with `[n]` before its closing punctuation: `… 1.5 bar [1].`
fn with_marker(sentence: &str, n: usize) -> String {
    let body = sentence.trim_end_matches(['.', '!', '?', ':', ';', ',']);
    let body_trimmed = body.trim_end();
    format!("{body_trimmed} [{n}]{}", &sentence[body.len()..])
}

/// A sentence without the model's own citation markers, `(from "x.md")` notes, labels
/// left dangling ("Source:") and links that appear in no excerpt (the whole sentence
/// goes: it was about the invented page).
fn clean(sentence: &str, sources: &Sources) -> String {
    if sentence.split_whitespace().any(|w| is_link(w).is_some_and(|link| !sources.knows(link))) {
        return String::new();
    }
    let mut out = String::with_capacity(sentence.len());
    let mut rest = sentence;
    while let Some(open) = rest.find(['[', '(']) {
        out.push_str(&rest[..open]);
        let close = if rest[open..].starts_with('[') { ']' } else { ')' };
        match rest[open + 1..].find(close) {
            Some(len) if is_marker(&rest[open + 1..open + 1 + len], close == ']') => {
                // The space before a marker goes with it: "bar [1]." is "bar.".
                out.truncate(out.trim_end().len());
                rest = &rest[open + 1 + len + 1..];
            }
            _ => {
                out.push_str(&rest[open..open + 1]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    // Labels whose marker was removed: "Source: ." or "Sources:" before the claim.
    let mut out = out.trim().to_string();
    for label in ["source:", "sources:", "reference:", "references:", "citation:", "citations:"] {
        if out.len() >= label.len() && out[..label.len()].eq_ignore_ascii_case(label) {
            out = out[label.len()..].trim_start_matches([' ', '.', ',', ';']).to_string();
        }
    }
    let out = without_file_opener(out.trim_start_matches(['.', ',', ';', ':', ' ']));
    out.trim_end().to_string()
}

/// A sentence without an opening "From boiler.md," or "According to boiler.md:" (the
/// reader is not told about files), its next letter made a capital.
fn without_file_opener(sentence: &str) -> String {
    let lower = sentence.to_lowercase();
    let Some(rest_at) =
        ["from ", "according to ", "in "].iter().find_map(|p| lower.starts_with(p).then_some(p.len()))
    else {
        return sentence.to_string();
    };
    let rest = &sentence[rest_at..];
    let Some(end) = rest.find([',', ':']) else { return sentence.to_string() };
    let name = rest[..end].trim().trim_matches(['"', '“', '”', '\'', '`']);
    if name.contains(char::is_whitespace) || !is_file_name(name) {
        return sentence.to_string();
    }
    let after = rest[end + 1..].trim_start();
    let mut chars = after.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What a bracket or parenthesis holds when it is a citation marker: numbers in square
/// brackets (`1`, `1, 2`, `^3`, `1-2`; in parentheses they may be a year), a numbered
/// source (`Excerpt 2`, `source #1`), or where from (`from "boiler.md"`, `boiler.md`).
fn is_marker(inner: &str, square: bool) -> bool {
    let inner = inner.trim().trim_start_matches('^').trim();
    if square
        && !inner.is_empty()
        && inner.chars().any(|c| c.is_ascii_digit())
        && inner.chars().all(|c| c.is_ascii_digit() || matches!(c, ',' | ';' | '-' | ' '))
    {
        return true;
    }
    let lower = inner.to_lowercase();
    for label in
        ["excerpts", "excerpt", "sources", "source", "documents", "document", "references", "reference"]
    {
        if let Some(rest) = lower.strip_prefix(label) {
            let rest = rest.trim_start().trim_start_matches([':', '#']).trim_start();
            if rest.chars().next().is_some_and(|c| c.is_ascii_digit()) || is_file_name(rest) {
                return true;
            }
        }
    }
    let named = lower.strip_prefix("from ").unwrap_or(&lower);
    is_file_name(named.trim())
}

/// `boiler.md`, `"notes.txt"`, `“Car records.pdf”`.
fn is_file_name(text: &str) -> bool {
    let name = text
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '“' | '”' | '‘' | '’') || c.is_whitespace());
    let Some((stem, ext)) = name.rsplit_once('.') else { return false };
    !stem.is_empty()
        && !name.contains('\n')
        && matches!(ext, "md" | "txt" | "pdf" | "html" | "htm" | "doc" | "docx" | "odt" | "rtf" | "csv")
}

/// The link a word is (a URL or a web address), without the punctuation around it.
fn is_link(word: &str) -> Option<&str> {
    let word = word.trim_matches(|c: char| {
        matches!(
            c,
            '(' | ')' | '<' | '>' | '"' | '\'' | '`' | '*' | ',' | ';' | ':' | '!' | '?' | '.' | '[' | ']'
        )
    });
    let lower = word.to_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("www.") {
        return Some(word);
    }
    if word.contains('@') {
        return None;
    }
    let host = lower.split('/').next().unwrap_or("");
    let labels: Vec<&str> = host.split('.').collect();
    let tld = labels.last().copied().unwrap_or("");
    let plausible = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && DOMAINS.contains(&tld);
    plausible.then_some(word)
}

/// Lowercased words that can tell excerpts apart: no stopwords, no single letters;
/// numbers and codes keep their inner punctuation (`1.5`, `0w-20`, `21:00`, `58,200`).
pub(super) fn content_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | ',' | ':' | '-' | '\'' | '’')))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit())) && !w.is_empty())
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources::new([
            (1, "The pressure on the gauge should be between 1.0 and 1.5 bar when the heating is off."),
            (2, "Fault F28: the flame did not light. Check the gas valve in the garage, then press RESET."),
            (3, "The manual is at https://boilers.example.com/manual and the installer is Heatwise."),
        ])
    }

    /// The reply fed a few characters at a time, as an engine's tokens come.
    fn cite(reply: &str, mark: bool) -> String {
        let mut citer = Citer::new(sources(), mark);
        let chars: Vec<char> = reply.chars().collect();
        let mut out = String::new();
        for piece in chars.chunks(3) {
            out.extend(citer.push(&piece.iter().collect::<String>()));
        }
        out.extend(citer.finish());
        out
    }

    #[test]
    fn a_sentence_gets_the_marker_of_the_excerpt_it_relies_on() {
        assert_eq!(cite("The pressure should be 1.5 bar.", true), "The pressure should be 1.5 bar [1].");
        assert_eq!(
            cite("F28 means the flame did not light. Check the gas valve.", true),
            "F28 means the flame did not light [2]. Check the gas valve [2]."
        );
        assert_eq!(cite("Hello there!", true), "Hello there!", "nothing shared, nothing cited");
    }

    #[test]
    fn a_reply_that_only_restates_the_question_gives_way_to_the_line_that_answers_it() {
        let excerpts = [
            (1, "## The router\nLook at the fibre box first: the light labelled PON must be solid green.\nA red LOS light means the line is down."),
            (2, "## Wi-Fi\nThe mesh light turns amber when it is too far away."),
        ];
        let question = "Which light on the fibre box should be solid green?";
        let run = |reply: &str, mark: bool| {
            let mut citer = Citer::new(Sources::new(excerpts).for_question(question), mark);
            let mut out: String = citer.push(reply).unwrap_or_default();
            out.extend(citer.finish());
            out
        };
        assert_eq!(
            run("The light on the fibre box should be solid green [1].", true),
            "Your documents say: “Look at the fibre box first: the light labelled PON must be solid green.” [1]"
        );
        assert_eq!(
            run("The light on the fibre box should be solid green.", false),
            "Your documents say: Look at the fibre box first: the light labelled PON must be solid green."
        );
        // Anything new keeps the reply, and a restating sentence beside it just goes.
        assert_eq!(
            run("The PON light should be solid green.", true),
            "The PON light should be solid green [1]."
        );
        assert_eq!(
            run("The light should be solid green. It is the one labelled PON.", true),
            "It is the one labelled PON [1]."
        );
        assert_eq!(run("No.", true), "No.", "a short answer has no words to restate");
    }

    #[test]
    fn the_models_markers_and_file_notes_go() {
        assert_eq!(cite("[1]", true), NO_ANSWER, "never only a marker, never empty");
        assert_eq!(cite("[1] (from \"boiler.md\")", true), NO_ANSWER);
        assert_eq!(cite("Source: [2].", true), NO_ANSWER);
        assert_eq!(cite("From boiler.md, the pressure is 1.5 bar.", true), "The pressure is 1.5 bar [1].");
        assert_eq!(cite("According to \"boiler.md\": press RESET.", true), "Press RESET [2].");
        assert_eq!(
            cite("In 2024, the pressure was 1.5 bar.", true),
            "In 2024, the pressure was 1.5 bar [1]."
        );
        assert_eq!(cite("[1] The pressure is 1.5 bar [1, 2].", true), "The pressure is 1.5 bar [1].");
        assert_eq!(
            cite("Source: [1]. Press RESET on the gas valve.", true),
            "Press RESET on the gas valve [2]."
        );
        assert_eq!(
            cite("It should be 1.5 bar (from \"boiler.md\") [Excerpt 1].", true),
            "It should be 1.5 bar [1]."
        );
        assert_eq!(
            cite("The pressure is 1.5 bar [^1].", false),
            "The pressure is 1.5 bar.",
            "spoken: no markers"
        );
    }

    #[test]
    fn what_is_not_a_marker_stays() {
        assert_eq!(cite("Use the (grey) key [spare].", false), "Use the (grey) key [spare].");
        assert_eq!(cite("Call 0800 555 0199 (free).", false), "Call 0800 555 0199 (free).");
        assert_eq!(cite("Costs (2024): £289.", false), "Costs (2024): £289.");
    }

    #[test]
    fn invented_links_go_with_their_sentence_and_real_ones_stay() {
        assert_eq!(
            cite("The pressure is 1.5 bar. See https://example.org/boiler for more.", true),
            "The pressure is 1.5 bar [1]."
        );
        assert_eq!(cite("Visit docs.hearth.com/boiler.", true), NO_ANSWER);
        assert_eq!(
            cite("The manual is at https://boilers.example.com/manual.", true),
            "The manual is at https://boilers.example.com/manual [3]."
        );
        assert_eq!(
            cite("Mail heatwise@example.com or see 192.168.1.50.", false),
            "Mail heatwise@example.com or see 192.168.1.50."
        );
    }

    #[test]
    fn decimals_and_lines_do_not_end_sentences_early() {
        assert_eq!(sentence_end("It is 1.5 bar"), None);
        assert_eq!(sentence_end("It is 1.5 bar."), None, "what follows is not known yet");
        assert_eq!(sentence_end("It is 1.5 bar. Then"), Some(14));
        assert_eq!(sentence_end("\n- one\n- two"), Some(6));
        assert_eq!(
            cite("Steps:\n- Check the gas valve\n- Press RESET", true),
            "Steps:\n- Check the gas valve [2]\n- Press RESET [2]"
        );
    }

    #[test]
    fn attribution_prefers_shared_numbers_and_rare_words() {
        let s = sources();
        assert_eq!(s.attribute("Keep it at 1.5 bar"), Some(1));
        assert_eq!(s.attribute("The installer is Heatwise"), Some(3));
        assert_eq!(s.attribute("the gauge"), None, "one shared word is not enough");
        assert_eq!(Sources::new([]).attribute("anything at all"), None);
    }

    #[test]
    fn a_long_line_without_an_end_is_let_through() {
        let mut citer = Citer::new(sources(), true);
        let long = "word ".repeat(200);
        assert!(citer.push(&long).is_some_and(|out| out.len() >= LONGEST_PENDING - 5));
    }
}
