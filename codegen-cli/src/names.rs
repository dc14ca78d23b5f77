//! Turning YAML names into Rust names.

/// `contact_created`, `crm_sync_completed`: lowercase words joined by single underscores.
pub fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

/// A suggestion for a name that is not snake_case.
pub fn to_snake_case(name: &str) -> String {
    words(name).join("_")
}

/// `contact_created` → `ContactCreated`, `in-progress` → `InProgress`.
pub fn to_upper_camel(name: &str) -> String {
    words(name)
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The Rust field name for a YAML key, or `None` when no sensible one exists.
/// Keywords get a trailing underscore (`type` → `type_`), as typify does; the wire key stays.
pub fn field_ident(key: &str) -> Option<String> {
    let ident = to_snake_case(key);
    if !ident.starts_with(|c: char| c.is_ascii_lowercase()) {
        return None;
    }
    Some(if is_keyword(&ident) {
        format!("{ident}_")
    } else {
        ident
    })
}

/// A variant name for an enum choice, or `None` when no sensible one exists.
pub fn variant_ident(choice: &str) -> Option<String> {
    let ident = to_upper_camel(choice);
    if ident.starts_with(|c: char| c.is_ascii_uppercase()) {
        Some(if ident == "Self" {
            "Self_".into()
        } else {
            ident
        })
    } else if ident.starts_with(|c: char| c.is_ascii_digit()) {
        Some(format!("V{ident}"))
    } else {
        None
    }
}

/// Lowercase ASCII words: split at anything not alphanumeric and at lower→upper boundaries.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
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
    words
}

fn is_keyword(ident: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    KEYWORDS.contains(&ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_is_strict() {
        assert!(is_snake_case("contact_created"));
        assert!(is_snake_case("v2_sync"));
        for bad in [
            "ContactCreated",
            "contact-created",
            "_x",
            "x_",
            "a__b",
            "2fa",
            "",
        ] {
            assert!(!is_snake_case(bad), "{bad}");
        }
        assert_eq!(to_snake_case("ContactCreated"), "contact_created");
        assert_eq!(to_snake_case("contact-created"), "contact_created");
    }

    #[test]
    fn rust_names() {
        assert_eq!(
            to_upper_camel("stripe_payment_received"),
            "StripePaymentReceived"
        );
        assert_eq!(field_ident("type").as_deref(), Some("type_"));
        assert_eq!(field_ident("customerId").as_deref(), Some("customer_id"));
        assert_eq!(field_ident("first-name").as_deref(), Some("first_name"));
        assert_eq!(field_ident("2fa"), None);
        assert_eq!(variant_ident("in-progress").as_deref(), Some("InProgress"));
        assert_eq!(variant_ident("2fa").as_deref(), Some("V2fa"));
        assert_eq!(variant_ident("--"), None);
    }
}
