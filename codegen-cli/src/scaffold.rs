//! `codegen-cli new event|entity`: files from the templates in `codegen-cli/templates/`, embedded in the binary so an installed `codegen-cli` needs no checkout.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use herald_vocabulary::Direction;
use herald_vocabulary::naming::{is_snake_case, to_snake_case};

const EVENT_TEMPLATE: &str = include_str!("../templates/event.yaml");
const ENTITY_TEMPLATE: &str = include_str!("../templates/entity.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` is not snake_case; try `{suggestion}`")]
    NotSnakeCase { name: String, suggestion: String },
    #[error("a change event needs an aggregate: add `--aggregate <entity>`")]
    MissingAggregate,
    #[error("`--aggregate` goes with `--direction change` only")]
    MisplacedAggregate,
    #[error("{} already exists; Herald never overwrites a declaration", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Writes `dir/<type>.yaml` for a new event and returns its path.
pub fn new_event(
    dir: &Path,
    event_type: &str,
    direction: Direction,
    aggregate: Option<&str>,
) -> Result<PathBuf, ScaffoldError> {
    check_name(event_type)?;
    let aggregate_line = match (direction, aggregate) {
        (Direction::Change, None) => return Err(ScaffoldError::MissingAggregate),
        (Direction::Change, Some(aggregate)) => {
            check_name(aggregate)?;
            format!("aggregate: {aggregate}\n")
        }
        (_, Some(_)) => return Err(ScaffoldError::MisplacedAggregate),
        (_, None) => String::new(),
    };
    let id_field = aggregate.map_or_else(|| "id".to_owned(), |a| format!("{a}_id"));
    let contents = EVENT_TEMPLATE
        .replace("{{type}}", event_type)
        .replace("{{direction}}", direction.as_str())
        .replace("{{aggregate_line}}", &aggregate_line)
        .replace("{{id_field}}", &id_field);
    create(&dir.join(format!("{event_type}.yaml")), &contents)
}

/// Writes `dir/<name>.yaml` for a new entity and returns its path.
pub fn new_entity(dir: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    create(
        &dir.join(format!("{name}.yaml")),
        &ENTITY_TEMPLATE.replace("{{name}}", name),
    )
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    if is_snake_case(name) {
        Ok(())
    } else {
        Err(ScaffoldError::NotSnakeCase {
            name: name.to_owned(),
            suggestion: to_snake_case(name),
        })
    }
}

/// Creates the file, refusing to replace one (also when another process races us to it).
fn create(path: &Path, contents: &str) -> Result<PathBuf, ScaffoldError> {
    let io_error = |source| ScaffoldError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => ScaffoldError::Exists(path.to_owned()),
            _ => io_error(err),
        })?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    Ok(path.to_owned())
}
