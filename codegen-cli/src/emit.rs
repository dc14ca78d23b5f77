//! From the model to Rust source: one pure function per artifact, assembled into modules
//! that are laid out as a tree of files (checked in) or one file (build.rs).

use std::path::PathBuf;

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

use crate::model::{
    Backoff, Entity, EntityField, EntityType, Event, Model, PayloadField, PayloadType, Routing,
    Scalar,
};

/// One file of output, its path relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: String,
}

/// How modules become files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `mod.rs` plus one file per module (`events/contact_created.rs`, …): for checked-in
    /// output, where a deleted event deletes its file and reviews show small diffs.
    #[default]
    Tree,
    /// A single `herald.rs` with inline modules: for `OUT_DIR`, where `include!` cannot
    /// follow `mod foo;` declarations.
    SingleFile,
}

/// The first line of every generated file says this, so nobody edits it by hand.
pub const GENERATED_MARKER: &str = "@generated";

/// How the header names the command that regenerates the output.
pub(crate) struct EmitOptions<'a> {
    pub layout: Layout,
    pub regenerate: &'a str,
}

struct Module {
    name: String,
    public: bool,
    /// The YAML file the module comes from, or none for modules built from all of them.
    origin: Option<String>,
    doc: String,
    items: TokenStream,
    children: Vec<Module>,
}

pub(crate) fn emit(model: &Model, options: &EmitOptions<'_>) -> Vec<GeneratedFile> {
    let root = root_module(model);
    match options.layout {
        Layout::Tree => {
            let mut files = Vec::new();
            tree_files(&root, PathBuf::new(), true, options.regenerate, &mut files);
            files.sort_by(|a, b| a.path.cmp(&b.path));
            files
        }
        Layout::SingleFile => {
            let header = header(options.regenerate, "events/ and entities/");
            let body = inline_tokens(&root, true);
            vec![GeneratedFile {
                path: PathBuf::from("herald.rs"),
                contents: format!("{header}{}", format_tokens(body)),
            }]
        }
    }
}

fn header(regenerate: &str, origin: &str) -> String {
    format!(
        "// {GENERATED_MARKER} by `{regenerate}` from {origin}.\n// Do not edit: change the YAML and generate again.\n\n"
    )
}

fn format_tokens(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for the generator's own output; keep the tokens rather than lose them.
        Err(_) => tokens.to_string(),
    }
}

fn tree_files(
    module: &Module,
    dir: PathBuf,
    is_root: bool,
    regenerate: &str,
    out: &mut Vec<GeneratedFile>,
) {
    let (path, child_dir) = if is_root {
        (dir.join("mod.rs"), dir)
    } else if module.children.is_empty() {
        (dir.join(format!("{}.rs", module.name)), dir)
    } else {
        let child_dir = dir.join(&module.name);
        (child_dir.join("mod.rs"), child_dir)
    };
    let declarations = module.children.iter().map(|child| {
        let name = format_ident!("{}", child.name);
        let vis = child.public.then(|| quote!(pub));
        quote!(#vis mod #name;)
    });
    let doc = format!(" {}", module.doc);
    let items = &module.items;
    let tokens = quote! {
        #![doc = #doc]
        #(#declarations)*
        #items
    };
    let origin = module.origin.as_deref().unwrap_or("events/ and entities/");
    out.push(GeneratedFile {
        path,
        contents: format!("{}{}", header(regenerate, origin), format_tokens(tokens)),
    });
    for child in &module.children {
        tree_files(child, child_dir.clone(), false, regenerate, out);
    }
}

fn inline_tokens(module: &Module, is_root: bool) -> TokenStream {
    let doc = format!(" {}", module.doc);
    let items = &module.items;
    let children = module
        .children
        .iter()
        .map(|child| inline_tokens(child, false));
    if is_root {
        // `include!` takes items only: the root's doc belongs to the module that includes it.
        return quote! {
            #(#children)*
            #items
        };
    }
    let body = quote! {
        #![doc = #doc]
        #(#children)*
        #items
    };
    let name = format_ident!("{}", module.name);
    let vis = module.public.then(|| quote!(pub));
    quote!(#vis mod #name { #body })
}

fn root_module(model: &Model) -> Module {
    let aggregates = model
        .entities
        .iter()
        .filter(|entity| model.change_events_of(&entity.name).next().is_some())
        .map(|entity| aggregate_enum_ident(&entity.name));
    let has_aggregates = model
        .entities
        .iter()
        .any(|entity| model.change_events_of(&entity.name).next().is_some());
    let aggregates_use =
        has_aggregates.then(|| quote!(pub use self::aggregates::{#(#aggregates),*};));
    let mut children = vec![
        events_module(model),
        entities_module(model),
        Module {
            name: "app_event".into(),
            public: false,
            origin: None,
            doc: "The `AppEvent` enum over every event, and the `EventType` of each.".into(),
            items: app_event_items(model),
            children: Vec::new(),
        },
        Module {
            name: "registry".into(),
            public: false,
            origin: None,
            doc: "The static registry of every event's metadata.".into(),
            items: registry_items(model),
            children: Vec::new(),
        },
        Module {
            name: "bus".into(),
            public: false,
            origin: None,
            doc: "`TypedEventBus`: the runtime's event bus bound to this registry.".into(),
            items: bus_items(model),
            children: Vec::new(),
        },
    ];
    if has_aggregates {
        children.push(Module {
            name: "aggregates".into(),
            public: false,
            origin: None,
            doc: "One enum per aggregate over its change events.".into(),
            items: aggregate_items(model),
            children: Vec::new(),
        });
    }
    Module {
        name: String::new(),
        public: true,
        origin: None,
        doc: "Types generated by Herald from the YAML declarations in `events/` and `entities/`."
            .into(),
        items: quote! {
            pub use self::app_event::{AppEvent, EventType};
            pub use self::registry::REGISTRY;
            pub use self::bus::{JobBindings, TypedEventBus};
            #aggregates_use
        },
        children,
    }
}

fn events_module(model: &Model) -> Module {
    let uses = model.events.iter().map(|event| {
        let module = format_ident!("{}", event.name);
        let ty = format_ident!("{}", event.struct_name);
        quote!(pub use self::#module::#ty;)
    });
    Module {
        name: "events".into(),
        public: true,
        origin: None,
        doc: "One payload struct per event.".into(),
        items: quote!(#(#uses)*),
        children: model
            .events
            .iter()
            .map(|event| Module {
                name: event.name.clone(),
                public: false,
                origin: Some(event.origin.clone()),
                doc: format!("The `{}` event.", event.name),
                items: event_items(event),
                children: Vec::new(),
            })
            .collect(),
    }
}

fn entities_module(model: &Model) -> Module {
    let uses = model.entities.iter().map(|entity| {
        let module = format_ident!("{}", entity.name);
        let types = std::iter::once(format_ident!("{}", entity.struct_name))
            .chain(entity.fields.iter().filter_map(|f| match &f.ty {
                EntityType::Enum { type_name, .. } => Some(format_ident!("{}", type_name)),
                _ => None,
            }))
            .chain(crate::repository::repository_types(entity));
        quote!(pub use self::#module::{#(#types),*};)
    });
    Module {
        name: "entities".into(),
        public: true,
        origin: None,
        doc: "One struct per entity, with an enum per `enum` field, and its repository.".into(),
        items: quote!(#(#uses)*),
        children: model
            .entities
            .iter()
            .map(|entity| Module {
                name: entity.name.clone(),
                public: false,
                origin: Some(entity.origin.clone()),
                doc: format!("The `{}` entity and its repository.", entity.name),
                items: {
                    let items = entity_items(entity);
                    let repository = crate::repository::repository_items(entity, model);
                    quote!(#items #repository)
                },
                children: Vec::new(),
            })
            .collect(),
    }
}

fn doc_attrs(text: Option<&str>) -> TokenStream {
    let lines = text
        .into_iter()
        .flat_map(str::lines)
        .map(|line| format!(" {line}"));
    quote!(#(#[doc = #lines])*)
}

/// The `#[event(...)]` attribute: every fact of the YAML, so the derive needs nothing else.
fn event_attribute(event: &Event) -> TokenStream {
    let type_ = &event.name;
    let version = Literal::u32_unsuffixed(event.version);
    let mut args = vec![quote!(type = #type_), quote!(version = #version)];
    match &event.routing {
        Routing::Domain { direction, pool } => {
            let direction = direction.as_str();
            args.push(quote!(direction = #direction));
            if let Some(aggregate) = &event.aggregate {
                args.push(quote!(aggregate = #aggregate));
            }
            if let Some(source) = &event.source {
                args.push(quote!(source = #source));
            }
            if let Some(destination) = &event.destination {
                args.push(quote!(destination = #destination));
            }
            args.push(quote!(pool = #pool));
        }
        Routing::Audit => {
            args.push(quote!(tier = "audit"));
            if let Some(aggregate) = &event.aggregate {
                args.push(quote!(aggregate = #aggregate));
            }
        }
    }
    if let Some(retry) = &event.retry {
        let mut inner = Vec::new();
        if let Some(attempts) = retry.attempts {
            let attempts = Literal::u32_unsuffixed(attempts.get());
            inner.push(quote!(attempts = #attempts));
        }
        if let Some(backoff) = retry.backoff.map(Backoff::as_str) {
            inner.push(quote!(backoff = #backoff));
        }
        args.push(quote!(retry(#(#inner),*)));
    }
    quote!(#[event(#(#args),*)])
}

const SERDE_ATTRS: &str = "::herald::serde";

fn event_items(event: &Event) -> TokenStream {
    let doc = doc_attrs(event.description.as_deref());
    let attribute = event_attribute(event);
    let name = format_ident!("{}", event.struct_name);
    let fields = event.fields.iter().map(payload_field);
    quote! {
        #doc
        #[derive(
            Debug, Clone, PartialEq,
            ::herald::serde::Serialize, ::herald::serde::Deserialize,
            ::herald::schemars::JsonSchema, ::herald::Event
        )]
        #[serde(crate = #SERDE_ATTRS, deny_unknown_fields)]
        #[schemars(crate = "::herald::schemars")]
        #attribute
        pub struct #name {
            #(#fields)*
        }
    }
}

fn payload_field(field: &PayloadField) -> TokenStream {
    let doc = doc_attrs(field.description.as_deref());
    let rename = rename_attr(&field.key, &field.ident);
    let ident = field_ident(&field.ident);
    let ty = payload_type(field);
    quote! {
        #doc
        #rename
        pub #ident: #ty,
    }
}

/// The Rust type of a payload field.
pub(crate) fn payload_type(field: &PayloadField) -> TokenStream {
    let ty = match field.ty {
        PayloadType::Scalar(scalar) => scalar_type(scalar),
        PayloadType::Json => {
            quote!(::herald::serde_json::Map<::std::string::String, ::herald::serde_json::Value>)
        }
        PayloadType::Array(scalar) => {
            let item = scalar_type(scalar);
            quote!(::std::vec::Vec<#item>)
        }
    };
    if field.nullable {
        quote!(::core::option::Option<#ty>)
    } else {
        ty
    }
}

fn scalar_type(scalar: Scalar) -> TokenStream {
    match scalar {
        Scalar::Uuid => quote!(::herald::uuid::Uuid),
        Scalar::String => quote!(::std::string::String),
        Scalar::Number => quote!(f64),
        Scalar::Integer => quote!(i64),
        Scalar::Boolean => quote!(bool),
        Scalar::Date | Scalar::DateTime => {
            quote!(::herald::chrono::DateTime<::herald::chrono::Utc>)
        }
    }
}

fn rename_attr(key: &str, ident: &str) -> Option<TokenStream> {
    (key != ident).then(|| quote!(#[serde(rename = #key)]))
}

pub(crate) fn field_ident(ident: &str) -> Ident {
    Ident::new(ident, Span::call_site())
}

fn entity_items(entity: &Entity) -> TokenStream {
    let doc = doc_attrs(entity.description.as_deref());
    let name = format_ident!("{}", entity.struct_name);
    let entity_name = &entity.name;
    // Only what differs from the derive's defaults, which are the generator's.
    let mut identity = vec![quote!(name = #entity_name)];
    if entity.plural != herald_vocabulary::naming::to_plural(&entity.name) {
        let plural = &entity.plural;
        identity.push(quote!(plural = #plural));
    }
    if entity.table != entity.plural {
        let table = &entity.table;
        identity.push(quote!(table = #table));
    }
    if let Some(pattern) = &entity.pattern {
        identity.push(quote!(pattern = #pattern));
    }
    if !entity.writes {
        identity.push(quote!(writes = false));
    }
    let emits = &entity.emits;
    let emits = (!emits.is_empty()).then(|| quote!(, emits = [#(#emits),*]));
    let fields = entity.fields.iter().map(entity_field);
    let enums = entity.fields.iter().filter_map(|field| match &field.ty {
        EntityType::Enum { type_name, choices } => {
            let type_name = format_ident!("{}", type_name);
            let variants: Vec<Ident> = choices
                .iter()
                .map(|c| format_ident!("{}", c.variant))
                .collect();
            let values: Vec<&str> = choices.iter().map(|c| c.value.as_str()).collect();
            let count = Literal::usize_unsuffixed(choices.len());
            let doc = format!(" The values of `{}.{}`.", entity.name, field.key);
            Some(quote! {
                #[doc = #doc]
                #[derive(
                    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                    ::herald::serde::Serialize, ::herald::serde::Deserialize,
                    ::herald::schemars::JsonSchema
                )]
                #[serde(crate = #SERDE_ATTRS)]
                #[schemars(crate = "::herald::schemars")]
                pub enum #type_name {
                    #(#[serde(rename = #values)] #variants,)*
                }

                impl #type_name {
                    pub const ALL: [Self; #count] = [#(Self::#variants),*];

                    /// The value as written in YAML and on the wire.
                    pub const fn as_str(self) -> &'static str {
                        match self {
                            #(Self::#variants => #values,)*
                        }
                    }
                }
            })
        }
        _ => None,
    });
    quote! {
        #doc
        #[derive(
            Debug, Clone, PartialEq,
            ::herald::serde::Serialize, ::herald::serde::Deserialize,
            ::herald::schemars::JsonSchema, ::herald::Entity
        )]
        #[serde(crate = #SERDE_ATTRS)]
        #[schemars(crate = "::herald::schemars")]
        #[entity(#(#identity),* #emits)]
        pub struct #name {
            #(#fields)*
        }

        #(#enums)*
    }
}

fn entity_field(field: &EntityField) -> TokenStream {
    let doc = doc_attrs(field.description.as_deref());
    let rename = rename_attr(&field.key, &field.ident);
    let ident = field_ident(&field.ident);
    let base = entity_base_type(field);
    let optional = !field.required || field.nullable;
    let ty = if optional {
        quote!(::core::option::Option<#base>)
    } else {
        base
    };
    // Only what the derive cannot read off the Rust type.
    let mut args = Vec::new();
    if matches!(field.ty, EntityType::Enum { .. }) {
        args.push(quote!(type = "enum"));
    }
    if let EntityType::String {
        max_length: Some(max),
    } = field.ty
    {
        let max = Literal::u32_unsuffixed(max);
        args.push(quote!(max_length = #max));
    }
    if field.index {
        args.push(quote!(index));
    }
    if !field.required {
        args.push(quote!(optional));
        if field.nullable {
            args.push(quote!(nullable));
        }
    }
    let entity_attr = (!args.is_empty()).then(|| quote!(#[entity(#(#args),*)]));
    let absent = (!field.required).then(
        || quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")]),
    );
    quote! {
        #doc
        #rename
        #absent
        #entity_attr
        pub #ident: #ty,
    }
}

/// The Rust type of one value of an entity field.
pub(crate) fn entity_base_type(field: &EntityField) -> TokenStream {
    match &field.ty {
        EntityType::String { .. } => quote!(::std::string::String),
        EntityType::Integer => quote!(i64),
        EntityType::Decimal => quote!(::herald::rust_decimal::Decimal),
        EntityType::Boolean => quote!(bool),
        EntityType::Uuid => quote!(::herald::uuid::Uuid),
        EntityType::Date => quote!(::herald::chrono::NaiveDate),
        EntityType::DateTime => quote!(::herald::chrono::DateTime<::herald::chrono::Utc>),
        EntityType::Json => quote!(::herald::serde_json::Value),
        EntityType::Enum { type_name, .. } => {
            let type_name = format_ident!("{}", type_name);
            quote!(#type_name)
        }
    }
}

fn aggregate_enum_ident(entity: &str) -> Ident {
    format_ident!("{}Event", herald_vocabulary::naming::to_pascal_case(entity))
}

/// An enum over `events`, serde-tagged by `type` with the payload under `payload`.
fn tagged_enum(name: &Ident, doc: &str, events: &[&Event]) -> TokenStream {
    let variants: Vec<Ident> = events
        .iter()
        .map(|e| format_ident!("{}", e.struct_name))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, PartialEq, ::herald::serde::Serialize, ::herald::serde::Deserialize)]
        #[serde(crate = #SERDE_ATTRS, tag = "type", content = "payload")]
        pub enum #name {
            #(#[serde(rename = #types)] #variants(super::events::#variants),)*
        }

        impl #name {
            pub const fn event_type(&self) -> super::EventType {
                match *self {
                    #(Self::#variants(_) => super::EventType::#variants,)*
                }
            }

            /// The metadata of this event's type.
            pub const fn meta(&self) -> ::herald::EventMeta {
                self.event_type().meta()
            }
        }

        #(
            impl ::core::convert::From<super::events::#variants> for #name {
                fn from(event: super::events::#variants) -> Self {
                    Self::#variants(event)
                }
            }
        )*
    }
}

fn app_event_items(model: &Model) -> TokenStream {
    let events: Vec<&Event> = model.events.iter().collect();
    let app_event = tagged_enum(
        &format_ident!("AppEvent"),
        " Every event of the application.",
        &events,
    );
    let variants: Vec<Ident> = events
        .iter()
        .map(|e| format_ident!("{}", e.struct_name))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let count = Literal::usize_unsuffixed(events.len());
    quote! {
        #app_event

        /// The type of every event, without its payload.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::herald::serde::Serialize, ::herald::serde::Deserialize
        )]
        #[serde(crate = #SERDE_ATTRS)]
        pub enum EventType {
            #(#[serde(rename = #types)] #variants,)*
        }

        impl EventType {
            /// Every event type, sorted by name.
            pub const ALL: [Self; #count] = [#(Self::#variants),*];

            /// The `type` as written in YAML and stored in the outbox.
            pub const fn as_str(self) -> &'static str {
                match self {
                    #(Self::#variants => #types,)*
                }
            }

            pub const fn meta(self) -> ::herald::EventMeta {
                match self {
                    #(Self::#variants => <super::events::#variants as ::herald::Event>::META,)*
                }
            }
        }

        impl ::core::fmt::Display for EventType {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for EventType {
            type Err = ::herald::UnknownEventType;

            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    #(#types => ::core::result::Result::Ok(Self::#variants),)*
                    _ => ::core::result::Result::Err(::herald::UnknownEventType::new(s)),
                }
            }
        }
    }
}

fn registry_items(model: &Model) -> TokenStream {
    let types = model
        .events
        .iter()
        .map(|e| format_ident!("{}", e.struct_name));
    quote! {
        /// Every event type with its metadata and payload checks, sorted by type.
        pub static REGISTRY: ::herald::Registry = ::herald::Registry::new(&[
            #(::herald::EventDescriptor::of::<super::events::#types>(),)*
        ]);
    }
}

fn bus_items(model: &Model) -> TokenStream {
    let types = model
        .events
        .iter()
        .map(|e| format_ident!("{}", e.struct_name));
    quote! {
        /// The event bus of this registry: it publishes (into the caller's transaction) and
        /// subscribes the events generated here and no others, each with its own payload type.
        /// `B` is the store's backend: SQLite unless said otherwise.
        pub type TypedEventBus<B = ::herald::SqliteBackend> =
            ::herald::EventBus<super::AppEvent, B>;

        /// The jobs bound to this registry's events: register them with
        /// `JobBindings::new().register::<MyJob>()` (a trigger outside this registry, or on an
        /// audit event, does not compile), hand them to `TypedEventBus::with_jobs`, and ask
        /// which jobs an event triggers (`triggered_by`) and which domain events trigger none
        /// (`untriggered_domain_events`).
        pub type JobBindings = ::herald::Jobs<super::AppEvent>;

        impl ::herald::Catalog for super::AppEvent {
            fn registry() -> &'static ::herald::Registry {
                &super::REGISTRY
            }
        }

        #(impl ::herald::InCatalog<super::AppEvent> for super::events::#types {})*
    }
}

fn aggregate_items(model: &Model) -> TokenStream {
    let enums = model.entities.iter().filter_map(|entity| {
        let events: Vec<&Event> = model.change_events_of(&entity.name).collect();
        if events.is_empty() {
            return None;
        }
        let name = aggregate_enum_ident(&entity.name);
        let doc = format!(" The change events of aggregate `{}`.", entity.name);
        let body = tagged_enum(&name, &doc, &events);
        let variants: Vec<Ident> = events.iter().map(|e| format_ident!("{}", e.struct_name)).collect();
        let types: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        let aggregate = &entity.name;
        Some(quote! {
            #body

            impl #name {
                /// The aggregate type these events belong to.
                pub const AGGREGATE: &'static str = #aggregate;
            }

            impl ::herald::AggregateEvents for #name {
                const AGGREGATE: &'static str = #aggregate;

                fn meta(&self) -> ::herald::EventMeta {
                    #name::meta(self)
                }

                fn payload_json(&self) -> ::core::result::Result<::std::string::String, ::herald::serde_json::Error> {
                    match self {
                        #(Self::#variants(event) => ::herald::serde_json::to_string(event),)*
                    }
                }

                fn decode(
                    event_type: &str,
                    payload: &::herald::serde_json::Value,
                ) -> ::core::result::Result<::core::option::Option<Self>, ::herald::serde_json::Error> {
                    ::core::result::Result::Ok(::core::option::Option::Some(match event_type {
                        #(#types => Self::#variants(<super::events::#variants as ::herald::serde::Deserialize>::deserialize(payload)?),)*
                        _ => return ::core::result::Result::Ok(::core::option::Option::None),
                    }))
                }
            }

            impl ::core::convert::From<#name> for super::AppEvent {
                fn from(event: #name) -> Self {
                    match event {
                        #(#name::#variants(e) => Self::#variants(e),)*
                    }
                }
            }

            impl ::core::convert::TryFrom<super::AppEvent> for #name {
                /// The event, given back, when it is not one of this aggregate's.
                type Error = super::AppEvent;

                fn try_from(event: super::AppEvent) -> ::core::result::Result<Self, Self::Error> {
                    match event {
                        #(super::AppEvent::#variants(e) => ::core::result::Result::Ok(Self::#variants(e)),)*
                        #[allow(unreachable_patterns)]
                        other => ::core::result::Result::Err(other),
                    }
                }
            }
        })
    });
    quote!(#(#enums)*)
}
