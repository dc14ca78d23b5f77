//! `#[derive(Entity)]`.

use herald_vocabulary::naming::{list_or, to_plural};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, GenericArgument, PathArguments, Type};

use crate::attr::{self, Errors};
use crate::entity_attr::{self, EntityAttrs, FieldAttrs};
use crate::event::option;

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let meta = Meta::from_syn(input, &mut errors);
    errors.finish()?;
    Ok(render(input, &meta))
}

/// The `EntityMeta` to generate. After errors it is a placeholder built from whatever was
/// valid: fields with errors are left out.
pub struct Meta {
    name: String,
    plural: String,
    table: String,
    pattern: Option<String>,
    writes: bool,
    fields: Vec<FieldMeta>,
    emits: Vec<String>,
    description: Option<String>,
}

struct FieldMeta {
    name: String,
    field_type: &'static str,
    required: bool,
    nullable: bool,
    max_length: Option<u32>,
    index: bool,
}

impl Meta {
    /// Reads `input`, pushing every problem to `errors`.
    pub fn from_syn(input: &DeriveInput, errors: &mut Errors) -> Self {
        if !input.generics.params.is_empty() {
            errors.at(
                &input.generics,
                "an entity must be a concrete type: remove the generic parameters",
            );
        }
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(fields) => Some(fields),
                Fields::Unnamed(fields) => {
                    errors.at(
                        fields,
                        "`#[derive(Entity)]` needs named fields, which are the entity's columns: \
                         write `struct Name { field: Type, ... }`",
                    );
                    None
                }
                Fields::Unit => {
                    errors.at(
                        &input.ident,
                        "`#[derive(Entity)]` needs named fields, which are the entity's columns: \
                         write `struct Name { field: Type, ... }`",
                    );
                    None
                }
            },
            Data::Enum(data) => {
                errors.at(
                    data.enum_token,
                    "`#[derive(Entity)]` only supports structs with named fields",
                );
                None
            }
            Data::Union(data) => {
                errors.at(
                    data.union_token,
                    "`#[derive(Entity)]` only supports structs with named fields",
                );
                None
            }
        };

        let attrs = EntityAttrs::from_syn(input, errors);
        let rename_all = entity_attr::rename_all(&input.attrs);
        let fields = fields
            .into_iter()
            .flat_map(|fields| &fields.named)
            .filter_map(|field| FieldMeta::from_syn(field, rename_all.as_deref(), errors))
            .collect();
        let name = attrs.name.value.unwrap_or_default();
        // The generator's defaults, from the same vocabulary: a hand-written entity and the
        // same entity in YAML get the same table.
        let plural = attrs.plural.value.unwrap_or_else(|| to_plural(&name));
        Meta {
            table: attrs.table.value.unwrap_or_else(|| plural.clone()),
            plural,
            pattern: attrs.pattern.value,
            writes: attrs.writes.value.unwrap_or(true),
            name,
            fields,
            emits: attrs.emits.value.unwrap_or_default(),
            description: attrs
                .description
                .value
                .or_else(|| attr::doc_comment(&input.attrs)),
        }
    }
}

impl FieldMeta {
    /// The field's metadata; `None` when its type is unknown.
    fn from_syn(field: &syn::Field, rename_all: Option<&str>, errors: &mut Errors) -> Option<Self> {
        let attrs = FieldAttrs::from_syn(field, errors);
        let ident = field.ident.as_ref()?;
        let name = entity_attr::wire_name(field, ident, rename_all);
        let (is_option, inner) = match option_inner(&field.ty) {
            Some(inner) => (true, inner),
            None => (false, &field.ty),
        };
        let field_type = match attrs.field_type.value {
            Some(field_type) => Some(field_type),
            // A bad `type` has its error already.
            None if attrs.field_type.is_present() => None,
            None => infer(inner, errors),
        };
        if let (Some(_), Some(field_type)) = (attrs.max_length.value, field_type)
            && field_type != "string"
        {
            errors.at(
                attrs.max_length.entry(),
                format_args!(
                    "`max_length` only applies to string fields, not to {field_type} ones; \
                     remove `max_length`"
                ),
            );
        }
        let optional = attrs.optional.is_set();
        Some(FieldMeta {
            name,
            field_type: field_type?,
            required: !optional,
            nullable: attrs.nullable.is_set() || (is_option && !optional),
            max_length: attrs.max_length.value,
            index: attrs.index.is_set(),
        })
    }
}

/// `T` if `ty` is `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty)?;
    if segment.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    match arguments.args.first() {
        Some(GenericArgument::Type(inner)) if arguments.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// The field type of a Rust type, from the last segment of its path.
fn infer(ty: &Type, errors: &mut Errors) -> Option<&'static str> {
    let name = last_segment(ty).map(|segment| segment.ident.to_string());
    let field_type = match name.as_deref() {
        Some("String") => "string",
        Some("i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize") => {
            "integer"
        }
        Some("Decimal") => "decimal",
        Some("bool") => "boolean",
        Some("Uuid") => "uuid",
        Some("NaiveDate") => "date",
        Some("DateTime") => "datetime",
        Some("Value" | "Map") => "json",
        Some(float @ ("f32" | "f64")) => {
            errors.at(
                ty,
                format_args!(
                    "`{float}` is not an entity field type, floats being inexact: use decimal \
                     for exact values (`rust_decimal::Decimal`, inferred as `decimal`)"
                ),
            );
            return None;
        }
        _ => {
            let types: Vec<&str> = entity_attr::FIELD_TYPES
                .iter()
                .map(|(name, _)| *name)
                .collect();
            let of = name.map_or_else(|| "this Rust type".to_owned(), |name| format!("`{name}`"));
            errors.at(
                ty,
                format_args!(
                    "cannot infer the entity field type of {of}: add `#[entity(type = \"...\")]` \
                     to the field with one of {} (an enum needs `type = \"enum\"`)",
                    list_or(&types, "\"")
                ),
            );
            return None;
        }
    };
    Some(field_type)
}

pub fn render(input: &DeriveInput, meta: &Meta) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let name = &meta.name;
    let fields = meta.fields.iter().map(|field| {
        let FieldMeta {
            name,
            field_type,
            required,
            nullable,
            max_length,
            index,
        } = field;
        let max_length = match max_length {
            Some(max_length) => quote!(::core::option::Option::Some(#max_length)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::herald::FieldMeta {
                name: #name,
                field_type: #field_type,
                required: #required,
                nullable: #nullable,
                max_length: #max_length,
                index: #index,
            }
        }
    });
    let emits = &meta.emits;
    let description = option(meta.description.as_deref());
    let (plural, table, writes) = (&meta.plural, &meta.table, meta.writes);
    let pattern = option(meta.pattern.as_deref());
    quote! {
        #[automatically_derived]
        impl #impl_generics ::herald::Entity for #ident #ty_generics #where_clause {
            const META: ::herald::EntityMeta = ::herald::EntityMeta {
                name: #name,
                plural: #plural,
                table: #table,
                pattern: #pattern,
                writes: #writes,
                fields: &[#(#fields),*],
                emits: &[#(#emits),*],
                description: #description,
            };
        }

    }
}
