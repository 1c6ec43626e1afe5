//! A timing of LIKE matching over long texts (ignored by default; run `cargo test --release -p
//! tabula-actors --test like_timing -- --ignored --nocapture`): the compiled pattern of
//! `query::like` against the classic matcher with one backtrack point, on the patterns that
//! make the classic one slow. The figures are in docs/benchmarks.md.

use std::time::{Duration, Instant};

use tabula_actors::query::like::{fold_case, LikePattern};

/// The classic wildcard matcher: greedy, backtracking to the last `%` only. Never exponential,
/// but each failed attempt after a `%` re-reads the pattern: O(pattern × text).
fn backtracking_like(pattern: &str, text: &str) -> bool {
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
    let (mut text_at, mut token_at) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while text_at < text.len() {
        match tokens.get(token_at) {
            Some(Token::AnyRun) => {
                backtrack = Some((token_at, text_at));
                token_at += 1;
            }
            Some(Token::AnyOne) => {
                token_at += 1;
                text_at += 1;
            }
            Some(Token::Literal(expected)) if *expected == text[text_at] => {
                token_at += 1;
                text_at += 1;
            }
            _ => match backtrack {
                Some((run_token, run_text)) => {
                    token_at = run_token + 1;
                    text_at = run_text + 1;
                    backtrack = Some((run_token, run_text + 1));
                }
                None => return false,
            },
        }
    }
    tokens[token_at.min(tokens.len())..]
        .iter()
        .all(|token| *token == Token::AnyRun)
}

fn median_of(runs: usize, mut run: impl FnMut() -> bool) -> (Duration, bool) {
    let mut samples = Vec::with_capacity(runs);
    let mut answer = false;
    for _ in 0..runs {
        let started = Instant::now();
        answer = std::hint::black_box(run());
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    (samples[samples.len() / 2], answer)
}

#[test]
#[ignore = "a timing run, not a check"]
fn timing_of_like_over_long_texts() {
    let text = "ab".repeat(50_000);
    let cases = [
        ("a word that is not there: %needle%", "%needle%".to_owned()),
        (
            "wildcards: %a_a_…(40)…c%",
            format!("%{}c%", "a_".repeat(40)),
        ),
        (
            "a long literal: %abab…(1000 chars)…c%",
            format!("%{}c%", "ab".repeat(500)),
        ),
        (
            "many runs: %a%b%…(200)…%c%",
            format!("{}%c%", "%a%b".repeat(100)),
        ),
    ];
    println!("| pattern over 100 000 characters | backtracking | compiled |");
    println!("|---|---|---|");
    for (name, pattern) in cases {
        let compiled = LikePattern::new(pattern.as_str());
        let (fast, fast_answer) = median_of(21, || compiled.matches(&text));
        let (slow, slow_answer) = median_of(5, || backtracking_like(&pattern, &text));
        assert_eq!(fast_answer, slow_answer, "{name}");
        println!("| {name} | {slow:.2?} | {fast:.2?} |");
    }
}
