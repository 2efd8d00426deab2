//! Excerpts shaped for a small model: tables as lines of named cells, and only the
//! sentences of the retrieved chunks that bear on the question. With whole chunks the
//! default 0.5B model often took a fact from the wrong line, or echoed the question
//! (issue 22); fewer, relevant lines under their heading are easier to read.

use crate::search::ends_compound;
use std::collections::{HashMap, HashSet};

/// A unit is kept when it scores at least this share of its chunk's best unit.
const KEEP_SHARE: f64 = 0.6;
/// Sentences longer than this are not split further (a unit is a sentence, a list item
/// or a table row).
const SENTENCE_MIN: usize = 20;

/// One chunk's text cut into headings and units, in document order.
struct Parsed {
    /// `(heading, unit)`: the heading each unit is under (an index into `headings`).
    units: Vec<(Option<usize>, String)>,
    headings: Vec<String>,
}

/// The chunks' texts, each reduced to its units (sentences, list items, table rows) that
/// share the question's rarer words, under their headings: a unit scores the BM25 weights
/// of the question's words it holds (weighed over the units of all the chunks), and a
/// chunk keeps its units within [`KEEP_SHARE`] of its best one. `texts` say whether
/// retrieval found each chunk by its words (BM25): such a chunk that shares no word with
/// the question after all is left out (`None`); one found only by meaning (embeddings)
/// stays whole, as all do when none shares a word.
pub fn focus(question: &str, texts: &[(String, bool)]) -> Vec<Option<String>> {
    let parsed: Vec<Parsed> = texts.iter().map(|(t, _)| parse(t)).collect();
    let asked: HashSet<String> = words(question).collect();
    // A unit is read with the heading it is under ("## Service history" for a row of costs).
    let unit_words: Vec<Vec<HashSet<String>>> = parsed
        .iter()
        .map(|p| {
            p.units
                .iter()
                .map(|(heading, unit)| {
                    let heading = heading.map(|h| p.headings[h].as_str()).unwrap_or("");
                    // "grapefruit" answers "Which fruit ...?" (as retrieval found it).
                    let asked_as = |w: String| match asked.iter().find(|a| ends_compound(&w, a)) {
                        Some(a) => a.clone(),
                        None => w,
                    };
                    words(unit).chain(words(heading)).map(asked_as).collect()
                })
                .collect()
        })
        .collect();
    let total = unit_words.iter().map(Vec::len).sum::<usize>() as f64;
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for unit in unit_words.iter().flatten() {
        for word in unit.iter().filter(|w| asked.contains(*w)) {
            *frequency.entry(word.as_str()).or_default() += 1;
        }
    }
    // BM25's inverse document frequency, over the units of all the excerpts.
    let weight = |df: usize| ((total - df as f64 + 0.5) / (df as f64 + 0.5) + 1.0).ln();
    let score = |unit: &HashSet<String>| -> f64 {
        unit.iter().filter_map(|w| frequency.get(w.as_str())).map(|df| weight(*df)).sum()
    };
    if frequency.is_empty() {
        return texts.iter().map(|(t, _)| Some(t.clone())).collect();
    }
    parsed
        .iter()
        .zip(&unit_words)
        .zip(texts)
        .map(|((parsed, units), (text, by_words))| {
            let scores: Vec<f64> = units.iter().map(score).collect();
            // Which chunks bear on the question is retrieval's call: only a chunk it found
            // by words without a single word of the question goes (one found by meaning
            // stays whole). Within a chunk, its best units stay.
            let best = scores.iter().copied().fold(0.0, f64::max);
            if best <= 0.0 {
                return (!by_words).then(|| text.clone());
            }
            let hits: Vec<usize> = (0..scores.len()).filter(|u| scores[*u] >= best * KEEP_SHARE).collect();
            // Prose keeps the sentences on either side under the same heading: the fact is
            // often told next to the words the question uses ("Check the gauge." "It
            // should sit at 1.5 bar."). List items and table rows stand alone.
            let prose = |u: usize| !is_item(&parsed.units[u].1);
            let mut kept: Vec<usize> = hits
                .iter()
                .flat_map(|&u| [u.checked_sub(1), Some(u), Some(u + 1)])
                .flatten()
                .filter(|&v| v < parsed.units.len())
                .filter(|&v| {
                    hits.contains(&v)
                        || hits.iter().any(|&u| {
                            u.abs_diff(v) == 1
                                && prose(u)
                                && prose(v)
                                && parsed.units[u].0 == parsed.units[v].0
                        })
                })
                .collect();
            kept.sort_unstable();
            kept.dedup();
            Some(render(parsed, &kept))
        })
        .collect()
}

/// A list item or a table row (a unit that stands alone).
fn is_item(unit: &str) -> bool {
    unit.starts_with("- ") || unit.starts_with("* ") || unit.starts_with('|')
}

/// The kept units, one a line, each heading once before the first unit under it.
fn render(parsed: &Parsed, kept: &[usize]) -> String {
    let mut lines = Vec::new();
    let mut heading = None;
    for &u in kept {
        let (under, unit) = &parsed.units[u];
        if *under != heading {
            if let Some(h) = under {
                lines.push(parsed.headings[*h].clone());
            }
            heading = *under;
        }
        lines.push(unit.clone());
    }
    lines.join("\n")
}

/// Headings, list items and paragraphs (hard-wrapped lines joined), paragraphs cut into
/// sentences.
fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed { units: Vec::new(), headings: Vec::new() };
    let mut heading = None;
    let mut block = String::new();
    let flush = |block: &mut String, heading: Option<usize>, parsed: &mut Parsed| {
        let text = std::mem::take(block);
        if is_item(&text) {
            parsed.units.push((heading, text));
        } else {
            for sentence in sentences(&text) {
                parsed.units.push((heading, sentence));
            }
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let starts_item = trimmed.starts_with("- ")
            || trimmed.starts_with("* ")
            || trimmed.starts_with('|')
            || trimmed
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let block_ends = trimmed.is_empty() || trimmed.starts_with('#') || starts_item;
        if block_ends && !block.is_empty() {
            flush(&mut block, heading, &mut parsed);
        }
        if trimmed.starts_with('#') {
            parsed.headings.push(trimmed.to_string());
            heading = Some(parsed.headings.len() - 1);
        } else if !trimmed.is_empty() {
            if !block.is_empty() {
                block.push(' ');
            }
            block.push_str(trimmed);
        }
    }
    if !block.is_empty() {
        flush(&mut block, heading, &mut parsed);
    }
    parsed
}

/// A paragraph cut after `.`, `!` or `?` followed by a space and a capital letter or a
/// digit; pieces shorter than [`SENTENCE_MIN`] stay with the next (the last with the one
/// before).
fn sentences(paragraph: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = paragraph.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        current.push(*c);
        let ends = matches!(c, '.' | '!' | '?')
            && chars.get(i + 1) == Some(&' ')
            && chars.get(i + 2).is_some_and(|n| n.is_uppercase() || n.is_ascii_digit());
        if ends && current.trim().chars().count() >= SENTENCE_MIN {
            out.push(current.trim().to_string());
            current.clear();
        }
    }
    let rest = current.trim();
    match out.last_mut() {
        Some(last) if !rest.is_empty() && rest.chars().count() < SENTENCE_MIN => {
            last.push(' ');
            last.push_str(rest);
        }
        _ if !rest.is_empty() => out.push(rest.to_string()),
        _ => {}
    }
    out
}

/// Lowercased content words, possessives and the endings `s` and `ing` removed, so that
/// "services" meets "service", "Dad's" meets "Dad" and "keeping" meets "keeps". A
/// hyphenated word counts whole and as its parts: "Check-out" meets "check out" (as in
/// the search index, whose words split at hyphens).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    let parts = |w: String| {
        let split: Vec<String> = if w.contains('-') {
            w.split('-').filter(|p| p.chars().count() > 1).map(String::from).collect()
        } else {
            Vec::new()
        };
        std::iter::once(w).chain(split)
    };
    super::cite::content_words(text).flat_map(parts).map(|w| {
        let w = w.trim_end_matches("'s").trim_end_matches("’s");
        let w = match w.strip_suffix("ing") {
            Some(stem) if stem.chars().count() >= 3 => stem,
            _ => w,
        };
        match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_string(),
            _ => w.to_string(),
        }
    })
}

/// Markdown tables as one line per row, each cell named by its column
/// (`- date: 14 March 2025; cost: £289`): a small model reads a row's facts together
/// more reliably than it lines up cells with a header rows above.
pub fn rows_as_lines(text: &str) -> String {
    fn cells(line: &str) -> Option<Vec<&str>> {
        let line = line.trim();
        let inner = line.strip_prefix('|')?.strip_suffix('|')?;
        Some(inner.split('|').map(str::trim).collect())
    }
    fn is_rule(cells: &[&str]) -> bool {
        cells.iter().all(|c| {
            let c = c.trim_matches(':');
            !c.is_empty() && c.chars().all(|ch| ch == '-')
        })
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut header: Option<Vec<&str>> = None;
    let mut i = 0;
    while i < lines.len() {
        let row = cells(lines[i]);
        if let Some(row) = &row {
            if lines.get(i + 1).and_then(|next| cells(next)).is_some_and(|next| is_rule(&next)) {
                header = Some(row.clone());
                i += 2;
                continue;
            }
        }
        match (&row, &header) {
            (Some(row), Some(header)) => {
                let named: Vec<String> = header
                    .iter()
                    .zip(row)
                    .filter(|(_, value)| !value.is_empty())
                    .map(
                        |(name, value)| {
                            if name.is_empty() {
                                value.to_string()
                            } else {
                                format!("{name}: {value}")
                            }
                        },
                    )
                    .collect();
                out.push(format!("- {}", named.join("; ")));
            }
            _ => {
                if row.is_none() {
                    header = None;
                }
                out.push(lines[i].to_string());
            }
        }
        i += 1;
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOILER: &str = "# Boiler notes\n\nThe boiler hangs in the utility room. The boiler heats the\nradiators and gives hot water.\n\n\
        ## Fault codes\n\n- F22: low water pressure.\n- F28: the flame did not light. Check the gas\n  valve, then press RESET.\n\n\
        To reset, hold the RESET button for 5 seconds. The boiler then restarts.";
    const CAR: &str = "## MOT\n\nThe MOT certificate expires on 2 October 2025.";

    #[test]
    fn the_units_sharing_the_questions_rarer_words_stay_under_their_heading() {
        let texts = vec![(BOILER.to_string(), true), (CAR.to_string(), true)];
        let focused = focus("What does F28 on the boiler mean?", &texts);
        assert_eq!(
            focused[0].as_deref(),
            Some("## Fault codes\n- F28: the flame did not light. Check the gas valve, then press RESET."),
            "a list item stands alone"
        );
        assert_eq!(focused[1], None, "nothing of the car's notes");
        let focused = focus("How long do I hold the reset button?", &texts);
        assert!(
            focused[0].as_deref().unwrap().ends_with("for 5 seconds.\nThe boiler then restarts."),
            "a sentence comes with its neighbour: {focused:?}"
        );
        assert!(!focused[0].as_deref().unwrap().contains("F22"), "{focused:?}");
    }

    #[test]
    fn hyphenated_and_compound_words_meet_the_questions_words() {
        let rules = "## Arriving and leaving\n\nThe spare key is in the grey lockbox. Check-out is by 11:00 on the last day. \
            Please strip the beds.\n\n## Food\n\n- No grapefruit or grapefruit juice.\n- Bread is in the bin.";
        let texts = vec![(rules.to_string(), true)];
        let focused = focus("By what time do guests have to check out?", &texts);
        assert!(focused[0].as_deref().unwrap().contains("Check-out is by 11:00"), "{focused:?}");
        let focused = focus("Which fruit must Dad avoid?", &texts);
        assert_eq!(
            focused[0].as_deref(),
            Some("## Food\n- No grapefruit or grapefruit juice."),
            "{focused:?}"
        );
        // A short word is not found inside longer ones ("bin" in "cabin" would be).
        assert!(!crate::search::ends_compound("cabin", "bin"));
        assert!(crate::search::ends_compound("grapefruit", "fruit"));
        assert!(!crate::search::ends_compound("fruit", "fruit"), "the same word is not a compound");
    }

    #[test]
    fn without_shared_words_everything_stays() {
        let texts = vec![(BOILER.to_string(), true), (CAR.to_string(), true)];
        assert_eq!(focus("Is it warm enough?", &texts), [Some(BOILER.to_string()), Some(CAR.to_string())]);
        let by_meaning = vec![(BOILER.to_string(), false), (CAR.to_string(), true)];
        assert_eq!(
            focus("When does the MOT expire?", &by_meaning)[0].as_deref(),
            Some(BOILER),
            "found by meaning"
        );
        let focused = focus("When does the MOT expire?", &texts);
        assert_eq!(focused, [None, Some("## MOT\nThe MOT certificate expires on 2 October 2025.".into())]);
    }

    #[test]
    fn paragraphs_are_cut_into_sentences_and_wrapped_lines_joined() {
        let parsed = parse(BOILER);
        let units: Vec<&str> = parsed.units.iter().map(|(_, u)| u.as_str()).collect();
        assert_eq!(
            units,
            [
                "The boiler hangs in the utility room.",
                "The boiler heats the radiators and gives hot water.",
                "- F22: low water pressure.",
                "- F28: the flame did not light. Check the gas valve, then press RESET.",
                "To reset, hold the RESET button for 5 seconds.",
                "The boiler then restarts.",
            ]
        );
        assert_eq!(
            sentences("Keep the needle at 1.5 bar. Below 0.8 bar it stops. Top up."),
            ["Keep the needle at 1.5 bar.", "Below 0.8 bar it stops. Top up."]
        );
        assert_eq!(words("Dad's services keeping").collect::<Vec<_>>(), ["dad", "service", "keep"]);
    }

    #[test]
    fn table_rows_become_lines_of_named_cells() {
        let table = "## Service\n\n| date | cost |\n|---|:--:|\n| 2 May 2024 | £149 |\n| 3 June 2025 | |\n\nNext: March.";
        assert_eq!(
            rows_as_lines(table),
            "## Service\n\n- date: 2 May 2024; cost: £149\n- date: 3 June 2025\n\nNext: March."
        );
        assert_eq!(rows_as_lines("a | b\n| x |"), "a | b\n| x |", "no header rule, no table");
    }
}
