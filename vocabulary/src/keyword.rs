//! The closed sets of words that declarations spell out.

/// A word from a closed set that YAML and attributes spell out (`direction: change`,
/// `backoff = "fixed"`).
///
/// Generic code reads every such set the same way through this trait: the generator's JSON
/// Schema lists the spellings, and the generator and the macros answer an unknown word with
/// the same did-you-mean, so a new word added here reaches all of them at once.
pub trait Keyword: Copy + Eq + 'static {
    /// What one of the words is called in messages (`direction`), in snake_case.
    const KIND: &'static str;
    /// Every word, in the order documentation and messages list them (the default first).
    const ALL: &'static [Self];

    /// How the word is spelled.
    fn as_str(self) -> &'static str;

    /// The word spelled exactly `word`; `None` for anything else (case matters, as it does
    /// in YAML), which the caller reports with its own did-you-mean.
    fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|known| known.as_str() == word)
    }

    /// Every spelling, in the order of [`Keyword::ALL`].
    fn spellings() -> Vec<&'static str> {
        Self::ALL.iter().map(|known| known.as_str()).collect()
    }
}

/// Implements [`Keyword`] from a type's inherent `ALL` and `as_str`, and gives the type an
/// inherent `parse`, so that callers need not import the trait for the common case.
macro_rules! keyword {
    ($type:ident, $kind:literal) => {
        impl $crate::Keyword for $type {
            const KIND: &'static str = $kind;
            const ALL: &'static [Self] = &$type::ALL;

            fn as_str(self) -> &'static str {
                $type::as_str(self)
            }
        }

        impl $type {
            #[doc = concat!("The ", $kind, " spelled exactly `word`; `None` for anything else,")]
            /// which the caller reports with its own did-you-mean.
            pub fn parse(word: &str) -> Option<Self> {
                <Self as $crate::Keyword>::parse(word)
            }
        }
    };
}

pub(crate) use keyword;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backoff, Direction, Tier};

    fn round_trips<K: Keyword + std::fmt::Debug>() {
        assert!(!K::ALL.is_empty());
        for known in K::ALL {
            assert_eq!(K::parse(known.as_str()), Some(*known), "{known:?}");
        }
        assert_eq!(K::spellings().len(), K::ALL.len());
        assert!(crate::naming::is_snake_case(K::KIND));
    }

    #[test]
    fn every_keyword_round_trips() {
        round_trips::<Direction>();
        round_trips::<Tier>();
        round_trips::<Backoff>();
    }

    #[test]
    fn kinds_name_the_yaml_keys() {
        assert_eq!(Direction::KIND, "direction");
        assert_eq!(Tier::KIND, "tier");
        assert_eq!(Backoff::KIND, "backoff");
    }

    /// The spellings are an external contract: YAML files and attributes are written in them.
    #[test]
    fn spellings_are_the_yaml_contract() {
        assert_eq!(Direction::spellings(), ["inbound", "change", "outbound"]);
        assert_eq!(Tier::spellings(), ["domain", "audit"]);
        assert_eq!(Backoff::spellings(), ["exponential", "linear", "fixed"]);
        assert_eq!(
            <Direction as Keyword>::ALL,
            &[Direction::Inbound, Direction::Change, Direction::Outbound]
        );
    }

    #[test]
    fn parse_is_exact() {
        for word in ["Change", "changes", "in", "events_change", ""] {
            assert_eq!(Direction::parse(word), None, "{word:?}");
        }
        for word in ["Domain", "AUDIT", " audit", "audits"] {
            assert_eq!(Tier::parse(word), None, "{word:?}");
        }
        for word in ["Exponential", "exponentially", "constant"] {
            assert_eq!(Backoff::parse(word), None, "{word:?}");
        }
    }
}
