//! The relay to NATS JetStream (feature `nats`): committed events out to other services, and
//! JetStream messages in as inbound events, so that Herald's guarantees reach past one
//! database.
//!
//! - [`Relay`] is a drain subscriber that publishes each event it is given to a JetStream
//!   stream, with the event id as `Nats-Msg-Id`, and succeeds once JetStream acknowledged it.
//!   Retries, dead letters, re-drive and per-aggregate order are the drain's: the drain delivers
//!   an aggregate's next event only after this one's delivery completed, so the stream holds
//!   each aggregate's events in order, and JetStream's duplicate window stores an event
//!   published twice (a retry after a lost ack) once.
//! - [`Inbound`] reads a durable pull consumer and publishes each message as an `inbound` event
//!   of the registry, in a transaction of its own, with an id derived from the message, so a
//!   message delivered again stores nothing new; what cannot be stored goes to a dead-letter
//!   subject with its reason.
//!
//! The message format (subject, [`headers`], body = the payload JSON as stored) is a contract
//! for consumers in any language: see the README's "Relay" section.

mod filter;
pub mod headers;
mod inbound;
mod outbound;
mod subject;

pub use filter::EventFilter;
pub use inbound::{Inbound, InboundError, InboundHandle, InboundStats};
pub use outbound::{Relay, RelayError, RelayStats};
pub use subject::{SubjectTemplate, SubjectTemplateError};

/// The NATS client the relay is built on, re-exported so that applications connect with the
/// version Herald links.
pub use async_nats;
