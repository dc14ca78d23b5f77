//! Turning YAML keys and choices into Rust names. The spelling rules themselves (snake_case,
//! PascalCase) are the vocabulary's, shared with the macros; what is here is what only
//! generated code needs: keys that are Rust keywords, choices that start with a digit.

use herald_vocabulary::naming::{to_pascal_case, to_snake_case};

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

/// A variant name for an enum choice (`in-progress` → `InProgress`), or `None` when no
/// sensible one exists. A choice is any string, so it goes through snake_case words first.
pub fn variant_ident(choice: &str) -> Option<String> {
    let ident = to_pascal_case(&to_snake_case(choice));
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
    fn rust_names() {
        assert_eq!(field_ident("type").as_deref(), Some("type_"));
        assert_eq!(field_ident("customerId").as_deref(), Some("customer_id"));
        assert_eq!(field_ident("first-name").as_deref(), Some("first_name"));
        assert_eq!(field_ident("2fa"), None);
        assert_eq!(variant_ident("in-progress").as_deref(), Some("InProgress"));
        assert_eq!(variant_ident("InProgress").as_deref(), Some("InProgress"));
        assert_eq!(variant_ident("self").as_deref(), Some("Self_"));
        assert_eq!(variant_ident("2fa").as_deref(), Some("V2fa"));
        assert_eq!(variant_ident("--"), None);
    }
}
