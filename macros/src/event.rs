//! `#[derive(Event)]`.

use herald_vocabulary::{Backoff, Direction, MaxAttempts, RetryPolicy, Tier};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput};

use crate::attr::{self, Errors};
use crate::event_attr::EventAttrs;
use crate::words::HeraldPath as _;

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    check_shape(input, &mut errors);
    let attrs = EventAttrs::from_syn(input, &mut errors);
    errors.finish()?;
    Ok(render(input, &Meta::resolve(input, &attrs)))
}

/// An event is a concrete struct.
fn check_shape(input: &DeriveInput, errors: &mut Errors) {
    match &input.data {
        Data::Struct(_) => {}
        Data::Enum(data) => errors.at(
            data.enum_token,
            "`#[derive(Event)]` only supports structs: an event payload is a struct whose \
             fields are the payload; derive `Event` on one struct per kind of event",
        ),
        Data::Union(data) => errors.at(
            data.union_token,
            "`#[derive(Event)]` only supports structs: an event payload is a struct whose \
             fields are the payload",
        ),
    }
    if !input.generics.params.is_empty() {
        errors.at(
            &input.generics,
            "an event must be a concrete type: remove the generic parameters (each event type \
             has one fixed payload)",
        );
    }
}

/// The `EventMeta` to generate: the attribute's values with the defaults filled in. After
/// errors it is a placeholder built from whatever was valid.
pub struct Meta {
    event_type: String,
    version: u32,
    /// `None` for an audit event.
    routing: Option<(Direction, String)>,
    aggregate: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    attempts: MaxAttempts,
    backoff: Backoff,
    description: Option<String>,
}

impl Meta {
    pub fn resolve(input: &DeriveInput, attrs: &EventAttrs) -> Self {
        let routing = match attrs.tier() {
            Some(Tier::Audit) => None,
            // A bad `tier` is most likely meant as domain (the default).
            Some(Tier::Domain) | None => {
                let direction = attrs.direction.value.unwrap_or(Direction::Change);
                let pool = attrs
                    .pool
                    .value
                    .clone()
                    .unwrap_or_else(|| direction.default_pool().to_owned());
                Some((direction, pool))
            }
        };
        Meta {
            event_type: attrs.event_type.value.clone().unwrap_or_default(),
            version: attrs.version.value.unwrap_or(1),
            routing,
            aggregate: attrs.aggregate.value.clone(),
            source: attrs.source.value.clone(),
            destination: attrs.destination.value.clone(),
            attempts: attrs
                .attempts
                .value
                .unwrap_or(RetryPolicy::DEFAULT.max_attempts()),
            backoff: attrs.backoff.value.unwrap_or(RetryPolicy::DEFAULT.backoff),
            description: attrs
                .description
                .value
                .clone()
                .or_else(|| attr::doc_comment(&input.attrs)),
        }
    }
}

/// The impls of `Event` (and `DomainEvent` for a domain event).
///
/// Only a placeholder after errors can be generic: its impl then requires the supertraits of
/// `Event` in a `where` clause, so that it does not add errors of its own.
pub fn render(input: &DeriveInput, meta: &Meta) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let where_clause = if input.generics.params.is_empty() {
        quote!(#where_clause)
    } else {
        let predicates = where_clause
            .into_iter()
            .flat_map(|clause| &clause.predicates);
        quote! {
            where
                #(#predicates,)*
                Self: ::herald::serde::Serialize
                    + ::herald::serde::de::DeserializeOwned
                    + ::herald::schemars::JsonSchema
                    + ::core::clone::Clone
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static,
        }
    };

    let event_type = &meta.event_type;
    let version = meta.version;
    let routing = match &meta.routing {
        Some((direction, pool)) => {
            let direction = direction.herald_path();
            quote!(::herald::Routing::Domain { direction: #direction, pool: #pool })
        }
        None => quote!(::herald::Routing::Audit),
    };
    let aggregate = option(meta.aggregate.as_deref());
    let source = option(meta.source.as_deref());
    let destination = option(meta.destination.as_deref());
    let attempts = meta.attempts.get();
    let backoff = meta.backoff.herald_path();
    let description = option(meta.description.as_deref());

    let domain = meta.routing.is_some().then(|| {
        // A job triggered by this event may take the event itself as its input
        // (`Input: From<&Event>`).
        let input_from_event = input.generics.params.is_empty().then(|| {
            quote! {
                #[automatically_derived]
                impl ::core::convert::From<&#ident> for #ident {
                    fn from(event: &#ident) -> Self {
                        ::core::clone::Clone::clone(event)
                    }
                }
            }
        });
        quote! {
            #[automatically_derived]
            impl #impl_generics ::herald::DomainEvent for #ident #ty_generics #where_clause {}
            #input_from_event
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics ::herald::Event for #ident #ty_generics #where_clause {
            const META: ::herald::EventMeta = ::herald::EventMeta {
                event_type: #event_type,
                version: #version,
                routing: #routing,
                aggregate: #aggregate,
                source: #source,
                destination: #destination,
                retry: ::herald::RetryPolicy {
                    attempts: #attempts,
                    backoff: #backoff,
                },
                description: #description,
            };
        }
        #domain
    }
}

/// `Option<&'static str>` as an expression.
pub fn option(value: Option<&str>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}
