/// A column of an entity, as declared in `entities/*.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    pub name: &'static str,
    /// The YAML field type: `string`, `integer`, `decimal`, `boolean`, `uuid`, `date`,
    /// `datetime`, `json` or `enum`.
    pub field_type: &'static str,
    /// Must be present on the wire.
    pub required: bool,
    /// May be `null`.
    pub nullable: bool,
    pub max_length: Option<u32>,
    pub index: bool,
}

/// Everything the runtime knows about an entity, fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityMeta {
    /// The `entity` of the YAML file, e.g. `contact`; also the aggregate type of its events.
    pub name: &'static str,
    pub fields: &'static [FieldMeta],
    /// The change events this entity declares it emits.
    pub emits: &'static [&'static str],
    pub description: Option<&'static str>,
}

/// A typed entity. Implemented by `#[derive(herald::Entity)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Herald entity",
    note = "declare it in `entities/*.yaml` and regenerate, or add `#[derive(herald::Entity)]`"
)]
pub trait Entity {
    const META: EntityMeta;
}
