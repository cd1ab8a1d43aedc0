//! Importance of a memory whose input gives none, scored from its text and
//! type (the reference's rules).
//!
//! Start at 5; -3 for trivial text; +2 when the text has a strong word
//! (goal, important, critical, must, always, never, hate, love), else +1 for
//! a mild one (prefer, like, want, need, usually, often); +1 for emphasis
//! (an all-capitals word of three letters or more, or `!`); +0.5 above 100
//! characters; +1 for preferences and goals, +0.5 for context; clamped to
//! 1..=10.
//!
//! Words are matched whole, with their common inflections (`loves`,
//! `preferred`), so `likely` is not `like` and `glove` is not `love`.

use hippo_sdk::memory::MemoryType;

/// Words that make a memory clearly important.
const STRONG: &[&str] = &[
    "goal",
    "goals",
    "important",
    "critical",
    "must",
    "always",
    "never",
    "hate",
    "hates",
    "hated",
    "love",
    "loves",
    "loved",
];

/// Words of a stated preference or need.
const MILD: &[&str] = &[
    "prefer",
    "prefers",
    "preferred",
    "like",
    "likes",
    "liked",
    "want",
    "wants",
    "wanted",
    "need",
    "needs",
    "needed",
    "usually",
    "often",
];

/// Whole texts that carry nothing worth remembering.
const FILLER: &[&str] = &[
    "ok",
    "okay",
    "k",
    "thanks",
    "thank you",
    "thx",
    "hi",
    "hello",
    "hey",
    "yes",
    "no",
    "yeah",
    "yep",
    "nope",
    "sure",
    "cool",
    "nice",
    "great",
    "lol",
    "bye",
    "got it",
    "sounds good",
    "ok thanks",
];

/// Texts shorter than this many characters (trimmed) are trivial.
const TRIVIAL_CHARS: usize = 8;

/// The importance (1 to 10) of a memory of `memory_type` saying `text`.
pub fn score_importance(text: &str, memory_type: MemoryType) -> f32 {
    let lower = text.to_lowercase();
    let words = words(&lower);
    let mut score = 5.0f32;
    if is_trivial(text, &words) {
        score -= 3.0;
    }
    if words.iter().any(|w| STRONG.contains(w)) {
        score += 2.0;
    } else if words.iter().any(|w| MILD.contains(w)) {
        score += 1.0;
    }
    if text.contains('!') || has_shouted_word(text) {
        score += 1.0;
    }
    if text.chars().count() > 100 {
        score += 0.5;
    }
    score += match memory_type {
        MemoryType::Preference | MemoryType::Goal => 1.0,
        MemoryType::Context => 0.5,
        _ => 0.0,
    };
    score.clamp(1.0, 10.0)
}

/// The words of `text`: runs of letters and apostrophes.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Very short, or nothing but an acknowledgement or greeting.
fn is_trivial(text: &str, lower_words: &[&str]) -> bool {
    text.trim().chars().count() < TRIVIAL_CHARS || FILLER.contains(&lower_words.join(" ").as_str())
}

/// An all-capitals word of three letters or more: emphasis such as NEVER.
fn has_shouted_word(text: &str) -> bool {
    words(text).iter().any(|w| {
        w.chars().filter(|c| c.is_alphabetic()).count() >= 3
            && w.chars().all(|c| !c.is_alphabetic() || c.is_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str, memory_type: MemoryType) -> f32 {
        score_importance(text, memory_type)
    }

    #[test]
    fn a_plain_fact_scores_the_baseline() {
        assert_eq!(
            score("Paris is the capital of France", MemoryType::Fact),
            5.0
        );
    }

    #[test]
    fn stated_preferences_score_higher() {
        // +1 "prefer", +1 preference type.
        assert_eq!(
            score(
                "I prefer dark chocolate over milk chocolate",
                MemoryType::Preference
            ),
            7.0
        );
        // +2 "love" wins over the mild "like"; context +0.5.
        assert_eq!(
            score("I love hiking and like camping", MemoryType::Context),
            7.5
        );
    }

    #[test]
    fn emphasis_counts_once() {
        // +2 "never", +1 for NEVER and "!" together.
        assert_eq!(
            score(
                "I will NEVER eat shellfish, I am allergic!",
                MemoryType::Fact
            ),
            8.0
        );
        // Two-letter capitals (I, UK) are not shouting.
        assert_eq!(score("I moved to the UK in spring", MemoryType::Event), 5.0);
    }

    #[test]
    fn trivial_text_scores_low() {
        assert_eq!(score("ok", MemoryType::Fact), 2.0);
        assert_eq!(score("Thank you!", MemoryType::Fact), 3.0);
        assert_eq!(score("Sounds good.", MemoryType::Context), 2.5);
    }

    #[test]
    fn words_match_whole() {
        // "likely" is not "like", "glove" is not "love".
        assert_eq!(score("It will likely rain tomorrow", MemoryType::Fact), 5.0);
        assert_eq!(
            score("She lost a glove at the station", MemoryType::Fact),
            5.0
        );
        assert_eq!(score("She loves jazz records", MemoryType::Fact), 7.0);
    }

    #[test]
    fn long_goals_add_up_and_stay_in_range() {
        let text = format!(
            "My goal is to run a marathon before I turn forty, {}",
            "x".repeat(60)
        );
        // 5 + 2 (goal) + 0.5 (long) + 1 (goal type).
        assert_eq!(score(&text, MemoryType::Goal), 8.5);
        for t in MemoryType::ALL {
            for text in ["ok", "I MUST ALWAYS remember this!!!", &text] {
                let s = score(text, t);
                assert!((1.0..=10.0).contains(&s), "{text}: {s}");
            }
        }
    }
}
