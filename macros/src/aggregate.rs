//! `#[derive(Aggregate)]`: binds a struct to the generated enum of its entity's change events.

use herald_vocabulary::naming::to_pascal_case;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Data, DeriveInput, Expr, Fields, Ident, Path};

use crate::attr::{self, Entries, Errors, Slot, Value};

const KEYS: &[&str] = &["entity", "id", "events"];

/// `contact_person` → `ContactPersonEvent`, as the generator names the enum.
fn events_enum(entity: &str, span: Span) -> Ident {
    format_ident!("{}Event", to_pascal_case(entity), span = span)
}

struct Attrs {
    entity: Slot<(String, Span)>,
    id: Slot<Ident>,
    events: Slot<Path>,
}

fn parse(input: &DeriveInput, errors: &mut Errors) -> Attrs {
    let entries = Entries::parse(&input.attrs, "aggregate", errors);
    let mut attrs = Attrs {
        entity: Slot::default(),
        id: Slot::default(),
        events: Slot::default(),
    };
    for entry in &entries.entries {
        match entry.name().as_str() {
            "entity" => attrs.entity.fill(entry, errors, |entry, errors| {
                let lit = attr::string(entry, errors, "entity = \"contact\"")?;
                let name = attr::snake_case(entry, errors, "entity name", "entity = \"contact\"")?;
                Some((name, lit.span()))
            }),
            "id" => attrs
                .id
                .fill(entry, errors, |entry, errors| match &entry.value {
                    Value::Expr(Expr::Path(path)) if path.path.get_ident().is_some() => {
                        path.path.get_ident().cloned()
                    }
                    _ => {
                        errors.at(
                        entry,
                        "`id` names the field holding the aggregate's id: write `id = contact_id`",
                    );
                        None
                    }
                }),
            "events" => attrs
                .events
                .fill(entry, errors, |entry, errors| match &entry.value {
                    Value::Expr(Expr::Path(path)) => Some(path.path.clone()),
                    _ => {
                        errors.at(
                            entry,
                            "`events` names the generated enum of the entity's events: write \
                         `events = generated::ContactEvent`",
                        );
                        None
                    }
                }),
            _ => errors.push(attr::unknown_key(entry, "aggregate", KEYS)),
        }
    }
    if entries.is_absent() {
        errors.at(
            &input.ident,
            "an aggregate needs `#[aggregate(entity = \"...\", id = field)]`: the entity whose \
             change events it folds, and the field holding its id",
        );
    } else if !entries.incomplete {
        let at = entries.first.as_ref();
        if !attrs.entity.is_present() {
            errors.at(
                at,
                "missing `entity`: name the entity of `entities/` whose change events this \
                 aggregate folds, e.g. `entity = \"contact\"`",
            );
        }
        if !attrs.id.is_present() {
            errors.at(
                at,
                "missing `id`: name the field holding the aggregate's id, e.g. `id = contact_id`",
            );
        }
    }
    attrs
}

pub fn expand(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let fields = match &input.data {
        Data::Struct(data) => Some(&data.fields),
        _ => {
            errors.at(
                &input.ident,
                "`#[derive(Aggregate)]` goes on a struct: the aggregate's state",
            );
            None
        }
    };
    if !input.generics.params.is_empty() {
        errors.at(
            &input.generics,
            "an aggregate must be a concrete type: remove the generic parameters",
        );
    }
    let attrs = parse(input, &mut errors);
    if let (Some(Fields::Named(named)), Some(id)) = (fields, &attrs.id.value) {
        let known = named
            .named
            .iter()
            .any(|field| field.ident.as_ref() == Some(id));
        if !known {
            errors.at(
                id,
                format_args!("`{id}` is not a field of `{}`: `id` names the field holding the aggregate's id", input.ident),
            );
        }
    }
    let error = errors.finish().err().map(syn::Error::into_compile_error);
    let (Some((entity, entity_span)), Some(id)) = (&attrs.entity.value, &attrs.id.value) else {
        return quote!(#error);
    };
    if error.is_some() {
        return quote!(#error);
    }
    let ident = &input.ident;
    let events = match &attrs.events.value {
        Some(path) => quote!(#path),
        None => {
            let name = events_enum(entity, *entity_span);
            quote!(#name)
        }
    };
    let message =
        format!("the events enum bound to `{ident}` belongs to another entity than `{entity}`");
    let check = quote_spanned! {*entity_span=>
        const _: () = ::core::assert!(
            ::herald::__private::str_eq(
                <#events as ::herald::AggregateEvents>::AGGREGATE,
                #entity,
            ),
            #message,
        );
    };
    quote! {
        #[automatically_derived]
        impl ::herald::Aggregate for #ident {
            type Event = #events;
            const TYPE: &'static str = #entity;

            fn aggregate_id(&self) -> ::std::string::String {
                ::std::string::ToString::to_string(&self.#id)
            }
        }
        #check
    }
}
