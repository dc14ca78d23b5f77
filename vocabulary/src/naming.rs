//! How names are spelled: the snake_case that event types, entity names, job names and pools
//! are written in, the PascalCase their Rust types get, and the did-you-mean that answers a
//! misspelling.
//!
//! The generator and the macros must agree on these to the letter: a YAML event and the same
//! event written by hand with `#[derive(Event)]` have to accept the same names and produce
//! the same type names.

/// `contact_created`, `crm_sync_completed`: a lowercase ASCII letter, then lowercase letters
/// and digits in words joined by single underscores.
///
/// ASCII only, because these names become table values, file names and Rust identifiers, and
/// must read the same in all of them.
pub fn is_snake_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

/// `ContactCreated`, `contact-created`, `customerId` → `contact_created`, `customer_id`: the
/// lowercase ASCII words of `name` joined by underscores.
///
/// A word ends at anything that is not an ASCII letter or digit, and before an uppercase
/// letter that follows a lowercase letter or digit. Characters outside ASCII are dropped, so
/// the result may still not be snake_case (see [`suggest_snake_case`]).
pub fn to_snake_case(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words.join("_")
}

/// The snake_case spelling to suggest for a name that is not snake_case, when there is one
/// (`2fa` and `--` have none: no spelling of them starts with a letter).
pub fn suggest_snake_case(name: &str) -> Option<String> {
    let suggestion = to_snake_case(name);
    is_snake_case(&suggestion).then_some(suggestion)
}

/// `sync_contact_to_crm` → `SyncContactToCrm`: how a snake_case name becomes a type name.
///
/// Splits at underscores only and upper-cases the first character of each part, leaving the
/// rest as written, so that it is the inverse readers expect of snake_case and so that a
/// Rust identifier that is not snake_case (`r#match` unrawed, `café`) keeps its letters. For
/// an arbitrary string, apply [`to_snake_case`] first.
pub fn to_pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

/// `opportunity` → `opportunities`, `status` → `statuses`, `line_item` → `line_items`: the
/// English plural of a snake_case entity name, which names its table unless the YAML gives
/// `plural:` or `table:`.
///
/// Only the last word changes. The rules are the common ones (and those of the `pluralize`
/// package the TypeScript ancestor used, for the names entities have): `s`, `x`, `z`, `ch`,
/// `sh` take `es`; a consonant then `y` becomes `ies`; `sis` becomes `ses`; a few `f`/`fe`
/// and `o` words and irregular nouns are listed; uncountable nouns stay as they are. A name
/// they get wrong is fixed with `plural:` in the YAML, never by guessing harder here.
pub fn to_plural(snake: &str) -> String {
    let (head, last) = match snake.rfind('_') {
        Some(at) => snake.split_at(at + 1),
        None => ("", snake),
    };
    format!("{head}{}", plural_word(last))
}

fn plural_word(word: &str) -> String {
    const UNCOUNTABLE: &[&str] = &[
        "data",
        "equipment",
        "feedback",
        "fish",
        "information",
        "metadata",
        "money",
        "news",
        "rice",
        "series",
        "sheep",
        "software",
        "species",
        "deer",
    ];
    const IRREGULAR: &[(&str, &str)] = &[
        ("child", "children"),
        ("foot", "feet"),
        ("goose", "geese"),
        ("man", "men"),
        ("mouse", "mice"),
        ("ox", "oxen"),
        ("person", "people"),
        ("quiz", "quizzes"),
        ("tooth", "teeth"),
        ("woman", "women"),
    ];
    const F_TO_VES: &[(&str, &str)] = &[
        ("calf", "calves"),
        ("elf", "elves"),
        ("half", "halves"),
        ("knife", "knives"),
        ("leaf", "leaves"),
        ("life", "lives"),
        ("loaf", "loaves"),
        ("self", "selves"),
        ("shelf", "shelves"),
        ("thief", "thieves"),
        ("wife", "wives"),
        ("wolf", "wolves"),
    ];
    const O_TO_OES: &[&str] = &["echo", "hero", "potato", "tomato", "veto"];
    if word.is_empty() || UNCOUNTABLE.contains(&word) {
        return word.to_owned();
    }
    if let Some((_, plural)) = IRREGULAR
        .iter()
        .chain(F_TO_VES)
        .find(|(singular, _)| *singular == word)
    {
        return (*plural).to_owned();
    }
    if O_TO_OES.contains(&word) {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix("sis") {
        return format!("{stem}ses");
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| word.ends_with(end))
    {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix('y')
        && stem.chars().last().is_some_and(|c| !"aeiou".contains(c))
    {
        return format!("{stem}ies");
    }
    format!("{word}s")
}

/// The Levenshtein distance between `a` and `b`, in characters: how many insertions,
/// deletions and substitutions turn one into the other.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The option nearest to `candidate`, if it is near enough to be a likely typo: for a "did
/// you mean" after an unknown key or value.
///
/// Near enough is at most one edit per three characters of the option (and always one), so
/// that short options are not suggested for unrelated words. Case is ignored (ASCII), because
/// `Change` for `change` is a typo like any other. Of equally near options the first is
/// chosen, so callers list the more likely options first.
pub fn closest<'a>(candidate: &str, options: &[&'a str]) -> Option<&'a str> {
    let candidate = candidate.to_ascii_lowercase();
    options
        .iter()
        .map(|option| {
            let distance = edit_distance(&candidate, &option.to_ascii_lowercase());
            (distance, *option)
        })
        .filter(|(distance, option)| *distance <= (option.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, option)| option)
}

/// `` `a`, `b` or `c` `` (with `quote` around each item): how a message lists the accepted
/// values after a did-you-mean.
pub fn list_or(items: &[&str], quote: &str) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|item| format!("{quote}{item}{quote}"))
        .collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_is_strict() {
        for good in ["contact_created", "v2_sync", "a", "a1_b2"] {
            assert!(is_snake_case(good), "{good}");
        }
        for bad in [
            "ContactCreated",
            "contact-created",
            "_x",
            "x_",
            "a__b",
            "2fa",
            "",
            "café",
            "contact created",
        ] {
            assert!(!is_snake_case(bad), "{bad}");
        }
    }

    #[test]
    fn to_snake_case_splits_words() {
        assert_eq!(to_snake_case("ContactCreated"), "contact_created");
        assert_eq!(to_snake_case("contact-created"), "contact_created");
        assert_eq!(to_snake_case("customerId"), "customer_id");
        assert_eq!(to_snake_case("first name"), "first_name");
        assert_eq!(to_snake_case("HTTPServer"), "httpserver");
        assert_eq!(to_snake_case("v2Sync"), "v2_sync");
        assert_eq!(to_snake_case("__a__b__"), "a_b");
        assert_eq!(to_snake_case("--"), "");
    }

    #[test]
    fn suggestions_are_snake_case_or_nothing() {
        assert_eq!(
            suggest_snake_case("ContactCreated").as_deref(),
            Some("contact_created")
        );
        assert_eq!(
            suggest_snake_case("contact_created").as_deref(),
            Some("contact_created")
        );
        assert_eq!(suggest_snake_case("2fa"), None);
        assert_eq!(suggest_snake_case("--"), None);
        assert_eq!(suggest_snake_case(""), None);
    }

    #[test]
    fn pascal_case_of_snake_case() {
        assert_eq!(to_pascal_case("sync_contact_to_crm"), "SyncContactToCrm");
        assert_eq!(
            to_pascal_case("stripe_payment_received"),
            "StripePaymentReceived"
        );
        assert_eq!(to_pascal_case("v2_sync"), "V2Sync");
        assert_eq!(to_pascal_case("type_"), "Type");
        assert_eq!(to_pascal_case("_leading__double_"), "LeadingDouble");
        assert_eq!(to_pascal_case("match"), "Match");
        assert_eq!(to_pascal_case(""), "");
    }

    #[test]
    fn pascal_case_keeps_what_is_not_snake_case() {
        assert_eq!(to_pascal_case("café_sync"), "CaféSync");
        assert_eq!(to_pascal_case("élan"), "Élan");
        assert_eq!(to_pascal_case("syncHTTP"), "SyncHTTP");
        assert_eq!(to_pascal_case(&to_snake_case("in-progress")), "InProgress");
    }

    #[test]
    fn plurals_of_entity_names() {
        for (singular, plural) in [
            ("contact", "contacts"),
            ("opportunity", "opportunities"),
            ("status", "statuses"),
            ("address", "addresses"),
            ("box", "boxes"),
            ("match", "matches"),
            ("wish", "wishes"),
            ("day", "days"),
            ("key", "keys"),
            ("company", "companies"),
            ("analysis", "analyses"),
            ("person", "people"),
            ("child", "children"),
            ("knife", "knives"),
            ("hero", "heroes"),
            ("photo", "photos"),
            ("metadata", "metadata"),
            ("line_item", "line_items"),
            ("sales_opportunity", "sales_opportunities"),
            ("field_value", "field_values"),
            ("v2", "v2s"),
        ] {
            assert_eq!(to_plural(singular), plural, "{singular}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("direction", "direction"), 0);
        assert_eq!(edit_distance("diretion", "direction"), 1);
        assert_eq!(edit_distance("retires", "retries"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é", "e"), 1, "counts characters, not bytes");
    }

    #[test]
    fn closest_suggests_near_options_only() {
        let keys = ["type", "direction", "tier", "payload", "pool"];
        assert_eq!(closest("diretion", &keys), Some("direction"));
        assert_eq!(closest("payloads", &keys), Some("payload"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("anything", &[]), None);
    }

    #[test]
    fn closest_ignores_case() {
        assert_eq!(
            closest("Change", &["inbound", "change", "outbound"]),
            Some("change")
        );
        assert_eq!(
            closest("EXPONENTIALLY", &["exponential"]),
            Some("exponential")
        );
    }

    #[test]
    fn closest_prefers_the_first_of_equals() {
        assert_eq!(closest("pol", &["pool", "poll"]), Some("pool"));
        assert_eq!(closest("pol", &["poll", "pool"]), Some("poll"));
    }

    #[test]
    fn closest_allows_one_edit_per_three_characters() {
        // `pool` (4 characters) allows 1 edit; `direction` (9) allows 3.
        assert_eq!(closest("pol", &["pool"]), Some("pool"));
        assert_eq!(closest("pl", &["pool"]), None);
        assert_eq!(closest("drctn", &["direction"]), None);
        assert_eq!(closest("drction", &["direction"]), Some("direction"));
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(list_or(&[], "`"), "");
        assert_eq!(list_or(&["a"], "`"), "`a`");
        assert_eq!(list_or(&["a", "b"], "\""), "\"a\" or \"b\"");
        assert_eq!(list_or(&["a", "b", "c"], "`"), "`a`, `b` or `c`");
    }
}
