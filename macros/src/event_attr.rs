//! `#[event(...)]`: reading it, and the rules between its keys.

use herald_vocabulary::naming::to_snake_case;
use herald_vocabulary::pool::{EventPoolError, check_event_pool};
use herald_vocabulary::{Backoff, Direction, MaxAttempts, Tier};
use syn::{DeriveInput, Path};

use crate::attr::{self, Entries, Entry, Errors, Slot, Value};
use crate::words::with_article;

const KEYS: &[&str] = &[
    "type",
    "version",
    "tier",
    "direction",
    "aggregate",
    "source",
    "destination",
    "pool",
    "retry",
    "description",
];

const RETRY_KEYS: &[&str] = &["attempts", "backoff"];

/// What the `#[event(...)]` attributes say, as far as they could be read.
#[derive(Default)]
pub struct EventAttrs {
    /// The first `event` path, where errors about missing keys point; `None` without attribute.
    pub path: Option<Path>,
    /// An attribute did not parse to its end: missing keys are not reported.
    incomplete: bool,
    pub event_type: Slot<String>,
    pub version: Slot<u32>,
    pub tier: Slot<Tier>,
    pub direction: Slot<Direction>,
    pub aggregate: Slot<String>,
    pub source: Slot<String>,
    pub destination: Slot<String>,
    pub pool: Slot<String>,
    pub retry: Slot<()>,
    /// Counted as in YAML: every attempt, the first one included.
    pub attempts: Slot<MaxAttempts>,
    pub backoff: Slot<Backoff>,
    pub description: Slot<String>,
}

impl EventAttrs {
    /// Reads the attributes of `input` and checks their rules, pushing every problem to `errors`.
    pub fn from_syn(input: &DeriveInput, errors: &mut Errors) -> Self {
        let entries = Entries::parse(&input.attrs, "event", errors);
        let mut attrs = EventAttrs {
            path: entries.first.clone(),
            incomplete: entries.incomplete,
            ..EventAttrs::default()
        };
        if entries.is_absent() {
            let suggestion = to_snake_case(&input.ident.to_string());
            errors.at(
                &input.ident,
                format_args!(
                    "missing `#[event(...)]` attribute: add `#[event(type = \"{suggestion}\", \
                     direction = \"...\")]` to the struct"
                ),
            );
            return attrs;
        }
        for entry in &entries.entries {
            attrs.read(entry, errors);
        }
        attrs.check(input, errors);
        attrs
    }

    fn read(&mut self, entry: &Entry, errors: &mut Errors) {
        match entry.name().as_str() {
            "type" => self.event_type.fill(entry, errors, |entry, errors| {
                attr::snake_case(entry, errors, "event type", "type = \"contact_created\"")
            }),
            "version" => self.version.fill(entry, errors, |entry, errors| {
                let (version, lit) = attr::integer(entry, errors, "version = 2")?;
                if version == 0 {
                    errors.at(lit, "versions count from 1: write `version = 1` or more");
                    return None;
                }
                Some(version)
            }),
            "tier" => self.tier.fill(entry, errors, attr::keyword),
            "direction" => self.direction.fill(entry, errors, attr::keyword),
            "aggregate" => self.aggregate.fill(entry, errors, |entry, errors| {
                Some(attr::string(entry, errors, "aggregate = \"contact\"")?.value())
            }),
            "source" => self.source.fill(entry, errors, |entry, errors| {
                Some(attr::string(entry, errors, "source = \"stripe\"")?.value())
            }),
            "destination" => self.destination.fill(entry, errors, |entry, errors| {
                Some(attr::string(entry, errors, "destination = \"crm\"")?.value())
            }),
            "pool" => self.pool.fill(entry, errors, |entry, errors| {
                attr::snake_case(entry, errors, "pool", "pool = \"events_change\"")
            }),
            "description" => self.description.fill(entry, errors, |entry, errors| {
                Some(attr::string(entry, errors, "description = \"...\"")?.value())
            }),
            "retry" => {
                let (attempts, backoff) = (&mut self.attempts, &mut self.backoff);
                self.retry.fill(entry, errors, |entry, errors| {
                    let Value::List(inner) = &entry.value else {
                        errors.at(
                            entry,
                            "expected a list: write `retry(attempts = 5, backoff = \
                             \"exponential\")`",
                        );
                        return None;
                    };
                    for entry in inner {
                        read_retry(entry, attempts, backoff, errors);
                    }
                    Some(())
                });
            }
            _ => errors.push(attr::unknown_key(entry, "#[event(...)]", KEYS)),
        }
    }

    /// The tier; `None` when `tier` has a bad value.
    pub fn tier(&self) -> Option<Tier> {
        match (&self.tier.value, self.tier.is_present()) {
            (Some(tier), _) => Some(*tier),
            (None, true) => None,
            (None, false) => Some(Tier::Domain),
        }
    }

    /// The rules between keys. A rule that needs a value that is missing or bad is skipped:
    /// that value has its own error already.
    fn check(&self, input: &DeriveInput, errors: &mut Errors) {
        // Where errors about missing keys point.
        let at = self.path.clone();
        let report_missing = !self.incomplete;

        if report_missing && !self.event_type.is_present() {
            let suggestion = to_snake_case(&input.ident.to_string());
            errors.at(
                &at,
                format_args!("missing `type`: add `type = \"{suggestion}\"` (any snake_case name)"),
            );
        }

        match self.tier() {
            Some(Tier::Audit) => {
                for ((present, entry), message) in [
                    (
                        (self.direction.is_present(), self.direction.entry()),
                        "audit events have no direction; remove `direction`",
                    ),
                    (
                        (self.pool.is_present(), self.pool.entry()),
                        "audit events are not delivered through a pool; remove `pool`",
                    ),
                    (
                        (self.source.is_present(), self.source.entry()),
                        "`source` is only allowed on inbound events and this is an audit \
                         event; remove `source`",
                    ),
                    (
                        (self.destination.is_present(), self.destination.entry()),
                        "`destination` is only allowed on outbound events and this is an \
                         audit event; remove `destination`",
                    ),
                ] {
                    if present {
                        errors.at(entry, message);
                    }
                }
            }
            Some(Tier::Domain) if report_missing && !self.direction.is_present() => {
                errors.at(
                    &at,
                    "missing `direction`: a domain event needs `direction = \"inbound\"`, \
                     `\"change\"` or `\"outbound\"` (or `tier = \"audit\"` for an audit event)",
                );
            }
            Some(Tier::Domain) | None => {}
        }

        // The rules of a direction are for domain events only (with a bad `tier`, whether
        // this is one is unknown).
        let (Some(Tier::Domain), Some(direction)) = (self.tier(), self.direction.value) else {
            return;
        };
        let a_name = with_article(direction);
        if direction == Direction::Change && report_missing && !self.aggregate.is_present() {
            errors.at(
                self.direction.entry(),
                "change events need an aggregate: add `aggregate = \"...\"` naming the entity \
                 whose state changed",
            );
        }
        if direction != Direction::Inbound && self.source.is_present() {
            errors.at(
                self.source.entry(),
                format_args!(
                    "`source` is only allowed on inbound events and this is {a_name} event; \
                     remove `source`"
                ),
            );
        }
        if direction != Direction::Outbound && self.destination.is_present() {
            errors.at(
                self.destination.entry(),
                format_args!(
                    "`destination` is only allowed on outbound events and this is {a_name} \
                     event; remove `destination`"
                ),
            );
        }
        if let Some(pool) = &self.pool.value {
            let default = direction.default_pool();
            if let Err(error) = check_event_pool(direction, pool) {
                let category = match error {
                    EventPoolError::JobPool => format!(
                        "\"{pool}\" is not an event pool: `events_*` pools carry events, and \
                         job pools are for jobs"
                    ),
                    // `pool` is snake_case already (checked when it was read).
                    EventPoolError::OtherDirection | EventPoolError::NotSnakeCase => {
                        format!("\"{pool}\" is not {a_name} pool")
                    }
                };
                errors.at(
                    self.pool.value_tokens(),
                    format_args!(
                        "{category}; {a_name} event's pool is \"{default}\" or starts with \
                         \"{default}_\" (e.g. \"{default}_bulk\")"
                    ),
                );
            }
        }
    }
}

fn read_retry(
    entry: &Entry,
    attempts: &mut Slot<MaxAttempts>,
    backoff: &mut Slot<Backoff>,
    errors: &mut Errors,
) {
    match entry.name().as_str() {
        "attempts" => attempts.fill(entry, errors, |entry, errors| {
            let (attempts, lit) = attr::integer(entry, errors, "attempts = 5")?;
            let attempts = MaxAttempts::total(attempts);
            if attempts.is_none() {
                errors.at(
                    lit,
                    "`attempts` counts the first delivery too, so it is at least 1: write \
                     `attempts = 1` for no retries",
                );
            }
            attempts
        }),
        "backoff" => backoff.fill(entry, errors, attr::keyword),
        _ => errors.push(attr::unknown_key(entry, "retry(...)", RETRY_KEYS)),
    }
}
