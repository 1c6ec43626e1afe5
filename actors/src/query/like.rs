//! LIKE patterns (`~`, `!~`, `contains`, `startsWith`, `endsWith`, SQL `LIKE`): compiled once
//! per filter into a [`LikePattern`], matched in time linear in the text.
//!
//! Semantics: case-insensitive (pattern and text lower-cased character by character, keeping
//! the first character of `char::to_lowercase`); `%` matches any run of characters, `_`
//! exactly one, `\` takes the next character literally (a trailing `\` is itself); the pattern
//! must match the whole text.
//!
//! How: the pattern is cut at its `%`s into segments of literal characters and `_`s. Without a
//! `%` the one segment must be the whole text. Otherwise the first segment must match at the
//! start, the last one at the end, and each one between is found left to right at its leftmost
//! occurrence after the previous one: taking the earliest occurrence never loses a match, since
//! it leaves the most text to the segments after it. A segment of literal characters is found
//! with `memchr::memmem` (linear, vectorised); one with `_`s by the bit-parallel Shift-And
//! algorithm (one step per character of text for every 64 characters of the segment). Every scan
//! starts where the previous segment ended and none goes back, so a match costs
//! O(text × ⌈longest segment / 64⌉) at most, whatever the pattern.

use std::borrow::Cow;
use std::fmt;

use memchr::memmem;

/// Lower-cases one character for matching: characters whose lower case is several characters
/// keep the first, which is enough to compare.
pub fn fold_case(character: char) -> char {
    character.to_lowercase().next().unwrap_or(character)
}

/// `text` with every character passed through [`fold_case`] (borrowed when nothing changes).
fn folded(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|byte| byte.is_ascii_uppercase()) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        }
    } else {
        Cow::Owned(text.chars().map(fold_case).collect())
    }
}

/// Whether a LIKE pattern contains a `%` that is not escaped.
pub fn has_unescaped_percent(pattern: &str) -> bool {
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                characters.next();
            }
            '%' => return true,
            _ => {}
        }
    }
    false
}

/// Escapes `%`, `_` and `\` so that `text` matches itself literally inside a LIKE pattern.
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// A compiled LIKE pattern. Equal, printed and shown as its source text.
#[derive(Clone)]
pub struct LikePattern {
    source: String,
    shape: Shape,
}

#[derive(Clone)]
enum Shape {
    /// No `%`: the segment is the whole text.
    Whole(Segment),
    /// `prefix % middle % … % suffix` (the prefix and the suffix may be empty; empty middle
    /// segments, from `%%`, are left out).
    Runs {
        prefix: Segment,
        middle: Vec<Floating>,
        suffix: Segment,
    },
}

/// A run of pattern characters between `%`s: folded literal characters, `None` for `_`.
#[derive(Clone, Default)]
struct Segment {
    pieces: Vec<Option<char>>,
}

impl Segment {
    /// The byte offset just after this segment when it matches at the start of `text`.
    fn match_at_start(&self, text: &str) -> Option<usize> {
        let mut end = 0usize;
        let mut characters = text.char_indices();
        for piece in &self.pieces {
            let (at, character) = characters.next()?;
            if piece.is_some_and(|expected| expected != character) {
                return None;
            }
            end = at + character.len_utf8();
        }
        Some(end)
    }

    /// The byte offset where this segment starts when it matches at the end of `text`.
    fn match_at_end(&self, text: &str) -> Option<usize> {
        let mut start = text.len();
        let mut characters = text.char_indices().rev();
        for piece in self.pieces.iter().rev() {
            let (at, character) = characters.next()?;
            if piece.is_some_and(|expected| expected != character) {
                return None;
            }
            start = at;
        }
        Some(start)
    }
}

/// A segment between two `%`s, with what finds its leftmost occurrence.
#[derive(Clone)]
enum Floating {
    /// Literal characters only: their folded UTF-8 (UTF-8 is self-synchronising, so a byte
    /// match is a character match).
    Literal(memmem::Finder<'static>),
    /// With `_`s.
    Wildcards(ShiftAnd),
}

impl Floating {
    fn new(segment: &Segment) -> Floating {
        if segment.pieces.iter().all(Option::is_some) {
            let needle: String = segment.pieces.iter().flatten().collect();
            Floating::Literal(memmem::Finder::new(needle.as_bytes()).into_owned())
        } else {
            Floating::Wildcards(ShiftAnd::new(&segment.pieces))
        }
    }

    /// The byte offset just after the leftmost occurrence in `text`. Every occurrence of a
    /// segment is as many characters long, so the leftmost one also ends first.
    fn find_end(&self, text: &str) -> Option<usize> {
        match self {
            Floating::Literal(finder) => finder
                .find(text.as_bytes())
                .map(|at| at + finder.needle().len()),
            Floating::Wildcards(automaton) => automaton.find_end(text),
        }
    }
}

/// The Shift-And automaton of one segment: bit `i` of the state is set when the last `i + 1`
/// characters read match the segment's first `i + 1` pieces.
#[derive(Clone)]
struct ShiftAnd {
    /// u64 words per mask (and per state).
    words: usize,
    /// The word and bit of the segment's last piece: set in the state on a match.
    last_word: usize,
    last_bit: u64,
    /// The mask of each ASCII character, `words` words each, in character order.
    ascii: Vec<u64>,
    /// The masks of the segment's other characters, sorted by character.
    others: Vec<(char, Vec<u64>)>,
    /// The mask of every other character: the positions of the `_`s.
    anything: Vec<u64>,
}

impl ShiftAnd {
    fn new(pieces: &[Option<char>]) -> ShiftAnd {
        let words = pieces.len().div_ceil(64).max(1);
        let last = pieces.len().saturating_sub(1);
        let mut anything = vec![0u64; words];
        for (position, piece) in pieces.iter().enumerate() {
            if piece.is_none() {
                anything[position / 64] |= 1u64 << (position % 64);
            }
        }
        let mut ascii = anything.repeat(128);
        let mut others: Vec<(char, Vec<u64>)> = Vec::new();
        for (position, piece) in pieces.iter().enumerate() {
            let Some(character) = *piece else {
                continue;
            };
            let (word, bit) = (position / 64, 1u64 << (position % 64));
            match u8::try_from(character).ok().filter(u8::is_ascii) {
                Some(byte) => {
                    if let Some(mask) = ascii.get_mut(usize::from(byte) * words + word) {
                        *mask |= bit;
                    }
                }
                None => {
                    let at = match others.binary_search_by_key(&character, |(known, _)| *known) {
                        Ok(at) => at,
                        Err(at) => {
                            others.insert(at, (character, anything.clone()));
                            at
                        }
                    };
                    if let Some(mask) = others.get_mut(at).and_then(|(_, mask)| mask.get_mut(word))
                    {
                        *mask |= bit;
                    }
                }
            }
        }
        ShiftAnd {
            words,
            last_word: last / 64,
            last_bit: 1u64 << (last % 64),
            ascii,
            others,
            anything,
        }
    }

    fn mask(&self, character: char) -> &[u64] {
        if let Some(byte) = u8::try_from(character).ok().filter(u8::is_ascii) {
            let start = usize::from(byte) * self.words;
            return self
                .ascii
                .get(start..start + self.words)
                .unwrap_or(&self.anything);
        }
        match self
            .others
            .binary_search_by_key(&character, |(known, _)| *known)
        {
            Ok(at) => self
                .others
                .get(at)
                .map_or(&self.anything[..], |(_, mask)| &mask[..]),
            Err(_) => &self.anything,
        }
    }

    fn find_end(&self, text: &str) -> Option<usize> {
        if self.words == 1 {
            let mut state = 0u64;
            if text.is_ascii() {
                // One byte is one character: the table lookup alone.
                for (at, byte) in text.bytes().enumerate() {
                    let mask = self.ascii.get(usize::from(byte)).copied().unwrap_or(0);
                    state = ((state << 1) | 1) & mask;
                    if state & self.last_bit != 0 {
                        return Some(at + 1);
                    }
                }
                return None;
            }
            for (at, character) in text.char_indices() {
                let mask = self.mask(character).first().copied().unwrap_or(0);
                state = ((state << 1) | 1) & mask;
                if state & self.last_bit != 0 {
                    return Some(at + character.len_utf8());
                }
            }
            return None;
        }
        let mut state = vec![0u64; self.words];
        for (at, character) in text.char_indices() {
            let mut carry = 1u64;
            for (word, mask) in state.iter_mut().zip(self.mask(character)) {
                let next_carry = *word >> 63;
                *word = ((*word << 1) | carry) & mask;
                carry = next_carry;
            }
            if state
                .get(self.last_word)
                .is_some_and(|word| word & self.last_bit != 0)
            {
                return Some(at + character.len_utf8());
            }
        }
        None
    }
}

impl LikePattern {
    /// Compiles `source` (the effective pattern: a `~` operand without `%` is already wrapped
    /// in `%…%` by the filter spellings).
    pub fn new(source: impl Into<String>) -> LikePattern {
        let source = source.into();
        let mut segments = vec![Segment::default()];
        let mut characters = source.chars();
        while let Some(character) = characters.next() {
            let piece = match character {
                '%' => {
                    segments.push(Segment::default());
                    continue;
                }
                '_' => None,
                '\\' => Some(fold_case(characters.next().unwrap_or('\\'))),
                other => Some(fold_case(other)),
            };
            if let Some(segment) = segments.last_mut() {
                segment.pieces.push(piece);
            }
        }
        let shape = if segments.len() == 1 {
            Shape::Whole(segments.pop().unwrap_or_default())
        } else {
            let suffix = segments.pop().unwrap_or_default();
            let mut segments = segments.into_iter();
            let prefix = segments.next().unwrap_or_default();
            let middle = segments
                .filter(|segment| !segment.pieces.is_empty())
                .map(|segment| Floating::new(&segment))
                .collect();
            Shape::Runs {
                prefix,
                middle,
                suffix,
            }
        };
        LikePattern { source, shape }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text = folded(text);
        match &self.shape {
            Shape::Whole(segment) => segment.match_at_start(&text) == Some(text.len()),
            Shape::Runs {
                prefix,
                middle,
                suffix,
            } => {
                let (Some(start), Some(end)) =
                    (prefix.match_at_start(&text), suffix.match_at_end(&text))
                else {
                    return false;
                };
                let Some(mut rest) = text.get(start..end) else {
                    // The prefix and the suffix overlap.
                    return false;
                };
                for segment in middle {
                    match segment.find_end(rest).and_then(|after| rest.get(after..)) {
                        Some(after) => rest = after,
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

impl From<&str> for LikePattern {
    fn from(source: &str) -> Self {
        LikePattern::new(source)
    }
}

impl From<String> for LikePattern {
    fn from(source: String) -> Self {
        LikePattern::new(source)
    }
}

impl PartialEq for LikePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for LikePattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, formatter)
    }
}

/// Case-insensitive LIKE of `text` against `pattern` (compiled for this one call).
pub fn like_matches(pattern: &str, text: &str) -> bool {
    LikePattern::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: LIKE by dynamic programming over (pattern token, text character) —
    /// obviously right, quadratic.
    fn reference(pattern: &str, text: &str) -> bool {
        #[derive(Clone, Copy, PartialEq)]
        enum Token {
            AnyRun,
            AnyOne,
            Literal(char),
        }
        let mut tokens = Vec::new();
        let mut characters = pattern.chars();
        while let Some(character) = characters.next() {
            tokens.push(match character {
                '%' => Token::AnyRun,
                '_' => Token::AnyOne,
                '\\' => Token::Literal(fold_case(characters.next().unwrap_or('\\'))),
                other => Token::Literal(fold_case(other)),
            });
        }
        let text: Vec<char> = text.chars().map(fold_case).collect();
        // matched[j]: the tokens so far match the first j characters.
        let mut matched = vec![false; text.len() + 1];
        matched[0] = true;
        for token in tokens {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                next[j] = match token {
                    Token::AnyRun => matched[j] || (j > 0 && next[j - 1]),
                    Token::AnyOne => j > 0 && matched[j - 1],
                    Token::Literal(expected) => j > 0 && matched[j - 1] && text[j - 1] == expected,
                };
            }
            matched = next;
        }
        matched[text.len()]
    }

    #[test]
    fn wildcards_case_and_escapes() {
        assert!(like_matches("%john%", "Big JOHNNY"));
        assert!(like_matches("j_hn", "john"));
        assert!(!like_matches("j_hn", "jhn"));
        assert!(like_matches("50\\%", "50%"));
        assert!(!like_matches("50\\%", "500"));
        assert!(like_matches("%", ""));
        assert!(!like_matches("_", ""));
        assert!(like_matches("a%b%c", "aXXbYYc"));
        assert!(!like_matches("a%b%c", "aXXbYY"));
        assert!(
            !like_matches("ab%ba", "aba"),
            "prefix and suffix may not overlap"
        );
        assert!(like_matches("ab%ba", "abba"));
        assert!(like_matches("%ÉTÉ%", "un été chaud"));
        assert!(like_matches("%\\_%", "a_b"));
        assert!(!like_matches("%\\_%", "ab"));
        assert!(like_matches("trailing\\", "TRAILING\\"));
        assert!(like_matches("", ""));
        assert!(!like_matches("", "x"));
    }

    #[test]
    fn long_wildcard_segments_span_several_words() {
        let segment: String = (0..150)
            .map(|index| if index % 7 == 0 { '_' } else { 'a' })
            .collect();
        let pattern = format!("%{segment}b%");
        let text = format!("{}b", "a".repeat(400));
        assert!(like_matches(&pattern, &text));
        assert!(!like_matches(&pattern, &"a".repeat(400)));
        assert_eq!(like_matches(&pattern, &text), reference(&pattern, &text));
    }

    fn pattern_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!['a', 'b', 'A', 'é', 'É', '%', '_', '\\', 'ß']),
            0..12,
        )
        .prop_map(|characters| characters.into_iter().collect())
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!['a', 'b', 'B', 'é', 'É', '%', '_', '\\', 'ß']),
            0..30,
        )
        .prop_map(|characters| characters.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn matches_like_the_reference(pattern in pattern_text(), text in text()) {
            prop_assert_eq!(
                LikePattern::new(pattern.as_str()).matches(&text),
                reference(&pattern, &text),
                "pattern {:?} text {:?}", pattern, text
            );
        }

        #[test]
        fn long_segments_match_like_the_reference(
            segment in prop::collection::vec(prop::sample::select(vec!['a', 'b', '_']), 60..140),
            fill in prop::collection::vec(prop::sample::select(vec!['a', 'b']), 140),
            lead in prop::collection::vec(prop::sample::select(vec!['a', 'b']), 0..100),
            tail in prop::collection::vec(prop::sample::select(vec!['a', 'b']), 0..100),
            tail_pattern in prop::collection::vec(prop::sample::select(vec!['a', 'b', '_', '%']), 0..6),
            flip in any::<Option<prop::sample::Index>>(),
        ) {
            // A text that holds the segment (unless one character is flipped).
            let mut instance: Vec<char> = segment
                .iter()
                .zip(&fill)
                .map(|(piece, filler)| if *piece == '_' { *filler } else { *piece })
                .collect();
            if let Some(flip) = flip {
                let at = flip.index(instance.len());
                instance[at] = if instance[at] == 'a' { 'b' } else { 'a' };
            }
            let pattern: String = std::iter::once('%')
                .chain(segment)
                .chain(std::iter::once('%'))
                .chain(tail_pattern)
                .collect();
            let text: String = lead.into_iter().chain(instance).chain(tail).collect();
            prop_assert_eq!(
                LikePattern::new(pattern.as_str()).matches(&text),
                reference(&pattern, &text),
                "pattern {:?} text {:?}", pattern, text
            );
        }
    }
}
