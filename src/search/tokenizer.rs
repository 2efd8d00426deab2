//! Words for the index: runs of letters and digits, except that each CJK character
//! (Chinese, Japanese kana, Korean) is a token of its own. Those scripts do not put
//! spaces between words, and a whole sentence as one token could never match; single
//! characters scored with BM25 find text written in them well enough without a
//! dictionary.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

#[derive(Clone, Default)]
pub struct WordTokenizer {
    token: Token,
}

pub struct WordStream<'a> {
    text: &'a str,
    at: usize,
    token: &'a mut Token,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B-F and supplements
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.token.reset();
        WordStream { text, at: 0, token: &mut self.token }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.at..];
        let Some((skip, first)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
            self.at = self.text.len();
            return false;
        };
        let start = self.at + skip;
        let end = if is_cjk(first) {
            start + first.len_utf8()
        } else {
            let word = &self.text[start..];
            start + word.find(|c: char| !c.is_alphanumeric() || is_cjk(c)).unwrap_or(word.len())
        };
        self.at = end;
        self.token.text.clear();
        self.token.text.push_str(&self.text[start..end]);
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut tokenizer = WordTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn words_split_on_punctuation_and_cjk_characters_stand_alone() {
        assert_eq!(words("Wi-Fi password: otter42!"), ["Wi", "Fi", "password", "otter42"]);
        assert_eq!(words("访客网络的密码"), ["访", "客", "网", "络", "的", "密", "码"]);
        assert_eq!(words("密码是otter"), ["密", "码", "是", "otter"]);
        assert_eq!(words("café naïve"), ["café", "naïve"]);
        assert!(words(" ... ").is_empty());
    }
}
