//! The `contact` entity as an event-sourced aggregate: its state is the fold of its change
//! events, its commands are decided without I/O, and archiving enqueues a job.

use herald::chrono::{DateTime, Utc};
use herald::uuid::Uuid;
use herald::{Decide, JobQueue};
use serde::{Deserialize, Serialize};

use crate::generated::ContactEvent;
use crate::generated::events::{ContactArchived, ContactCreated, ContactUpdated, ContactUpdatedV1};
use crate::jobs::{ArchivedContact, NotifyContactArchived};

/// Version 1 of `contact_updated` (kept in `events/contact_updated.v1.yaml`) had no `tags`: an
/// update stored before version 2 changed none. Every bus of the registry applies it, to
/// subscribers, aggregate loads and projections alike.
impl herald::UpcastFrom<ContactUpdatedV1> for ContactUpdated {
    fn upcast_from(old: ContactUpdatedV1) -> Self {
        let ContactUpdatedV1 {
            contact_id,
            email,
            name,
            updated_by,
        } = old;
        Self {
            contact_id,
            email,
            name,
            tags: Vec::new(),
            updated_by,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, herald::Aggregate)]
#[aggregate(entity = "contact", id = contact_id)]
pub struct Contact {
    pub contact_id: Uuid,
    pub exists: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub archived: bool,
    pub updates: u64,
}

/// What can be asked of a contact. Everything from the outside world (ids, the time, the acting
/// user) is in the command, so that deciding is pure.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactCommand {
    Create {
        contact_id: Uuid,
        account_id: Option<Uuid>,
        created_by: Uuid,
    },
    Update {
        email: Option<String>,
        name: Option<String>,
        tags: Vec<String>,
        updated_by: Uuid,
    },
    Archive {
        at: DateTime<Utc>,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("contact {0} already exists")]
    AlreadyExists(Uuid),
    #[error("no such contact")]
    NotFound,
    #[error("contact {0} is archived and cannot change")]
    Archived(Uuid),
    #[error("an update must change something")]
    EmptyUpdate,
}

impl Decide for Contact {
    type Command = ContactCommand;
    type Error = ContactError;

    fn decide(
        &self,
        command: ContactCommand,
        jobs: &mut JobQueue,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        match command {
            ContactCommand::Create {
                contact_id,
                account_id,
                created_by,
            } => {
                if self.exists {
                    return Err(ContactError::AlreadyExists(self.contact_id));
                }
                Ok(vec![
                    ContactCreated {
                        contact_id,
                        account_id,
                        created_by,
                    }
                    .into(),
                ])
            }
            ContactCommand::Update {
                email,
                name,
                tags,
                updated_by,
            } => {
                self.must_be_live()?;
                if email.is_none() && name.is_none() && tags.is_empty() {
                    return Err(ContactError::EmptyUpdate);
                }
                Ok(vec![
                    ContactUpdated {
                        contact_id: self.contact_id,
                        email,
                        name,
                        tags,
                        updated_by,
                    }
                    .into(),
                ])
            }
            ContactCommand::Archive { at, reason } => {
                self.must_be_live()?;
                // The side effect (telling the owner) is a job, enqueued with the event.
                jobs.start::<NotifyContactArchived>(ArchivedContact {
                    contact_id: self.contact_id,
                });
                Ok(vec![
                    ContactArchived {
                        contact_id: self.contact_id,
                        archived_at: at,
                        reason,
                    }
                    .into(),
                ])
            }
        }
    }

    fn apply(&mut self, event: &ContactEvent) {
        match event {
            ContactEvent::ContactCreated(created) => {
                self.contact_id = created.contact_id;
                self.exists = true;
            }
            ContactEvent::ContactUpdated(updated) => {
                if let Some(email) = &updated.email {
                    self.email = Some(email.clone());
                }
                if let Some(name) = &updated.name {
                    self.name = Some(name.clone());
                }
                self.tags.extend(updated.tags.iter().cloned());
                self.updates += 1;
            }
            ContactEvent::ContactArchived(_) => self.archived = true,
        }
    }
}

impl Contact {
    fn must_be_live(&self) -> Result<(), ContactError> {
        if !self.exists {
            return Err(ContactError::NotFound);
        }
        if self.archived {
            return Err(ContactError::Archived(self.contact_id));
        }
        Ok(())
    }
}
