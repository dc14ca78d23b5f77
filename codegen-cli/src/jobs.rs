//! The jobs of an application, read from the `#[job_handler]` attributes of its Rust sources,
//! for the event catalog's flow diagram (events → jobs → the events those jobs publish).
//!
//! The attribute is the one source of truth for what triggers a job: reading it here, rather
//! than asking for the same list again in YAML, means the catalog cannot drift from the code.
//! The reading is syntactic (`syn`, no type checking), so it follows the macro's rules where
//! they are plain from the tokens:
//! - `triggers = [ContactCreated, events::AccountCreated]`: the last segment of each path is
//!   an event's payload struct, matched against the declared events;
//! - `name = "..."` (else the function's name) and `pool = "..."` (else the default pool);
//! - `retries = N` / `max_attempts = N`.
//!
//! What a job publishes is inferred: an event's payload struct built in the handler's body
//! (`WebhookOutboundContactSync { .. }` or `WebhookOutboundContactSync::new(..)`), or in the body
//! of a function of the same file that the handler calls, directly or not. An event built in
//! another file, in a method, or inside a macro call (`vec![..]`) is not seen. Building the
//! payload is taken to mean publishing it, which is what a job builds one for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use herald_vocabulary::naming::closest;
use herald_vocabulary::{DEFAULT_JOB_POOL, MaxAttempts, RetryPolicy};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{Expr, ExprLit, Item, ItemFn, Lit, MetaNameValue, Token};

use crate::model::Model;

/// A Rust source file to look for jobs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustSource {
    pub path: PathBuf,
    pub contents: String,
}

/// A `#[job_handler]` function as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `name = "..."`, else the function's name.
    pub name: String,
    pub pool: String,
    /// Every attempt, the first one included.
    pub attempts: u32,
    /// The event types whose publishing enqueues the job, sorted.
    pub triggers: Vec<String>,
    /// The event types the job builds a payload of (see the module's documentation), sorted.
    pub publishes: Vec<String>,
    pub location: Location,
}

/// Where a job or a problem is, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl Location {
    fn of(path: &Path, span: proc_macro2::Span) -> Self {
        let start = span.start();
        Self {
            path: path.to_owned(),
            line: start.line,
            column: start.column + 1,
        }
    }
}

/// Why the jobs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A `jobs:` entry names nothing on disk.
    #[error(
        "`jobs:` names {}, which does not exist: list the Rust files or directories that hold \
         the `#[job_handler]` functions (e.g. `jobs: [src/jobs.rs]`)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The file is not Rust that `syn` can parse (it would not compile either).
    #[error("{location}: cannot parse this Rust file: {message}")]
    Syntax { location: Location, message: String },
    /// The attribute's arguments are not `key = value` pairs.
    #[error(
        "{location}: cannot read the `#[job_handler]` arguments of `{function}`: {message}; \
         write them as `key = value` pairs, e.g. `#[job_handler(triggers = [ContactCreated])]`"
    )]
    Attribute {
        location: Location,
        function: String,
        message: String,
    },
    /// A trigger that names no declared event.
    #[error(
        "{location}: job `{job}` is triggered by `{trigger}`, which is the payload struct of no \
         event in events/ or entities/{hint}"
    )]
    UnknownTrigger {
        location: Location,
        job: String,
        trigger: String,
        hint: String,
    },
}

/// Reads every `.rs` file that `paths` name: a file itself, a directory all the `.rs` files
/// under it. Sorted, so that jobs are found in the same order on every machine.
pub fn read_rust_sources(paths: &[PathBuf]) -> Result<Vec<RustSource>, JobsError> {
    let mut files = BTreeSet::new();
    for path in paths {
        if path.is_file() {
            files.insert(path.clone());
        } else if path.is_dir() {
            collect_rust_files(path, &mut files)?;
        } else {
            return Err(JobsError::Missing { path: path.clone() });
        }
    }
    files
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(contents) => Ok(RustSource { path, contents }),
            Err(source) => Err(JobsError::Io { path, source }),
        })
        .collect()
}

fn collect_rust_files(dir: &Path, files: &mut BTreeSet<PathBuf>) -> Result<(), JobsError> {
    let io = |source| JobsError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_rust_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.insert(path);
        }
    }
    Ok(())
}

/// The jobs of `sources`, sorted by name, with their triggers and published events resolved
/// against the model's events. Every problem of every file is returned at once.
pub fn find_jobs(model: &Model, sources: &[RustSource]) -> Result<Vec<Job>, Vec<JobsError>> {
    let events_by_struct: BTreeMap<&str, &str> = model
        .events
        .iter()
        .map(|e| (e.struct_name.as_str(), e.name.as_str()))
        .collect();
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        let file = match syn::parse_file(&source.contents) {
            Ok(file) => file,
            Err(error) => {
                errors.push(JobsError::Syntax {
                    location: Location::of(&source.path, error.span()),
                    message: error.to_string(),
                });
                continue;
            }
        };
        let mut functions = BTreeMap::new();
        collect_functions(&file.items, &mut functions);
        for function in functions.values().flatten() {
            let Some(attribute) = function.attrs.iter().find(|a| {
                a.path()
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "job_handler")
            }) else {
                continue;
            };
            let reader = JobReader {
                path: &source.path,
                function,
                events_by_struct: &events_by_struct,
                functions: &functions,
            };
            match reader.read(attribute) {
                Ok(job) => jobs.push(job),
                Err(mut problems) => errors.append(&mut problems),
            }
        }
    }
    if errors.is_empty() {
        jobs.sort_by(|a, b| (&a.name, &a.location).cmp(&(&b.name, &b.location)));
        Ok(jobs)
    } else {
        Err(errors)
    }
}

/// The free functions of a file by name, those of inline modules included, test modules left
/// out (a test builds events that no job publishes).
fn collect_functions<'a>(items: &'a [Item], out: &mut BTreeMap<String, Vec<&'a ItemFn>>) {
    for item in items {
        match item {
            Item::Fn(function) => out
                .entry(function.sig.ident.unraw().to_string())
                .or_default()
                .push(function),
            Item::Mod(module) if !is_cfg_test(&module.attrs) => {
                if let Some((_, items)) = &module.content {
                    collect_functions(items, out);
                }
            }
            _ => {}
        }
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Path>()
                .is_ok_and(|path| path.is_ident("test"))
    })
}

struct JobReader<'a> {
    path: &'a Path,
    function: &'a ItemFn,
    events_by_struct: &'a BTreeMap<&'a str, &'a str>,
    functions: &'a BTreeMap<String, Vec<&'a ItemFn>>,
}

impl JobReader<'_> {
    fn read(&self, attribute: &syn::Attribute) -> Result<Job, Vec<JobsError>> {
        let function_name = self.function.sig.ident.unraw().to_string();
        let arguments = match &attribute.meta {
            // `#[job_handler]` alone: every key takes its default.
            syn::Meta::Path(_) => Punctuated::new(),
            _ => attribute
                .parse_args_with(Punctuated::<MetaNameValue, Token![,]>::parse_terminated)
                .map_err(|error| {
                    vec![JobsError::Attribute {
                        location: Location::of(self.path, error.span()),
                        function: function_name.clone(),
                        message: error.to_string(),
                    }]
                })?,
        };
        let mut job = Job {
            name: function_name.clone(),
            pool: DEFAULT_JOB_POOL.to_owned(),
            attempts: RetryPolicy::JOB_DEFAULT.attempts,
            triggers: Vec::new(),
            publishes: Vec::new(),
            location: Location::of(self.path, self.function.sig.ident.span()),
        };
        let mut trigger_paths = Vec::new();
        for argument in &arguments {
            let Some(key) = argument.path.get_ident().map(ToString::to_string) else {
                continue;
            };
            // Values the macro would refuse are left at their defaults: the compiler reports
            // them, and the catalog of code that does not compile matters little.
            match (key.as_str(), &argument.value) {
                (
                    "name",
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                ) => job.name = s.value(),
                (
                    "pool",
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                ) => job.pool = s.value(),
                (
                    "retries",
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(n), ..
                    }),
                ) => {
                    if let Some(attempts) = n
                        .base10_parse::<u32>()
                        .ok()
                        .and_then(MaxAttempts::after_first)
                    {
                        job.attempts = attempts.get();
                    }
                }
                (
                    "max_attempts",
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(n), ..
                    }),
                ) => {
                    if let Some(attempts) =
                        n.base10_parse::<u32>().ok().and_then(MaxAttempts::total)
                    {
                        job.attempts = attempts.get();
                    }
                }
                ("triggers", Expr::Array(array)) => trigger_paths.extend(array.elems.iter()),
                _ => {}
            }
        }
        let mut errors = Vec::new();
        let mut triggers = BTreeSet::new();
        for element in trigger_paths {
            let Expr::Path(path) = element else { continue };
            let Some(last) = path.path.segments.last() else {
                continue;
            };
            let struct_name = last.ident.unraw().to_string();
            match self.events_by_struct.get(struct_name.as_str()) {
                Some(event) => {
                    triggers.insert((*event).to_owned());
                }
                None => {
                    let known: Vec<&str> = self.events_by_struct.keys().copied().collect();
                    let hint = match closest(&struct_name, &known) {
                        Some(near) => format!("; did you mean `{near}`?"),
                        None => String::new(),
                    };
                    errors.push(JobsError::UnknownTrigger {
                        location: Location::of(self.path, element.span()),
                        job: job.name.clone(),
                        trigger: struct_name,
                        hint,
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        job.triggers = triggers.into_iter().collect();
        job.publishes = self.published_events().into_iter().collect();
        Ok(job)
    }

    /// The events built in the handler and in the same-file functions it reaches.
    fn published_events(&self) -> BTreeSet<String> {
        let mut finder = EventFinder {
            events_by_struct: self.events_by_struct,
            events: BTreeSet::new(),
            calls: BTreeSet::new(),
        };
        let mut visited = BTreeSet::new();
        let mut pending = vec![self.function];
        while let Some(function) = pending.pop() {
            if !visited.insert(std::ptr::from_ref(function)) {
                continue;
            }
            finder.calls.clear();
            finder.visit_block(&function.block);
            for callee in &finder.calls {
                pending.extend(self.functions.get(callee).into_iter().flatten());
            }
        }
        finder.events
    }
}

struct EventFinder<'a> {
    events_by_struct: &'a BTreeMap<&'a str, &'a str>,
    events: BTreeSet<String>,
    /// The single-segment functions called: the candidates of the same file to follow.
    calls: BTreeSet<String>,
}

impl EventFinder<'_> {
    fn note_event(&mut self, ident: &syn::Ident) {
        if let Some(event) = self
            .events_by_struct
            .get(ident.unraw().to_string().as_str())
        {
            self.events.insert((*event).to_owned());
        }
    }
}

impl<'ast> Visit<'ast> for EventFinder<'_> {
    fn visit_expr_struct(&mut self, node: &'ast syn::ExprStruct) {
        if let Some(last) = node.path.segments.last() {
            self.note_event(&last.ident);
        }
        syn::visit::visit_expr_struct(self, node);
    }

    fn visit_expr_call(&mut self, node: &'ast syn::ExprCall) {
        if let Expr::Path(path) = &*node.func {
            let segments = &path.path.segments;
            if let [only] = segments.iter().collect::<Vec<_>>().as_slice() {
                self.calls.insert(only.ident.unraw().to_string());
            } else if segments.len() >= 2 {
                // `Event::new(..)`, `events::Event::from(..)`: the type is the segment before
                // the function's.
                self.note_event(&segments[segments.len() - 2].ident);
            }
        }
        syn::visit::visit_expr_call(self, node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileKind, SourceMap};

    fn model() -> Model {
        let mut sources = SourceMap::new();
        sources.add(
            FileKind::Entity,
            "entities/contact.yaml",
            "entity: contact\nfields:\n  email: { type: string }\n",
        );
        for (name, direction) in [
            ("contact_created", "change"),
            ("contact_synced", "outbound"),
        ] {
            let aggregate = if direction == "change" {
                "aggregate: contact\n"
            } else {
                "destination: crm\n"
            };
            sources.add(
                FileKind::Event,
                format!("events/{name}.yaml"),
                format!(
                    "type: {name}\ndirection: {direction}\n{aggregate}payload:\n  contact_id: {{ type: uuid }}\n"
                ),
            );
        }
        crate::check(&sources).expect("valid")
    }

    fn jobs(rust: &str) -> Result<Vec<Job>, Vec<JobsError>> {
        find_jobs(
            &model(),
            &[RustSource {
                path: "src/jobs.rs".into(),
                contents: rust.into(),
            }],
        )
    }

    #[test]
    fn reads_triggers_names_pools_attempts_and_what_a_job_builds_through_helpers() {
        let found = jobs(
            r#"
            use herald::job_handler;
            #[herald::job_handler(name = "push", pool = "crm", triggers = [events::ContactCreated], max_attempts = 3)]
            async fn push_contact(ctx: JobContext, input: Input) -> Result<(), JobError> {
                announce(input.id).await
            }
            async fn announce(id: Uuid) -> Result<(), JobError> { outer(id) }
            fn outer(id: Uuid) { let _ = Publish::new(ContactSynced { contact_id: id }); }
            #[job_handler]
            async fn lonely(ctx: JobContext, input: Input) -> Result<(), JobError> { Ok(()) }
            #[cfg(test)]
            mod tests {
                fn announce() { let _ = ContactCreated { contact_id: Uuid::nil() }; }
            }
            "#,
        )
        .expect("readable");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "lonely");
        assert_eq!(found[0].pool, DEFAULT_JOB_POOL);
        assert_eq!(found[0].attempts, RetryPolicy::JOB_DEFAULT.attempts);
        assert!(found[0].triggers.is_empty() && found[0].publishes.is_empty());
        assert_eq!(found[1].name, "push");
        assert_eq!(found[1].pool, "crm");
        assert_eq!(found[1].attempts, 3);
        assert_eq!(found[1].triggers, ["contact_created"]);
        assert_eq!(found[1].publishes, ["contact_synced"]);
        assert_eq!(found[1].location.line, 4);
    }

    #[test]
    fn an_unknown_trigger_and_a_syntax_error_are_named_with_their_place() {
        let errors = jobs(
            "#[job_handler(triggers = [ContactCreatd])]\nasync fn sync(ctx: JobContext, i: I) -> Result<(), E> { Ok(()) }\n",
        )
        .expect_err("unknown trigger");
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "src/jobs.rs:1:27: job `sync` is triggered by `ContactCreatd`, which is the payload struct of no event in events/ or entities/; did you mean `ContactCreated`?"
            ]
        );
        let errors = jobs("fn broken( {").expect_err("syntax");
        assert!(
            errors[0].to_string().starts_with("src/jobs.rs:1:"),
            "{}",
            errors[0]
        );
    }
}
