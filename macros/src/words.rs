//! The vocabulary's words as the macros write them: paths in generated code, and phrases in
//! messages. The words themselves, and their rules, are `herald_vocabulary`'s.

use herald_vocabulary::{Backoff, Direction};
use proc_macro2::TokenStream;
use quote::quote;

/// The word as a path through the `herald` crate, which re-exports the vocabulary, so that
/// generated code needs no dependency of its own.
pub trait HeraldPath {
    fn herald_path(self) -> TokenStream;
}

impl HeraldPath for Direction {
    fn herald_path(self) -> TokenStream {
        match self {
            Direction::Inbound => quote!(::herald::Direction::Inbound),
            Direction::Change => quote!(::herald::Direction::Change),
            Direction::Outbound => quote!(::herald::Direction::Outbound),
        }
    }
}

impl HeraldPath for Backoff {
    fn herald_path(self) -> TokenStream {
        match self {
            Backoff::Exponential => quote!(::herald::Backoff::Exponential),
            Backoff::Linear => quote!(::herald::Backoff::Linear),
            Backoff::Fixed => quote!(::herald::Backoff::Fixed),
        }
    }
}

/// `an inbound`, `a change`: for messages such as "this is a change event".
pub fn with_article(direction: Direction) -> String {
    match direction {
        Direction::Inbound | Direction::Outbound => format!("an {}", direction.as_str()),
        Direction::Change => format!("a {}", direction.as_str()),
    }
}
