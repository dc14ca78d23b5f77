//! What the outbox refuses before anything is written, so that a payload that could never be
//! stored on every database, or never be decoded by a subscriber, fails the publish in
//! Herald's words instead of later, at delivery or in the database's.

use super::PublishError;

/// The deepest nesting a subscriber's decoder accepts (serde_json's recursion limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// Checks serialized payload JSON: no NUL character in a string (PostgreSQL cannot store it
/// in `jsonb`, SQLite would), and no deeper nesting than the decoder accepts.
pub(crate) fn check_payload_text(event_type: &'static str, json: &str) -> Result<(), PublishError> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    let bytes = json.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => {
                    escaped = false;
                    if byte == b'u' && bytes.get(at + 1..at + 5) == Some(b"0000") {
                        return Err(PublishError::NulCharacter { event_type });
                    }
                }
                b'\\' => escaped = true,
                b'"' => in_string = false,
                // Raw NUL in a string is not valid JSON, but refuse it all the same.
                0 => return Err(PublishError::NulCharacter { event_type }),
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_DEPTH {
        return Err(PublishError::TooDeep {
            event_type,
            limit: MAX_DEPTH,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn a_nul_character_in_a_string_is_refused() {
        let json = serde_json::json!({ "name": "a\u{0}b" }).to_string();
        assert!(matches!(
            check_payload_text("t", &json),
            Err(PublishError::NulCharacter { .. })
        ));
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text_not_nul() {
        let json = serde_json::json!({ "path": "C:\\u0000" }).to_string();
        assert!(json.contains("\\\\u0000"), "{json}");
        assert!(check_payload_text("t", &json).is_ok());
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_beyond_is_refused() {
        assert!(check_payload_text("t", &nested(MAX_DEPTH)).is_ok());
        assert!(matches!(
            check_payload_text("t", &nested(MAX_DEPTH + 1)),
            Err(PublishError::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let json = serde_json::json!({ "text": "[".repeat(500) }).to_string();
        assert!(check_payload_text("t", &json).is_ok());
    }
}
