//! Reading helper attributes: what `#[event(...)]` and `#[entity(...)]` share.
//!
//! An attribute is first split into [`Entry`]s (`key`, `key = value`, `key(...)`) without
//! interpreting them, so that one bad value does not hide the errors after it. Each derive then
//! interprets its entries into [`Slot`]s, pushing every problem into [`Errors`], and checks the
//! rules between keys; all errors are reported together.

use std::fmt::Display;

use herald_vocabulary::Keyword;
use herald_vocabulary::naming::{closest, is_snake_case, list_or, suggest_snake_case};
use proc_macro2::{Group, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitInt, LitStr, Path, Token};

/// The errors found in one derive input, reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// An error spanning `tokens`.
    pub fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// One item of an attribute's list.
pub struct Entry {
    pub key: Ident,
    pub value: Value,
    /// The whole item, `key = value`, for errors about the item as such.
    tokens: TokenStream,
}

// `allow`, not `expect`: `syn::Expr` outgrows the lint's limit only when proc-macro2's
// `span-locations` is on, which the generator turns on for the host when a crate builds both
// (`cargo clippy -p integration-tests`), so the lint fires in some builds only.
// One `Value` per attribute item lives for one expansion; a box would cost every
// `Value::Expr(Expr::Lit(..))` pattern a second match for no gain.
#[allow(clippy::large_enum_variant)]
pub enum Value {
    /// `key`
    Flag,
    /// `key = value`
    Expr(Expr),
    /// `key(...)`
    List(Vec<Entry>),
}

impl Entry {
    /// The key without `r#`.
    pub fn name(&self) -> String {
        self.key.unraw().to_string()
    }

    /// The value's tokens, or the key's for a flag or a list.
    pub fn value_tokens(&self) -> TokenStream {
        match &self.value {
            Value::Expr(expr) => expr.to_token_stream(),
            Value::Flag | Value::List(_) => self.key.to_token_stream(),
        }
    }
}

impl ToTokens for Entry {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.tokens.to_tokens(tokens);
    }
}

/// The entries of all `#[name(...)]` attributes among `attrs`, in order.
#[derive(Default)]
pub struct Entries {
    /// The path (`event`) of the first such attribute, where errors about missing keys point.
    pub first: Option<Path>,
    pub entries: Vec<Entry>,
    /// An attribute could not be parsed to its end; keys may be missing only because of that,
    /// so missing keys are not reported.
    pub incomplete: bool,
}

impl Entries {
    pub fn parse(attrs: &[Attribute], name: &str, errors: &mut Errors) -> Self {
        let mut out = Entries::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident(name)) {
            out.first.get_or_insert_with(|| attr.path().clone());
            if let Err(error) = attr.parse_nested_meta(|meta| parse_entry(meta, &mut out.entries)) {
                errors.push(error);
                out.incomplete = true;
            }
        }
        out
    }

    /// Whether there was no such attribute at all.
    pub fn is_absent(&self) -> bool {
        self.first.is_none()
    }
}

pub fn parse_entry(meta: ParseNestedMeta, out: &mut Vec<Entry>) -> syn::Result<()> {
    let Some(key) = meta.path.get_ident().cloned() else {
        return Err(syn::Error::new_spanned(
            &meta.path,
            "expected a key such as `name = \"...\"`, not a path",
        ));
    };
    let (value, tokens) = if meta.input.peek(Token![=]) {
        let eq: Token![=] = meta.input.parse()?;
        let expr: Expr = meta.input.parse()?;
        let tokens = quote!(#key #eq #expr);
        (Value::Expr(expr), tokens)
    } else if meta.input.peek(syn::token::Paren) {
        let group: Group = meta.input.fork().parse()?;
        let mut inner = Vec::new();
        meta.parse_nested_meta(|meta| parse_entry(meta, &mut inner))?;
        (Value::List(inner), quote!(#key #group))
    } else {
        (Value::Flag, key.to_token_stream())
    };
    out.push(Entry { key, value, tokens });
    Ok(())
}

/// A key's value once interpreted, with where it was written.
pub struct Slot<T> {
    /// The whole `key = value`, once the key was seen (even with a bad value).
    entry: Option<TokenStream>,
    value_tokens: TokenStream,
    /// The value, if it was valid.
    pub value: Option<T>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            entry: None,
            value_tokens: TokenStream::new(),
            value: None,
        }
    }
}

impl<T> Slot<T> {
    /// Interprets `entry` into this slot; a second occurrence of the key is an error.
    pub fn fill(
        &mut self,
        entry: &Entry,
        errors: &mut Errors,
        interpret: impl FnOnce(&Entry, &mut Errors) -> Option<T>,
    ) {
        if self.entry.is_some() {
            let name = entry.name();
            errors.at(
                entry,
                format_args!("duplicate `{name}`: each key may be given once; remove this one"),
            );
            return;
        }
        self.entry = Some(entry.to_token_stream());
        self.value_tokens = entry.value_tokens();
        self.value = interpret(entry, errors);
    }

    /// Whether the key was written, whatever its value.
    pub fn is_present(&self) -> bool {
        self.entry.is_some()
    }

    /// The whole `key = value`, for errors saying to remove it.
    pub fn entry(&self) -> TokenStream {
        self.entry.clone().unwrap_or_default()
    }

    /// The value as written, for errors about the value.
    pub fn value_tokens(&self) -> &TokenStream {
        &self.value_tokens
    }
}

impl Slot<()> {
    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

/// A string literal value; `example` is a complete `key = "..."` shown in errors.
pub fn string(entry: &Entry, errors: &mut Errors, example: &str) -> Option<LitStr> {
    match &entry.value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => return Some(lit.clone()),
        Value::Expr(expr) => {
            let example = match expr {
                // `direction = change`: the user meant the string.
                Expr::Path(path) if path.path.get_ident().is_some() => {
                    let word = path.to_token_stream().to_string();
                    format!("{} = \"{word}\"", entry.name())
                }
                _ => example.to_owned(),
            };
            errors.at(
                expr,
                format_args!("expected a string literal: write `{example}`"),
            );
        }
        Value::Flag | Value::List(_) => {
            let name = entry.name();
            errors.at(
                entry,
                format_args!("`{name}` needs a string value: write `{example}`"),
            );
        }
    }
    None
}

/// A `u32` literal value; `example` is a complete `key = N` shown in errors.
pub fn integer(entry: &Entry, errors: &mut Errors, example: &str) -> Option<(u32, LitInt)> {
    let name = entry.name();
    match &entry.value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        })) => match lit.base10_parse::<u32>() {
            Ok(value) => return Some((value, lit.clone())),
            Err(_) => errors.at(
                lit,
                format_args!("`{name}` must be a whole number from 1 to {}", u32::MAX),
            ),
        },
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => errors.at(
            lit,
            format_args!("expected an integer, not a string: write `{example}`"),
        ),
        Value::Expr(expr) => errors.at(
            expr,
            format_args!("expected a positive integer: write `{example}`"),
        ),
        Value::Flag | Value::List(_) => errors.at(
            entry,
            format_args!("`{name}` needs a number: write `{example}`"),
        ),
    }
    None
}

/// A flag such as `index`, which takes no value.
pub fn flag(entry: &Entry, errors: &mut Errors) -> Option<()> {
    if let Value::Flag = entry.value {
        return Some(());
    }
    let name = entry.name();
    errors.at(
        entry,
        format_args!("`{name}` is a flag and takes no value: write just `{name}`"),
    );
    None
}

/// A string value that must be one of the vocabulary's words of kind `K` (a direction, a
/// tier, a backoff), named in errors by the kind.
pub fn keyword<K: Keyword>(entry: &Entry, errors: &mut Errors) -> Option<K> {
    let choices: Vec<(&str, K)> = K::ALL.iter().map(|word| (word.as_str(), *word)).collect();
    choice(entry, errors, K::KIND, &choices)
}

/// A string value that must be one of `choices`; `what` names it in errors (`tier`).
pub fn choice<T: Copy>(
    entry: &Entry,
    errors: &mut Errors,
    what: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    let example = format!("{} = \"{}\"", entry.name(), choices[0].0);
    let lit = string(entry, errors, &example)?;
    let value = lit.value();
    if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == value) {
        return Some(*choice);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let hint = match closest(&value, &names) {
        Some(close) => format!("did you mean \"{close}\"? "),
        None => String::new(),
    };
    errors.at(
        &lit,
        format_args!(
            "unknown {what} \"{value}\": {hint}expected one of {}",
            list_or(&names, "\"")
        ),
    );
    None
}

/// The error for a key that the attribute does not accept.
pub fn unknown_key(entry: &Entry, attribute: &str, accepted: &[&str]) -> syn::Error {
    let name = entry.name();
    let hint = match closest(&name, accepted) {
        Some(close) => format!("did you mean `{close}`? "),
        None => String::new(),
    };
    syn::Error::new_spanned(
        &entry.key,
        format_args!(
            "unknown key `{name}` in `{attribute}`: {hint}the accepted keys are {}",
            list_or(accepted, "`")
        ),
    )
}

/// The item's doc comment: each line trimmed, joined with `\n`; `None` when there is none.
pub fn doc_comment(attrs: &[Attribute]) -> Option<String> {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("doc")) {
        if let syn::Meta::NameValue(doc) = &attr.meta
            && let Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) = &doc.value
        {
            lines.extend(lit.value().split('\n').map(|line| line.trim().to_owned()));
        }
    }
    let doc = lines.join("\n");
    let doc = doc.trim_matches('\n');
    (!doc.is_empty()).then(|| doc.to_owned())
}

/// A string value that must be snake_case; `what` names it in errors (`event type`).
pub fn snake_case(entry: &Entry, errors: &mut Errors, what: &str, example: &str) -> Option<String> {
    let lit = string(entry, errors, example)?;
    let value = lit.value();
    if is_snake_case(&value) {
        return Some(value);
    }
    errors.at(&lit, not_snake_case(what, &value, entry));
    None
}

/// Why `value` is not a good name, with the snake_case spelling to use instead when there is one.
pub fn not_snake_case(what: &str, value: &str, entry: &Entry) -> String {
    let fix = match suggest_snake_case(value) {
        Some(suggestion) => format!("write `{} = \"{suggestion}\"`", entry.name()),
        None => "start with a lowercase letter".to_owned(),
    };
    format!(
        "{what} \"{value}\" is not snake_case (lowercase letters and digits in words joined by \
         single underscores): {fix}"
    )
}
