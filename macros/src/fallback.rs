//! What is generated when a derive has errors: the errors, plus an impl with placeholder
//! metadata built from whatever was valid, so that the only errors the user sees are the real
//! ones and not "the trait `Event` is not implemented" wherever the type is used.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::attr::Errors;
use crate::event_attr::EventAttrs;
use crate::{entity, event};

pub fn event(input: &DeriveInput, error: syn::Error) -> TokenStream {
    // Read again, the errors being known already.
    let attrs = EventAttrs::from_syn(input, &mut Errors::default());
    let error = error.into_compile_error();
    let placeholder = event::render(input, &event::Meta::resolve(input, &attrs));
    quote!(#error #placeholder)
}

pub fn entity(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let meta = entity::Meta::from_syn(input, &mut Errors::default());
    let error = error.into_compile_error();
    let placeholder = entity::render(input, &meta);
    quote!(#error #placeholder)
}
