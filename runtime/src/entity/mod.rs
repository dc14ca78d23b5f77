//! Entities: their metadata, and the rows of their tables that generated repositories read
//! and write.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use rows::{Page, RepositoryBackend, RepositoryError, Rows, Select};

/// A column of an entity, as declared in `entities/*.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// The field's name, as in the YAML and the generated struct.
    pub name: &'static str,
    /// The YAML field type: `string`, `integer`, `decimal`, `boolean`, `uuid`, `date`,
    /// `datetime`, `json` or `enum`.
    pub field_type: &'static str,
    /// Must be present on the wire.
    pub required: bool,
    /// May be `null`.
    pub nullable: bool,
    /// For a `string` field: the most characters it may hold.
    pub max_length: Option<u32>,
    /// Declared `index: true`: the generated schema indexes the column.
    pub index: bool,
}

/// Everything the runtime knows about an entity, fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityMeta {
    /// The `entity` of the YAML file, e.g. `contact`; also the aggregate type of its events.
    pub name: &'static str,
    /// The plural of the name (`plural` of the YAML), e.g. `opportunities`.
    pub plural: &'static str,
    /// The SQL table that holds the entity (`table` of the YAML; by default the plural).
    pub table: &'static str,
    /// The entity's family (`pattern` of the YAML: `Synced`, `Activity`, …), kept as
    /// metadata.
    pub pattern: Option<&'static str>,
    /// Whether the application writes the entity through its repository (`generate: {
    /// writes }`); a read-only entity's repository has no write methods.
    pub writes: bool,
    /// One per field of the entity struct, in order.
    pub fields: &'static [FieldMeta],
    /// The change events this entity declares it emits.
    pub emits: &'static [&'static str],
    /// The YAML's `description`, if any.
    pub description: Option<&'static str>,
}

/// A typed entity. Implemented by `#[derive(herald::Entity)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Herald entity",
    note = "declare it in `entities/*.yaml` and regenerate, or add `#[derive(herald::Entity)]`"
)]
pub trait Entity {
    /// The entity's metadata, from its YAML (through `#[derive(herald::Entity)]`).
    const META: EntityMeta;
}
