//! HTML written by hand, small enough to read: every piece of text from the database goes
//! through [`text`] (escaped), so a payload holding `<script>` shows as text.

use std::fmt::Write as _;

/// A piece of HTML that is safe to put in a page as is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Markup(String);

impl Markup {
    /// HTML written in this module or by a caller from literals: trusted, not escaped.
    pub(crate) fn raw(html: impl Into<String>) -> Self {
        Self(html.into())
    }

    pub(crate) fn push(&mut self, more: Markup) {
        self.0.push_str(&more.0);
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Text escaped for an element's content or an attribute's value.
pub(crate) fn text(value: &str) -> Markup {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    Markup(escaped)
}

/// A link to `href` (a path the dashboard built) reading `label`.
pub(crate) fn link(href: &str, label: &str) -> Markup {
    Markup(format!(
        "<a href=\"{}\">{}</a>",
        text(href).0,
        text(label).0
    ))
}

/// A percent-encoded query value, for links that carry a filter.
pub(crate) fn query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                encoded.push(byte as char);
            }
            _ => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}

/// A table; a header ending in `#` is numeric (right-aligned, the `#` not shown).
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<Markup>>, empty: &str) -> Markup {
    if rows.is_empty() {
        return Markup(format!("<p class=\"empty\">{}</p>", text(empty).0));
    }
    let numeric: Vec<bool> = headers.iter().map(|h| h.ends_with('#')).collect();
    let mut html = String::from("<table><thead><tr>");
    for (header, numeric) in headers.iter().zip(&numeric) {
        let class = if *numeric { " class=\"n\"" } else { "" };
        let _ = write!(
            html,
            "<th{class}>{}</th>",
            text(header.trim_end_matches('#')).0
        );
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for (column, cell) in row.into_iter().enumerate() {
            let class = if numeric.get(column).copied().unwrap_or(false) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(html, "<td{class}>{}</td>", cell.0);
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    Markup(html)
}

/// A definition list of (name, value) pairs: an event's or a run's fields.
pub(crate) fn fields(pairs: Vec<(&str, Markup)>) -> Markup {
    let mut html = String::from("<dl>");
    for (name, value) in pairs {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", text(name).0, value.0);
    }
    html.push_str("</dl>");
    Markup(html)
}

/// Preformatted text, e.g. a payload as pretty JSON.
pub(crate) fn pre(value: &str) -> Markup {
    Markup(format!("<pre>{}</pre>", text(value).0))
}

/// A form that POSTs `action` with hidden `fields` and one button; carries the CSRF token.
pub(crate) fn action_form(
    action: &str,
    fields: &[(&str, &str)],
    csrf: &str,
    button: &str,
) -> Markup {
    let mut html = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        text(action).0,
        text(csrf).0
    );
    for (name, value) in fields {
        let _ = write!(
            html,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            text(name).0,
            text(value).0
        );
    }
    let _ = write!(
        html,
        "<button type=\"submit\">{}</button></form>",
        text(button).0
    );
    Markup(html)
}

/// A GET form of text inputs and selects that narrows a listing.
pub(crate) struct FilterForm {
    html: String,
}

impl FilterForm {
    pub(crate) fn new(action: &str) -> Self {
        Self {
            html: format!(
                "<form method=\"get\" action=\"{}\" class=\"filter\">",
                text(action).0
            ),
        }
    }

    pub(crate) fn input(mut self, name: &str, label: &str, value: Option<&str>) -> Self {
        let _ = write!(
            self.html,
            "<label>{} <input name=\"{}\" value=\"{}\"></label>",
            text(label).0,
            text(name).0,
            text(value.unwrap_or_default()).0
        );
        self
    }

    pub(crate) fn select(
        mut self,
        name: &str,
        label: &str,
        choices: &[&str],
        value: Option<&str>,
    ) -> Self {
        let _ = write!(
            self.html,
            "<label>{} <select name=\"{}\"><option value=\"\">any</option>",
            text(label).0,
            text(name).0
        );
        for choice in choices {
            let selected = if value == Some(choice) {
                " selected"
            } else {
                ""
            };
            let _ = write!(self.html, "<option{selected}>{}</option>", text(choice).0);
        }
        self.html.push_str("</select></label>");
        self
    }

    pub(crate) fn finish(mut self) -> Markup {
        self.html
            .push_str("<button type=\"submit\">Filter</button></form>");
        Markup(self.html)
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}\
header a{color:#cfd8ea;text-decoration:none}header a:hover{color:#fff}\
header strong{font-size:1.1em;margin-right:1em}main{padding:1em 1.2em}\
table{border-collapse:collapse;margin:.4em 0 1.4em}\
th,td{padding:.28em .7em;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top}\
th{font-weight:600;background:#f4f6f9}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}dt{color:#5b6475}dd{margin:0}\
pre{background:#f4f6f9;padding:.7em;overflow:auto}.empty{color:#5b6475}\
.flash{background:#e5f5e8;border:1px solid #9fd4a9;padding:.5em .8em}\
.readonly{color:#5b6475;font-size:.9em}form.inline{display:inline}\
form.filter{display:flex;gap:.8em;align-items:end;margin:.4em 0 1em}\
.dead{color:#a3261b;font-weight:600}button{white-space:nowrap}td a{white-space:nowrap}";

/// A whole page: the navigation, an optional notice of what an action did, then `body`.
pub(crate) fn page(
    base: &str,
    title: &str,
    flash: Option<&str>,
    read_only: bool,
    body: Markup,
) -> String {
    let nav = [
        ("", "Overview"),
        ("/events", "Events"),
        ("/dead-letters", "Dead letters"),
        ("/jobs", "Jobs"),
    ];
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · Herald</title><style>{STYLE}</style></head><body><header>\
         <strong>Herald</strong>",
        text(title).0
    );
    for (path, label) in nav {
        let href = if path.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}{path}")
        };
        html.push_str(&link(&href, label).0);
    }
    if read_only {
        html.push_str("<span class=\"readonly\">read-only</span>");
    }
    let _ = write!(html, "</header><main><h1>{}</h1>", text(title).0);
    if let Some(flash) = flash {
        let _ = write!(
            html,
            "<p class=\"flash\" role=\"status\">{}</p>",
            text(flash).0
        );
    }
    html.push_str(&body.0);
    html.push_str("</main></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_database_cannot_become_markup() {
        assert_eq!(
            text("<script>alert('x')</script> & \"q\"").into_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(query_value("contact:a b&c"), "contact:a%20b%26c");
    }
}
