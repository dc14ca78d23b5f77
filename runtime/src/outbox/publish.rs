//! What publishing stamps on an event, and the one place where events and the runs they
//! trigger become rows: [`Outbox::insert`].

use std::fmt::Display;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::EventMeta;
use crate::event::envelope::Envelope;
use crate::event::registry::PayloadError;
use crate::store::{NewEvent, StoreError};
use crate::trace::TraceContext;

/// Why an event was not published. Nothing was written when publishing fails.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An untyped payload ([`crate::EventBus::publish_json`]) names no event type or does not
    /// match its schema.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The payload does not serialize to JSON.
    #[error("payload of `{event_type}` cannot be serialized: {source}")]
    Serialize {
        /// The event type.
        event_type: &'static str,
        /// What `serde_json` reported.
        #[source]
        source: serde_json::Error,
    },
    /// A multi-tenant store got an event with no tenant and no explicit
    /// [`Publish::without_tenant`].
    #[error(
        "`{event_type}` was published without a tenant, but this store is multi-tenant: \
         set `.tenant(..)`, or `.without_tenant()` for an event that belongs to no tenant"
    )]
    TenantRequired {
        /// The event type.
        event_type: &'static str,
    },
    /// The event type belongs to an aggregate, but no aggregate id was given.
    #[error(
        "`{event_type}` belongs to the aggregate `{aggregate}` but was published without an \
         aggregate id: use `publish(tx, id, payload)` or `Publish::aggregate_id`"
    )]
    MissingAggregateId {
        /// The event type.
        event_type: &'static str,
        /// The aggregate its YAML names.
        aggregate: &'static str,
    },
    /// An aggregate id was given to an event type that has no aggregate.
    #[error(
        "`{event_type}` declares no `aggregate:` in its YAML, so it cannot carry an aggregate \
         id: publish it with `publish_with(&mut tx, Publish::new(payload))`, or add the \
         aggregate to the event"
    )]
    UnexpectedAggregateId {
        /// The event type.
        event_type: &'static str,
    },
    /// An untyped payload of an older version could not be brought to the current one.
    #[error("payload of `{event_type}`: {source}")]
    Upcast {
        /// The event type.
        event_type: &'static str,
        /// Why.
        #[source]
        source: crate::event::upcast::UpcastError,
    },
    /// An untyped payload claims a version newer than the one this code reads.
    #[error(
        "payload of `{event_type}` is version {given}, newer than the version {current} this code \
         reads: deploy the release that declares it first"
    )]
    NewerVersion {
        /// The event type.
        event_type: &'static str,
        /// The version given.
        given: u32,
        /// The version this code reads.
        current: u32,
    },
    /// An untyped payload is not a JSON object.
    #[error(
        "payload of `{event_type}` is not a JSON object: event payloads are objects of named \
         fields (an array would be read as the fields in declaration order)"
    )]
    NotAnObject {
        /// The event type.
        event_type: &'static str,
    },
    /// A string in the payload holds a NUL character.
    #[error(
        "payload of `{event_type}` contains a NUL character (\\u0000) in a string, which \
         PostgreSQL cannot store: remove it or encode the value (base64, hex)"
    )]
    NulCharacter {
        /// The event type.
        event_type: &'static str,
    },
    /// The payload nests deeper than a subscriber's decoder accepts.
    #[error(
        "payload of `{event_type}` nests deeper than {limit} levels, more than a subscriber can \
         decode: flatten it or store the document elsewhere and publish a reference"
    )]
    TooDeep {
        /// The event type.
        event_type: &'static str,
        /// The deepest nesting accepted.
        limit: usize,
    },
    /// A job's input could not be built from the event (its `From<&Event>` output does not
    /// serialize, or the payload does not read back).
    #[error("the input of job `{job}`, triggered by `{event_type}`, cannot be built: {source}")]
    TriggerInput {
        /// The triggering event's type.
        event_type: &'static str,
        /// The job it triggers.
        job: &'static str,
        /// What `serde_json` reported.
        #[source]
        source: serde_json::Error,
    },
}

/// What a writer said about the tenant of what it writes: nothing (an error on a multi-tenant
/// store), explicitly none, or one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum TenantChoice {
    #[default]
    Unset,
    None,
    Some(String),
}

impl TenantChoice {
    /// The tenant to store, or `None` when the writer said nothing on a multi-tenant store.
    pub(crate) fn resolve(self, multi_tenant: bool) -> Option<Option<String>> {
        match self {
            TenantChoice::Unset if multi_tenant => None,
            TenantChoice::Unset | TenantChoice::None => Some(None),
            TenantChoice::Some(tenant) => Some(Some(tenant)),
        }
    }
}

/// One event to publish, with everything that may be stamped on it besides the payload.
#[derive(Debug, Clone)]
#[must_use = "a Publish does nothing until it is passed to a bus"]
pub struct Publish<P> {
    pub(crate) payload: P,
    id: Option<Uuid>,
    aggregate_id: Option<String>,
    tenant: TenantChoice,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    occurred_at: Option<DateTime<Utc>>,
    pub(crate) payload_version: Option<u32>,
    trace: Option<TraceContext>,
}

impl<P> Publish<P> {
    /// The event `payload` with defaults: a fresh id, the store's time, and no aggregate,
    /// tenant, correlation or causation.
    pub fn new(payload: P) -> Self {
        Self {
            payload,
            id: None,
            aggregate_id: None,
            tenant: TenantChoice::Unset,
            correlation_id: None,
            causation_id: None,
            occurred_at: None,
            payload_version: None,
            trace: None,
        }
    }

    /// The event id, which is also its idempotency key: publishing the same id again stores
    /// nothing. Defaults to a fresh UUID v7 (time-ordered).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// The aggregate the event concerns; required exactly when its type declares an aggregate.
    pub fn aggregate_id(mut self, id: impl Display) -> Self {
        self.aggregate_id = Some(id.to_string());
        self
    }

    /// The tenant the event belongs to (required on a multi-tenant store, unless
    /// [`Publish::without_tenant`]).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = TenantChoice::Some(tenant.into());
        self
    }

    /// Says explicitly that the event belongs to no tenant, which a multi-tenant store accepts.
    pub fn without_tenant(mut self) -> Self {
        self.tenant = TenantChoice::None;
        self
    }

    /// The id shared by a chain of events caused by one another (see [`Publish::caused_by`]).
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The id of the event that caused this one (see [`Publish::caused_by`]).
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Marks the event as caused by `cause`: causation is the cause's id, correlation is
    /// carried over (or starts at the cause), and so is the tenant unless one is set.
    pub fn caused_by<E>(mut self, cause: &Envelope<E>) -> Self {
        self.causation_id = Some(cause.id);
        self.correlation_id = Some(cause.correlation_id.unwrap_or(cause.id));
        if self.tenant == TenantChoice::Unset {
            self.tenant = match &cause.tenant_id {
                Some(tenant) => TenantChoice::Some(tenant.clone()),
                None => TenantChoice::None,
            };
        }
        self
    }

    /// The version the untyped payload was written at, when it is older than its type's
    /// current one (a message from a service on the previous release): `publish_json` brings
    /// it to the current version through the bus's upcasters before checking it.
    pub fn payload_version(mut self, version: u32) -> Self {
        self.payload_version = Some(version);
        self
    }

    /// When the fact happened, if not now.
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(at);
        self
    }

    /// The trace the event belongs to, when it is not the current span's: a context that
    /// arrived with a message from elsewhere (its `traceparent` header), say. Its deliveries'
    /// spans become children of it. By default the current span's context is stored (feature
    /// `opentelemetry`).
    pub fn trace_context(mut self, context: TraceContext) -> Self {
        self.trace = Some(context);
        self
    }
    /// The row this event becomes: stamped with the event type's metadata, checked against
    /// the rules of the store (tenancy) and of the type (aggregate id).
    pub(crate) fn into_row(
        self,
        meta: &EventMeta,
        multi_tenant: bool,
        now: DateTime<Utc>,
        serialize: impl FnOnce(&P) -> Result<String, PublishError>,
    ) -> Result<NewEvent, PublishError> {
        let event_type = meta.event_type;
        let Some(tenant_id) = self.tenant.resolve(multi_tenant) else {
            return Err(PublishError::TenantRequired { event_type });
        };
        match (meta.aggregate, &self.aggregate_id) {
            (Some(aggregate), None) => {
                return Err(PublishError::MissingAggregateId {
                    event_type,
                    aggregate,
                });
            }
            (None, Some(_)) => return Err(PublishError::UnexpectedAggregateId { event_type }),
            _ => {}
        }
        Ok(NewEvent {
            id: self.id.unwrap_or_else(Uuid::now_v7),
            event_type,
            version: meta.version,
            tier: meta.tier().as_str(),
            direction: meta.direction().map(|direction| direction.as_str()),
            pool: meta.pool(),
            aggregate_type: meta.aggregate,
            aggregate_id: self.aggregate_id,
            tenant_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload: serialize(&self.payload)?,
            occurred_at: self.occurred_at.unwrap_or(now),
            aggregate_sequence: None,
            // The current span's, if none was given, is taken inside the publish span.
            trace: self.trace,
        })
    }
}
