//! `#[entity(...)]` on the struct and on its fields, and the serde names of fields.

use herald_vocabulary::naming::to_snake_case;
use syn::ext::IdentExt as _;
use syn::{Attribute, DeriveInput, Expr, ExprLit, Field, Ident, Lit};

use crate::attr::{self, Entries, Entry, Errors, Slot, Value};

const STRUCT_KEYS: &[&str] = &[
    "name",
    "plural",
    "table",
    "pattern",
    "writes",
    "emits",
    "description",
];

const FIELD_KEYS: &[&str] = &["type", "max_length", "index", "nullable", "optional"];

/// The field types of `entities/*.yaml`.
pub const FIELD_TYPES: &[(&str, &str)] = &[
    ("string", "string"),
    ("integer", "integer"),
    ("decimal", "decimal"),
    ("boolean", "boolean"),
    ("uuid", "uuid"),
    ("date", "date"),
    ("datetime", "datetime"),
    ("json", "json"),
    ("enum", "enum"),
];

/// What the struct's `#[entity(...)]` says, as far as it could be read.
#[derive(Default)]
pub struct EntityAttrs {
    pub name: Slot<String>,
    pub plural: Slot<String>,
    pub table: Slot<String>,
    pub pattern: Slot<String>,
    pub writes: Slot<bool>,
    pub emits: Slot<Vec<String>>,
    pub description: Slot<String>,
}

impl EntityAttrs {
    pub fn from_syn(input: &DeriveInput, errors: &mut Errors) -> Self {
        let entries = Entries::parse(&input.attrs, "entity", errors);
        let mut attrs = EntityAttrs::default();
        let suggestion = to_snake_case(&input.ident.to_string());
        let Some(path) = &entries.first else {
            errors.at(
                &input.ident,
                format_args!(
                    "missing `#[entity(...)]` attribute: add `#[entity(name = \"{suggestion}\")]` \
                     to the struct"
                ),
            );
            return attrs;
        };
        for entry in &entries.entries {
            match entry.name().as_str() {
                "name" => attrs.name.fill(entry, errors, |entry, errors| {
                    attr::snake_case(entry, errors, "entity name", "name = \"contact\"")
                }),
                "plural" => attrs.plural.fill(entry, errors, |entry, errors| {
                    attr::snake_case(entry, errors, "plural", "plural = \"contacts\"")
                }),
                "table" => attrs.table.fill(entry, errors, |entry, errors| {
                    attr::snake_case(entry, errors, "table name", "table = \"contacts\"")
                }),
                "pattern" => attrs.pattern.fill(entry, errors, pattern),
                "writes" => attrs.writes.fill(entry, errors, boolean),
                "emits" => attrs.emits.fill(entry, errors, emits),
                "description" => attrs.description.fill(entry, errors, |entry, errors| {
                    Some(attr::string(entry, errors, "description = \"...\"")?.value())
                }),
                key if FIELD_KEYS.contains(&key) => errors.at(
                    &entry.key,
                    format_args!(
                        "`{key}` describes a field: put `#[entity({key} ...)]` on the field \
                         instead of the struct"
                    ),
                ),
                _ => errors.push(attr::unknown_key(entry, "#[entity(...)]", STRUCT_KEYS)),
            }
        }
        if !entries.incomplete && !attrs.name.is_present() {
            errors.at(
                path,
                format_args!("missing `name`: add `name = \"{suggestion}\"` (any snake_case name)"),
            );
        }
        attrs
    }
}

/// `pattern = "Synced"`: the entity's family, an identifier.
fn pattern(entry: &Entry, errors: &mut Errors) -> Option<String> {
    let lit = attr::string(entry, errors, "pattern = \"Base\"")?;
    let value = lit.value();
    let is_identifier = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_identifier {
        return Some(value);
    }
    errors.at(
        &lit,
        format_args!(
            "pattern \"{value}\" is not an identifier: name the family with letters, digits \
             and underscores, e.g. `pattern = \"Synced\"`"
        ),
    );
    None
}

/// `writes = false`.
fn boolean(entry: &Entry, errors: &mut Errors) -> Option<bool> {
    match &entry.value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            ..
        })) => Some(lit.value),
        _ => {
            let name = entry.name();
            errors.at(
                entry,
                format_args!("`{name}` takes `true` or `false`: write `{name} = false`"),
            );
            None
        }
    }
}

/// `emits = ["contact_created", ...]`; the valid items when some are not.
fn emits(entry: &Entry, errors: &mut Errors) -> Option<Vec<String>> {
    const EXAMPLE: &str = "emits = [\"contact_created\", \"contact_archived\"]";
    match &entry.value {
        Value::Expr(Expr::Array(array)) => Some(
            array
                .elems
                .iter()
                .filter_map(|item| match item {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => Some(lit.value()),
                    _ => {
                        errors.at(
                            item,
                            "expected a string literal naming an event type, e.g. \
                             \"contact_created\"",
                        );
                        None
                    }
                })
                .collect(),
        ),
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => {
            let value = lit.value();
            errors.at(
                lit,
                format_args!("`emits` is a list: write `emits = [\"{value}\"]`"),
            );
            None
        }
        Value::Expr(expr) => {
            errors.at(
                expr,
                format_args!("expected a list of event types: write `{EXAMPLE}`"),
            );
            None
        }
        Value::Flag | Value::List(_) => {
            errors.at(
                entry,
                format_args!("`emits` needs a list of event types: write `{EXAMPLE}`"),
            );
            None
        }
    }
}

/// What a field's `#[entity(...)]` says, as far as it could be read.
#[derive(Default)]
pub struct FieldAttrs {
    pub field_type: Slot<&'static str>,
    pub max_length: Slot<u32>,
    pub index: Slot<()>,
    pub nullable: Slot<()>,
    pub optional: Slot<()>,
}

impl FieldAttrs {
    pub fn from_syn(field: &Field, errors: &mut Errors) -> Self {
        let entries = Entries::parse(&field.attrs, "entity", errors);
        let mut attrs = FieldAttrs::default();
        for entry in &entries.entries {
            match entry.name().as_str() {
                "type" => attrs.field_type.fill(entry, errors, |entry, errors| {
                    attr::choice(entry, errors, "field type", FIELD_TYPES)
                }),
                "max_length" => attrs.max_length.fill(entry, errors, |entry, errors| {
                    let (max_length, lit) = attr::integer(entry, errors, "max_length = 255")?;
                    if max_length == 0 {
                        errors.at(lit, "`max_length` must be at least 1");
                        return None;
                    }
                    Some(max_length)
                }),
                "index" => attrs.index.fill(entry, errors, attr::flag),
                "nullable" => attrs.nullable.fill(entry, errors, attr::flag),
                "optional" => attrs.optional.fill(entry, errors, attr::flag),
                "name" => errors.at(
                    &entry.key,
                    "a field's name on the wire is its serde name: use `#[serde(rename = \
                     \"...\")]` to change it (`name` in `#[entity(...)]` on the struct names \
                     the entity)",
                ),
                key if STRUCT_KEYS.contains(&key) => errors.at(
                    &entry.key,
                    format_args!(
                        "`{key}` describes the entity: put it in the struct's `#[entity(...)]`"
                    ),
                ),
                _ => errors.push(attr::unknown_key(entry, "#[entity(...)]", FIELD_KEYS)),
            }
        }
        attrs
    }
}

/// The struct's `#[serde(rename_all = "...")]` rule, if any.
pub fn rename_all(attrs: &[Attribute]) -> Option<String> {
    serde_name(attrs, "rename_all")
}

/// The field's name on the wire, as serde spells it: its `#[serde(rename = "...")]`, else its
/// identifier (without `r#`) under the struct's `rename_all` rule.
pub fn wire_name(field: &Field, ident: &Ident, rename_all: Option<&str>) -> String {
    if let Some(name) = serde_name(&field.attrs, "rename") {
        return name;
    }
    let name = ident.unraw().to_string();
    rename_all
        .and_then(|rule| apply_rename_rule(rule, &name))
        .unwrap_or(name)
}

/// The value of `key = "..."` (or of `key(serialize = "...")`) in `#[serde(...)]`. Problems are
/// left for serde to report.
fn serde_name(attrs: &[Attribute], key: &str) -> Option<String> {
    let entries = Entries::parse(attrs, "serde", &mut Errors::default());
    let string = |entry: &Entry| match &entry.value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => Some(lit.value()),
        _ => None,
    };
    let entry = entries
        .entries
        .iter()
        .rev()
        .find(|entry| entry.name() == key)?;
    match &entry.value {
        Value::List(inner) => inner
            .iter()
            .find(|entry| entry.name() == "serialize")
            .and_then(string),
        _ => string(entry),
    }
}

/// serde's `rename_all` rules for a snake_case field name; `None` for a rule serde rejects.
fn apply_rename_rule(rule: &str, field: &str) -> Option<String> {
    let pascal = || {
        let mut pascal = String::new();
        let mut capitalize = true;
        for c in field.chars() {
            if c == '_' {
                capitalize = true;
            } else if capitalize {
                pascal.push(c.to_ascii_uppercase());
                capitalize = false;
            } else {
                pascal.push(c);
            }
        }
        pascal
    };
    Some(match rule {
        "lowercase" | "snake_case" => field.to_owned(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let pascal = pascal();
            let mut chars = pascal.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_lowercase().to_string() + chars.as_str()
            })
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        _ => return None,
    })
}
