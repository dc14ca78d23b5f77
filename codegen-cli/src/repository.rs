//! The typed repository of an entity: `NewX`, `XPatch`, one struct per list query's filter,
//! and `XRepository`, whose methods call the runtime's [`herald::Rows`] with the entity's
//! columns and publish the `emits:` events of each write in the caller's transaction.
//!
//! Everything a repository decides per entity is decided here, at generate time: which columns
//! the caller sets, which the repository fills (ids, timestamps, the actor), the parameters of
//! each finder and each write, and how each payload field of a published event is made from
//! the row.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::emit::{entity_base_type, field_ident, payload_type};
use crate::model::{
    Behavior, DefaultValue, EmitBinding, Entity, EntityField, EntityType, Event, Model,
    PayloadField, Query, QueryKind, Source, Write,
};

/// The columns a behavior adds, which the repository fills and the caller never sets.
fn behavior_columns(entity: &Entity) -> Vec<&'static str> {
    let mut columns = Vec::new();
    for behavior in &entity.behaviors {
        columns.extend_from_slice(match behavior {
            Behavior::Timestamps => &["created_at", "updated_at"][..],
            Behavior::SoftDelete => &["deleted_at"][..],
            Behavior::UserTracking => &["created_by", "updated_by"][..],
        });
    }
    columns
}

/// The fields the caller sets: all but the id and the behaviors' columns.
fn settable(entity: &Entity) -> Vec<&EntityField> {
    let filled = behavior_columns(entity);
    entity
        .fields
        .iter()
        .filter(|f| f.key != "id" && !filled.contains(&f.key.as_str()))
        .collect()
}

fn has(entity: &Entity, behavior: Behavior) -> bool {
    entity.behaviors.contains(&behavior)
}

fn field_type(field: &EntityField) -> TokenStream {
    let base = entity_base_type(field);
    if field.optional() {
        quote!(::core::option::Option<#base>)
    } else {
        base
    }
}

/// The Rust value of a column default, when it has a literal form.
fn default_value(field: &EntityField) -> Option<TokenStream> {
    let default = field.default.as_ref()?;
    Some(match (&field.ty, default) {
        (EntityType::Enum { type_name, choices }, DefaultValue::String(value)) => {
            let ty = format_ident!("{}", type_name);
            let variant = format_ident!("{}", choices.iter().find(|c| &c.value == value)?.variant);
            quote!(#ty::#variant)
        }
        (_, DefaultValue::String(value)) => quote!(::std::string::String::from(#value)),
        (_, DefaultValue::Integer(value)) => {
            let value = Literal::i64_unsuffixed(*value);
            quote!(#value)
        }
        (_, DefaultValue::Boolean(value)) => quote!(#value),
        (_, DefaultValue::Decimal(text)) => {
            let (mantissa, scale) = decimal_parts(text)?;
            let mantissa = Literal::i128_unsuffixed(mantissa);
            let scale = Literal::u32_unsuffixed(scale);
            quote!(::herald::rust_decimal::Decimal::from_i128_with_scale(#mantissa, #scale))
        }
    })
}

/// `-12.50` → (-1250, 2).
fn decimal_parts(text: &str) -> Option<(i128, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = u32::try_from(fraction.len()).ok().filter(|s| *s <= 28)?;
    Some((if negative { -mantissa } else { mantissa }, scale))
}

/// The types a repository adds to its entity's module, re-exported beside the entity.
pub(crate) fn repository_types(entity: &Entity) -> Vec<Ident> {
    let mut types = vec![format_ident!("{}Repository", entity.struct_name)];
    if entity.writes {
        types.push(format_ident!("New{}", entity.struct_name));
        types.push(format_ident!("{}Patch", entity.struct_name));
    }
    types.extend(
        entity
            .queries
            .iter()
            .filter(|q| matches!(q.kind, QueryKind::List { .. }))
            .map(|q| filter_ident(entity, q)),
    );
    types
}

pub(crate) fn repository_items(entity: &Entity, model: &Model) -> TokenStream {
    let name = format_ident!("{}", entity.struct_name);
    let repository = format_ident!("{}Repository", entity.struct_name);
    let entity_name = &entity.name;
    let soft_delete = has(entity, Behavior::SoftDelete);
    let published: Vec<&str> = entity
        .emit_bindings
        .iter()
        .map(|b| b.event.as_str())
        .collect();
    let mut doc = format!(
        " Reads{} `{}` through the caller's connection or transaction.",
        if entity.writes { " and writes" } else { "" },
        entity.table
    );
    if !published.is_empty() {
        doc.push_str(&format!(
            " Each write publishes its event (`{}`) in the same transaction: the row and its \
             event commit together or not at all.",
            published.join("`, `")
        ));
    }
    if !entity.writes {
        doc.push_str(" Read-only (`generate: { writes: false }`): it has no write methods.");
    }
    let deleted_field = soft_delete.then(|| quote!(include_deleted: bool,));
    let deleted_init = soft_delete.then(|| quote!(include_deleted: false,));
    let including_deleted = soft_delete.then(|| {
        quote! {
            /// Reads that also see soft-deleted rows.
            pub fn including_deleted(mut self) -> Self {
                self.include_deleted = true;
                self
            }
        }
    });
    let select_base = if soft_delete {
        quote! {
            let select = ::herald::Select::new();
            if self.include_deleted { select } else { select.live() }
        }
    } else {
        quote!(::herald::Select::new())
    };
    let finders = entity.queries.iter().map(|query| finder(entity, query));
    let filters = entity
        .queries
        .iter()
        .filter_map(|query| filter_struct(entity, query));
    let writes = entity.writes.then(|| write_items(entity));
    let write_methods = entity.writes.then(|| write_methods(entity, model));
    quote! {
        #[doc = #doc]
        pub struct #repository<'bus, B: ::herald::RepositoryBackend = ::herald::SqliteBackend> {
            bus: &'bus super::super::TypedEventBus<B>,
            #deleted_field
        }

        impl<'bus, B: ::herald::RepositoryBackend> #repository<'bus, B> {
            /// The repository of the bus's store; writes publish through the bus.
            pub fn new(bus: &'bus super::super::TypedEventBus<B>) -> Self {
                Self { bus, #deleted_init }
            }

            /// The bus the repository publishes through.
            pub fn bus(&self) -> &'bus super::super::TypedEventBus<B> {
                self.bus
            }

            #including_deleted

            fn select(&self) -> ::herald::Select {
                #select_base
            }

            /// The row with `id`, if there is one.
            pub async fn get(
                &self,
                connection: &mut <B as ::herald::RepositoryBackend>::Connection,
                id: ::herald::uuid::Uuid,
            ) -> ::core::result::Result<::core::option::Option<#name>, ::herald::RepositoryError> {
                ::herald::Rows::<#name>::fetch_one::<B>(connection, self.select().eq("id", id)).await
            }

            /// A page of every row, in id order (creation order for Herald's UUID v7 ids).
            pub async fn list(
                &self,
                connection: &mut <B as ::herald::RepositoryBackend>::Connection,
                page: ::herald::Page,
            ) -> ::core::result::Result<::std::vec::Vec<#name>, ::herald::RepositoryError> {
                ::herald::Rows::<#name>::fetch::<B>(connection, self.select().page(page)).await
            }

            #(#finders)*
            #write_methods
        }

        // By hand: a derive would ask `B: Copy` of the backend the repository only borrows.
        impl<B: ::herald::RepositoryBackend> ::core::clone::Clone for #repository<'_, B> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<B: ::herald::RepositoryBackend> ::core::marker::Copy for #repository<'_, B> {}

        impl<B: ::herald::RepositoryBackend> ::core::fmt::Debug for #repository<'_, B> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(concat!(stringify!(#repository), " of `", #entity_name, "`"))
            }
        }

        #(#filters)*
        #writes
    }
}

fn order_tokens(query: &Query) -> TokenStream {
    let order = query.order.iter().map(|o| {
        let column = &o.column;
        let descending = o.descending;
        quote!((#column, #descending))
    });
    quote!(&[#(#order),*])
}

/// A finder's parameter for equality on `field`: `&str` for text, the value otherwise.
fn equality_parameter(field: &EntityField) -> TokenStream {
    match field.ty {
        EntityType::String { .. } => quote!(&str),
        _ => entity_base_type(field),
    }
}

fn filter_ident(entity: &Entity, query: &Query) -> Ident {
    format_ident!(
        "{}{}Filter",
        entity.struct_name,
        herald_vocabulary::naming::to_pascal_case(&query.name)
    )
}

fn finder(entity: &Entity, query: &Query) -> TokenStream {
    let name = format_ident!("{}", entity.struct_name);
    let method = format_ident!("{}", query.name);
    let order = order_tokens(query);
    match &query.kind {
        QueryKind::By { columns, unique } => {
            let fields: Vec<&EntityField> =
                columns.iter().filter_map(|c| entity.field(c)).collect();
            let params = fields.iter().map(|f| {
                let ident = field_ident(&f.ident);
                let ty = equality_parameter(f);
                quote!(#ident: #ty)
            });
            let conditions = fields.iter().map(|f| {
                let key = &f.key;
                let ident = field_ident(&f.ident);
                quote!(.eq(#key, #ident))
            });
            let columns = columns.join("`, `");
            if *unique {
                let doc = format!(" The row with this `{columns}`, if there is one.");
                quote! {
                    #[doc = #doc]
                    pub async fn #method(
                        &self,
                        connection: &mut <B as ::herald::RepositoryBackend>::Connection,
                        #(#params),*
                    ) -> ::core::result::Result<::core::option::Option<#name>, ::herald::RepositoryError> {
                        ::herald::Rows::<#name>::fetch_one::<B>(connection, self.select()#(#conditions)*).await
                    }
                }
            } else {
                let doc = format!(" The rows with this `{columns}`.");
                quote! {
                    #[doc = #doc]
                    pub async fn #method(
                        &self,
                        connection: &mut <B as ::herald::RepositoryBackend>::Connection,
                        #(#params),*
                    ) -> ::core::result::Result<::std::vec::Vec<#name>, ::herald::RepositoryError> {
                        ::herald::Rows::<#name>::fetch::<B>(
                            connection,
                            self.select()#(#conditions)*.order_by(#order),
                        ).await
                    }
                }
            }
        }
        QueryKind::List {
            filters,
            search,
            paginate,
        } => {
            let filter = filter_ident(entity, query);
            let conditions = filters.iter().filter_map(|c| entity.field(c)).map(|f| {
                let key = &f.key;
                let ident = field_ident(&f.ident);
                quote! {
                    if let ::core::option::Option::Some(value) = filter.#ident {
                        select = select.eq(#key, value);
                    }
                }
            });
            let search = search.as_ref().map(|column| {
                quote! {
                    if let ::core::option::Option::Some(text) = &filter.search {
                        select = select.search(#column, text);
                    }
                }
            });
            let (page_param, page) = if *paginate {
                (
                    quote!(page: ::herald::Page,),
                    quote!(select = select.page(page);),
                )
            } else {
                (TokenStream::new(), TokenStream::new())
            };
            let doc = format!(
                " The rows that match every filter that is set{}.",
                if *paginate { ", a page at a time" } else { "" }
            );
            quote! {
                #[doc = #doc]
                pub async fn #method(
                    &self,
                    connection: &mut <B as ::herald::RepositoryBackend>::Connection,
                    filter: #filter,
                    #page_param
                ) -> ::core::result::Result<::std::vec::Vec<#name>, ::herald::RepositoryError> {
                    let mut select = self.select().order_by(#order);
                    #(#conditions)*
                    #search
                    #page
                    ::herald::Rows::<#name>::fetch::<B>(connection, select).await
                }
            }
        }
    }
}

fn filter_struct(entity: &Entity, query: &Query) -> Option<TokenStream> {
    let QueryKind::List {
        filters, search, ..
    } = &query.kind
    else {
        return None;
    };
    let ident = filter_ident(entity, query);
    let doc = format!(
        " What `{}Repository::{}` filters on; a field left `None` filters nothing.",
        entity.struct_name, query.name
    );
    let fields = filters.iter().filter_map(|c| entity.field(c)).map(|f| {
        let name = field_ident(&f.ident);
        let ty = entity_base_type(f);
        let doc = format!(" Only rows whose `{}` is this.", f.key);
        quote!(#[doc = #doc] pub #name: ::core::option::Option<#ty>,)
    });
    let search = search.as_ref().map(|column| {
        let doc = format!(" Only rows whose `{column}` contains this text, ignoring case.");
        quote!(#[doc = #doc] pub search: ::core::option::Option<::std::string::String>,)
    });
    Some(quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct #ident {
            #(#fields)*
            #search
        }
    })
}

/// `NewX` and `XPatch`.
fn write_items(entity: &Entity) -> TokenStream {
    let new = format_ident!("New{}", entity.struct_name);
    let patch = format_ident!("{}Patch", entity.struct_name);
    let fields = settable(entity);
    let new_fields = fields.iter().map(|f| {
        let ident = field_ident(&f.ident);
        let ty = field_type(f);
        match default_value(f) {
            Some(_) if !f.optional() => {
                let doc = " `None`: the declared default.";
                quote!(#[doc = #doc] pub #ident: ::core::option::Option<#ty>,)
            }
            _ => quote!(pub #ident: #ty,),
        }
    });
    let patch_fields = fields.iter().map(|f| {
        let ident = field_ident(&f.ident);
        let ty = field_type(f);
        quote!(pub #ident: ::core::option::Option<#ty>,)
    });
    let new_doc = format!(
        " A `{}` to insert: the columns the application sets (the repository sets the id{}).",
        entity.name,
        match (
            has(entity, Behavior::Timestamps),
            has(entity, Behavior::UserTracking)
        ) {
            (true, true) => ", the timestamps and the actor",
            (true, false) => " and the timestamps",
            (false, true) => " and the actor",
            (false, false) => "",
        }
    );
    let patch_doc = format!(
        " A change to a `{}`: each field that is `Some` is written, the others are kept.",
        entity.name
    );
    quote! {
        #[doc = #new_doc]
        #[derive(Debug, Clone, PartialEq)]
        pub struct #new {
            #(#new_fields)*
        }

        #[doc = #patch_doc]
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct #patch {
            #(#patch_fields)*
        }
    }
}

/// The event a write publishes.
fn event_of<'m>(binding: &EmitBinding, model: &'m Model) -> Option<&'m Event> {
    model.events.iter().find(|e| e.name == binding.event)
}

/// The payload fields of `binding` that are arguments of the write, with their types.
fn arguments<'m>(binding: Option<&EmitBinding>, model: &'m Model) -> Vec<&'m PayloadField> {
    let Some((binding, event)) = binding.and_then(|b| Some((b, event_of(b, model)?))) else {
        return Vec::new();
    };
    binding
        .fields
        .iter()
        .filter(|b| b.source == Source::Argument)
        .filter_map(|b| event.fields.iter().find(|f| f.key == b.key))
        .collect()
}

/// Whether the write takes the actor: it fills `created_by`/`updated_by` (a hard delete
/// leaves no row to fill), or its event does.
fn takes_actor(entity: &Entity, write: Write, binding: Option<&EmitBinding>) -> bool {
    let fills_row = has(entity, Behavior::UserTracking)
        && (write != Write::Delete || has(entity, Behavior::SoftDelete));
    fills_row || binding.is_some_and(|b| b.fields.iter().any(|f| f.source == Source::Actor))
}

/// The event payload a write publishes, built from the row (and, for an update, the row
/// before it).
fn publish(entity: &Entity, binding: Option<&EmitBinding>, model: &Model) -> TokenStream {
    let Some((binding, event)) = binding.and_then(|b| Some((b, event_of(b, model)?))) else {
        return TokenStream::new();
    };
    let event_ty = format_ident!("{}", event.struct_name);
    let fields = binding.fields.iter().filter_map(|source| {
        let payload = event.fields.iter().find(|f| f.key == source.key)?;
        let ident = field_ident(&payload.ident);
        let value = match &source.source {
            Source::Id => quote!(row.id),
            Source::Actor => quote!(actor),
            Source::Argument => return Some(quote!(#ident)),
            Source::Column(key) => {
                let column = entity.field(key)?;
                column_value(column, payload, binding.write == Write::Update)
            }
        };
        Some(quote!(#ident: #value))
    });
    quote! {
        self.bus
            .publish(tx, row.id, super::super::events::#event_ty { #(#fields),* })
            .await?;
    }
}

/// A payload field made from a column of `row`. On an update a nullable field carries the new
/// value only when the write changed it.
fn column_value(column: &EntityField, payload: &PayloadField, update: bool) -> TokenStream {
    let ident = field_ident(&column.ident);
    // From one (non-null) value of the column to the payload's type.
    let convert = |value: TokenStream| match &column.ty {
        EntityType::Enum { .. } => quote!(#value.as_str().to_owned()),
        EntityType::Decimal => quote!(#value.to_string()),
        EntityType::String { .. } | EntityType::Json => quote!(#value.clone()),
        _ => value,
    };
    let value = if column.optional() {
        match &column.ty {
            EntityType::String { .. } | EntityType::Json => quote!(row.#ident.clone()),
            EntityType::Enum { .. } | EntityType::Decimal => {
                let inner = convert(quote!(value));
                quote!(row.#ident.map(|value| #inner))
            }
            _ => quote!(row.#ident),
        }
    } else if payload.nullable {
        let inner = convert(quote!(row.#ident));
        quote!(::core::option::Option::Some(#inner))
    } else {
        convert(quote!(row.#ident))
    };
    if update && payload.nullable {
        quote! {
            if row.#ident != old.#ident { #value } else { ::core::option::Option::None }
        }
    } else {
        value
    }
}

fn write_methods(entity: &Entity, model: &Model) -> TokenStream {
    let name = format_ident!("{}", entity.struct_name);
    let new = format_ident!("New{}", entity.struct_name);
    let patch = format_ident!("{}Patch", entity.struct_name);
    let binding = |write: Write| entity.emit_bindings.iter().find(|b| b.write == write);
    let soft_delete = has(entity, Behavior::SoftDelete);
    let timestamps = has(entity, Behavior::Timestamps);
    let tracking = has(entity, Behavior::UserTracking);

    let signature_extras = |write: Write| {
        let b = binding(write);
        let actor = takes_actor(entity, write, b).then(|| quote!(actor: ::herald::uuid::Uuid,));
        let args = arguments(b, model).into_iter().map(|f| {
            let ident = field_ident(&f.ident);
            let ty = payload_type(f);
            quote!(#ident: #ty,)
        });
        quote!(#actor #(#args)*)
    };
    let doc_publishes = |write: Write| match binding(write) {
        Some(b) => format!(" Publishes `{}` in the same transaction.", b.event),
        None => String::new(),
    };

    // insert
    let fields = settable(entity);
    let inits = entity.fields.iter().map(|f| {
        let ident = field_ident(&f.ident);
        let value = match f.key.as_str() {
            "id" => quote!(::herald::uuid::Uuid::now_v7()),
            "created_at" | "updated_at" if timestamps => quote!(now),
            "deleted_at" if soft_delete => quote!(::core::option::Option::None),
            "created_by" | "updated_by" if tracking => quote!(::core::option::Option::Some(actor)),
            _ => match default_value(f) {
                Some(default) if !f.optional() => quote!(new.#ident.unwrap_or(#default)),
                _ => quote!(new.#ident),
            },
        };
        quote!(#ident: #value)
    });
    // Both databases keep microseconds: the row returned is the row stored.
    let now_expr = quote!(::herald::chrono::SubsecRound::trunc_subsecs(
        self.bus.store().now(),
        6
    ));
    let now = timestamps.then(|| quote!(let now = #now_expr;));
    let insert_extras = signature_extras(Write::Insert);
    let insert_publish = publish(entity, binding(Write::Insert), model);
    let insert_doc = format!(
        " Inserts a new `{}` with a fresh UUID v7 id and returns it.{}",
        entity.name,
        doc_publishes(Write::Insert)
    );

    // update
    let patches = fields.iter().map(|f| {
        let ident = field_ident(&f.ident);
        quote! {
            if let ::core::option::Option::Some(value) = patch.#ident {
                row.#ident = value;
            }
        }
    });
    let touch = {
        let at = timestamps.then(|| quote!(row.updated_at = now;));
        let by = tracking.then(|| quote!(row.updated_by = ::core::option::Option::Some(actor);));
        quote!(#at #by)
    };
    let update_extras = signature_extras(Write::Update);
    let update_publish = publish(entity, binding(Write::Update), model);
    let needs_old = binding(Write::Update).is_some_and(|b| {
        let event = event_of(b, model);
        b.fields.iter().any(|f| {
            matches!(f.source, Source::Column(_))
                && event
                    .and_then(|e| e.fields.iter().find(|p| p.key == f.key))
                    .is_some_and(|p| p.nullable)
        })
    });
    let (row_from_old, old_binding) = if needs_old {
        (quote!(let mut row = old.clone();), quote!(let old =))
    } else {
        (TokenStream::new(), quote!(let mut row =))
    };
    let update_doc = format!(
        " Writes the fields of `patch` that are set over the `{}` with `id` and returns the \
         row as it is now; `NotFound` if there is none.{}",
        entity.name,
        doc_publishes(Write::Update)
    );
    let live = soft_delete;

    // delete
    let delete_extras = signature_extras(Write::Delete);
    let delete_binding = binding(Write::Delete);
    let delete_publish = publish(entity, delete_binding, model);
    let delete_body = if soft_delete {
        quote! {
            let now = #now_expr;
            let mut row = ::herald::Rows::<#name>::get_for_update::<B>(tx, id, true).await?;
            row.deleted_at = ::core::option::Option::Some(now);
            #touch
            ::herald::Rows::<#name>::update::<B>(tx, &row).await?;
            #delete_publish
            ::core::result::Result::Ok(())
        }
    } else if delete_binding.is_some() {
        quote! {
            let row = ::herald::Rows::<#name>::get_for_update::<B>(tx, id, false).await?;
            ::herald::Rows::<#name>::delete::<B>(tx, id).await?;
            #delete_publish
            ::core::result::Result::Ok(())
        }
    } else {
        quote! {
            if ::herald::Rows::<#name>::delete::<B>(tx, id).await? {
                ::core::result::Result::Ok(())
            } else {
                ::core::result::Result::Err(::herald::RepositoryError::not_found::<#name>(id))
            }
        }
    };
    let delete_doc = format!(
        " {} the `{}` with `id`; `NotFound` if there is none.{}",
        if soft_delete {
            "Soft-deletes (sets `deleted_at` of)"
        } else {
            "Deletes"
        },
        entity.name,
        doc_publishes(Write::Delete)
    );

    quote! {
        #[doc = #insert_doc]
        pub async fn insert(
            &self,
            tx: &mut <B as ::herald::Backend>::Transaction<'_>,
            new: #new,
            #insert_extras
        ) -> ::core::result::Result<#name, ::herald::RepositoryError> {
            #now
            let row = #name { #(#inits),* };
            ::herald::Rows::<#name>::insert::<B>(tx, &row).await?;
            #insert_publish
            ::core::result::Result::Ok(row)
        }

        #[doc = #update_doc]
        pub async fn update(
            &self,
            tx: &mut <B as ::herald::Backend>::Transaction<'_>,
            id: ::herald::uuid::Uuid,
            patch: #patch,
            #update_extras
        ) -> ::core::result::Result<#name, ::herald::RepositoryError> {
            #now
            #old_binding ::herald::Rows::<#name>::get_for_update::<B>(tx, id, #live).await?;
            #row_from_old
            #(#patches)*
            #touch
            ::herald::Rows::<#name>::update::<B>(tx, &row).await?;
            #update_publish
            ::core::result::Result::Ok(row)
        }

        #[doc = #delete_doc]
        pub async fn delete(
            &self,
            tx: &mut <B as ::herald::Backend>::Transaction<'_>,
            id: ::herald::uuid::Uuid,
            #delete_extras
        ) -> ::core::result::Result<(), ::herald::RepositoryError> {
            #delete_body
        }
    }
}
