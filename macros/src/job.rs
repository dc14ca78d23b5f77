//! `#[job_handler]`: an `async fn(JobContext, Input) -> Result<Output, Error>` becomes a job
//! type implementing `herald::Job`. The function is kept as written, so it can still be called
//! (and unit-tested) directly.

use herald_vocabulary::naming::to_pascal_case;
use herald_vocabulary::pool::{JobPoolError, RESERVED_PREFIX, check_job_pool};
use herald_vocabulary::{Backoff, DEFAULT_JOB_POOL, MaxAttempts, RetryPolicy};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::parse::Parser as _;
use syn::spanned::Spanned as _;
use syn::{
    Expr, FnArg, GenericArgument, Ident, ItemFn, LitStr, Path, PathArguments, ReturnType, Type,
};

use crate::attr::{self, Entry, Errors, Slot, Value};
use crate::words::HeraldPath as _;

const KEYS: &[&str] = &[
    "name",
    "pool",
    "retries",
    "max_attempts",
    "backoff",
    "timeout",
    "triggers",
    "dedupe",
    "concurrency",
];

const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// The attribute's values, each where it was written.
#[derive(Default)]
struct JobAttrs {
    name: Slot<String>,
    pool: Slot<String>,
    /// `retries = N`: re-runs after the first attempt.
    retries: Slot<MaxAttempts>,
    /// `max_attempts = N`: every attempt, the first one included.
    max_attempts: Slot<MaxAttempts>,
    backoff: Slot<Backoff>,
    timeout: Slot<u64>,
    triggers: Slot<Vec<Path>>,
    dedupe: Slot<Ident>,
    concurrency: Slot<u32>,
}

impl JobAttrs {
    fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut entries = Vec::new();
        let parser = syn::meta::parser(|meta| attr::parse_entry(meta, &mut entries));
        if let Err(error) = parser.parse2(args) {
            errors.push(error);
        }
        let mut attrs = JobAttrs::default();
        for entry in &entries {
            match entry.name().as_str() {
                "name" => attrs.name.fill(entry, errors, |entry, errors| {
                    attr::snake_case(entry, errors, "job name", "name = \"sync_contact\"")
                }),
                "pool" => attrs.pool.fill(entry, errors, pool),
                "retries" | "max_attempts" => attrs.read_attempts(entry, errors),
                "backoff" => attrs.backoff.fill(entry, errors, attr::keyword),
                "timeout" => attrs.timeout.fill(entry, errors, timeout),
                "triggers" => attrs.triggers.fill(entry, errors, triggers),
                "dedupe" => attrs.dedupe.fill(entry, errors, dedupe),
                "concurrency" => attrs.concurrency.fill(entry, errors, |entry, errors| {
                    attr::integer(entry, errors, "concurrency = 4").and_then(|(value, lit)| {
                        if value == 0 {
                            errors.at(
                                lit,
                                "`concurrency` must be at least 1: it caps how many runs of \
                                 this job run at once; remove it for no cap",
                            );
                            None
                        } else {
                            Some(value)
                        }
                    })
                }),
                _ => errors.push(attr::unknown_key(entry, "job_handler", KEYS)),
            }
        }
        attrs
    }

    /// `retries` and `max_attempts` are one number in two units, so either may be given but
    /// not both; the second one written is the error.
    fn read_attempts(&mut self, entry: &Entry, errors: &mut Errors) {
        let is_retries = entry.name() == "retries";
        let (slot, other_present) = if is_retries {
            (&mut self.retries, self.max_attempts.is_present())
        } else {
            (&mut self.max_attempts, self.retries.is_present())
        };
        // A repeated key has its own error already.
        let repeated = slot.is_present();
        slot.fill(
            entry,
            errors,
            if is_retries { retries } else { max_attempts },
        );
        if other_present && !repeated {
            errors.at(entry, both_counts(self.retries.value));
        }
    }
}

/// The error for `retries` and `max_attempts` together, with the one translated into the
/// other (the `retries` written, when it is valid, else an example).
fn both_counts(retries: Option<MaxAttempts>) -> String {
    let (retries, total) = retries.map_or((5, 6), |attempts| (attempts.retries(), attempts.get()));
    format!(
        "give either `retries` or `max_attempts`, not both: `retries = {retries}` (re-runs \
         after the first attempt) is `max_attempts = {total}` (every attempt, the first one \
         included); remove one of them"
    )
}

fn pool(entry: &Entry, errors: &mut Errors) -> Option<String> {
    let lit = attr::string(entry, errors, &format!("pool = \"{DEFAULT_JOB_POOL}\""))?;
    let value = lit.value();
    match check_job_pool(&value) {
        Ok(()) => Some(value),
        Err(JobPoolError::Empty) => {
            errors.at(
                &lit,
                format_args!(
                    "the pool name is empty: use `{DEFAULT_JOB_POOL}` (the default), \
                     `interactive`, or a name of your own"
                ),
            );
            None
        }
        Err(JobPoolError::Reserved) => {
            errors.at(
                &lit,
                format_args!(
                    "pool `{value}` is reserved for event delivery lanes; run jobs in \
                     `{DEFAULT_JOB_POOL}` (the default), `interactive`, or a pool of your own \
                     whose name does not start with `{RESERVED_PREFIX}`"
                ),
            );
            None
        }
    }
}

/// `retries = N`: N re-runs after a failed first attempt, so N + 1 attempts in all.
fn retries(entry: &Entry, errors: &mut Errors) -> Option<MaxAttempts> {
    // `retries = 0` is valid (one attempt), which `attr::integer`'s message does not cover.
    if let Value::Expr(Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(lit),
        ..
    })) = &entry.value
    {
        let attempts = lit
            .base10_parse::<u32>()
            .ok()
            .and_then(MaxAttempts::after_first);
        if attempts.is_none() {
            errors.at(
                lit,
                "`retries` must be a whole number of re-runs after the first attempt, e.g. \
                 `retries = 5` (0 for a single attempt)",
            );
        }
        return attempts;
    }
    attr::integer(entry, errors, "retries = 5")
        .and_then(|(value, _)| MaxAttempts::after_first(value))
}

/// `max_attempts = N`: N attempts in all, the first one included, as an event's
/// `retry(attempts = N)` counts them.
fn max_attempts(entry: &Entry, errors: &mut Errors) -> Option<MaxAttempts> {
    let (value, lit) = attr::integer(entry, errors, "max_attempts = 6")?;
    let attempts = MaxAttempts::total(value);
    if attempts.is_none() {
        errors.at(
            lit,
            "`max_attempts` counts every attempt, the first one included, so it is at least 1: \
             write `max_attempts = 1` for no retries",
        );
    }
    attempts
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, in milliseconds.
fn timeout(entry: &Entry, errors: &mut Errors) -> Option<u64> {
    let lit = attr::string(entry, errors, "timeout = \"30s\"")?;
    let value = lit.value();
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let scale = match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    match (digits.parse::<u64>(), scale) {
        (Ok(0), Some(_)) => {
            errors.at(
                &lit,
                "a timeout of zero would end every run at once: give a positive duration such \
                 as \"30s\"",
            );
            None
        }
        (Ok(amount), Some(scale)) => amount.checked_mul(scale).or_else(|| {
            errors.at(&lit, "this timeout is too long: use at most a few hours");
            None
        }),
        _ => {
            errors.at(
                &lit,
                format_args!(
                    "cannot read the timeout \"{value}\": write a whole number and a unit, \
                     `ms`, `s`, `m` or `h`, such as \"500ms\", \"30s\", \"5m\" or \"1h\""
                ),
            );
            None
        }
    }
}

fn triggers(entry: &Entry, errors: &mut Errors) -> Option<Vec<Path>> {
    let Value::Expr(Expr::Array(array)) = &entry.value else {
        errors.at(
            entry,
            "`triggers` takes a list of event types: write `triggers = [ContactCreated]`",
        );
        return None;
    };
    let mut paths: Vec<Path> = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Path(path) if path.qself.is_none() => {
                let written = quote!(#path).to_string();
                if paths
                    .iter()
                    .any(|seen| quote!(#seen).to_string() == written)
                {
                    errors.at(
                        path,
                        "this event is already a trigger of the job: remove the duplicate",
                    );
                } else {
                    paths.push(path.path.clone());
                }
            }
            other => errors.at(
                other,
                "expected an event type, such as `ContactCreated` or `events::ContactCreated`",
            ),
        }
    }
    Some(paths)
}

fn dedupe(entry: &Entry, errors: &mut Errors) -> Option<Ident> {
    let lit = attr::string(entry, errors, "dedupe = \"contact_id\"")?;
    let value = lit.value();
    let name = value.strip_prefix("r#").unwrap_or(&value);
    // A keyword names a raw field (`dedupe = "type"` for `r#type`).
    match syn::parse_str::<Ident>(name) {
        Ok(field) => Some(Ident::new(&field.to_string(), lit.span())),
        Err(_) if syn::parse_str::<Ident>(&format!("r#{name}")).is_ok() => {
            Some(Ident::new_raw(name, lit.span()))
        }
        Err(_) => {
            errors.at(
                &lit,
                format_args!(
                    "`dedupe` names a field of the job's input, such as `dedupe = \
                     \"contact_id\"`; \"{}\" is not a field name",
                    lit.value()
                ),
            );
            None
        }
    }
}

/// The parts of the function the job type is made from.
struct Signature {
    input: Type,
    output: Type,
    error: Type,
}

fn check_fn(function: &ItemFn, errors: &mut Errors) -> Option<Signature> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            "a job handler must be an `async fn`: write `async fn` here",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            "a job handler cannot be generic: its input and output are stored as JSON and \
             read back by a worker that must know their types; use concrete types",
        );
    }
    let mut params = sig.inputs.iter();
    let (context, input) = (params.next(), params.next());
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.at(
            receiver,
            "a job handler is a free function, not a method: take `(ctx: JobContext, input: \
             YourInput)` and reach shared state through `ctx.state::<T>()`",
        );
        return None;
    }
    let input = match (context, input, params.next()) {
        (Some(_), Some(FnArg::Typed(input)), None) => Some((*input.ty).clone()),
        _ => {
            let span = if sig.inputs.is_empty() {
                sig.paren_token.span.join()
            } else {
                sig.inputs.span()
            };
            errors.push(syn::Error::new(
                span,
                "a job handler takes exactly two parameters: `(ctx: JobContext, input: \
                 YourInput)`, where the input is a serde type stored with the run",
            ));
            None
        }
    };
    let result = match &sig.output {
        ReturnType::Type(_, ty) => result_arguments(ty),
        ReturnType::Default => None,
    };
    if result.is_none() {
        let tokens = match &sig.output {
            ReturnType::Type(_, ty) => quote!(#ty),
            ReturnType::Default => {
                let ident = &sig.ident;
                quote!(#ident)
            }
        };
        errors.at(
            tokens,
            "a job handler returns `Result<Output, Error>`: its output is stored with the run, \
             an error retries it; write for example `-> Result<(), JobError>`",
        );
    }
    let (output, error) = result?;
    Some(Signature {
        input: input?,
        output,
        error,
    })
}

/// `(Ok, Err)` of a type written `…Result<Ok, Err>`.
fn result_arguments(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    let mut types = arguments.args.iter().filter_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let (ok, err) = (types.next()?, types.next()?);
    types.next().is_none().then_some((ok, err))
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[job_handler]` goes on an `async fn(ctx: JobContext, input: YourInput) -> \
                 Result<Output, Error>`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    let attrs = JobAttrs::parse(args, &mut errors);
    let signature = check_fn(&function, &mut errors);
    let job = render(&function, &attrs, signature.as_ref());
    match errors.finish() {
        Ok(()) => quote!(#function #job),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #function #job)
        }
    }
}

/// The job type and its `Job` impl. After errors, a placeholder from whatever was valid, so
/// that uses of the job type do not add errors of their own.
fn render(function: &ItemFn, attrs: &JobAttrs, signature: Option<&Signature>) -> TokenStream {
    let fn_name = &function.sig.ident;
    let vis = &function.vis;
    let type_name = format_ident!(
        "{}",
        to_pascal_case(&fn_name.unraw().to_string()),
        span = fn_name.span()
    );
    let name = attrs
        .name
        .value
        .clone()
        .unwrap_or_else(|| fn_name.unraw().to_string());
    let pool = attrs
        .pool
        .value
        .clone()
        .unwrap_or_else(|| DEFAULT_JOB_POOL.to_owned());
    // Whichever unit was written; the runtime stores the total.
    let attempts = attrs
        .max_attempts
        .value
        .or(attrs.retries.value)
        .unwrap_or(RetryPolicy::JOB_DEFAULT.max_attempts())
        .get();
    let backoff = attrs
        .backoff
        .value
        .unwrap_or(RetryPolicy::JOB_DEFAULT.backoff)
        .herald_path();
    let timeout = attrs.timeout.value.unwrap_or(DEFAULT_TIMEOUT_MS);
    let concurrency = match attrs.concurrency.value {
        Some(cap) => quote!(::core::option::Option::Some(#cap)),
        None => quote!(::core::option::Option::None),
    };
    let doc = format!(" The job type generated by `#[job_handler]` from [`{fn_name}`].");
    let header = quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #type_name;
    };
    let Some(signature) = signature else {
        // The function's shape is wrong and already reported: a placeholder impl keeps every
        // use of the job type (`Job::NAME`, `Worker::job::<T>()`) from adding errors of its own.
        return quote! {
            #header

            impl ::herald::Job for #type_name {
                const NAME: &'static str = #name;
                const POOL: &'static str = #pool;
                const RETRY: ::herald::RetryPolicy = ::herald::RetryPolicy {
                    attempts: #attempts,
                    backoff: #backoff,
                };
                const TIMEOUT: ::core::time::Duration = ::core::time::Duration::from_millis(#timeout);
                const CONCURRENCY: ::core::option::Option<u32> = #concurrency;
                const TRIGGERS: &'static [::herald::Trigger] = &[];

                type Input = ();
                type Output = ();
                type Error = ::core::convert::Infallible;
                type Triggers = ();

                fn dedupe_key(_: &()) -> ::core::option::Option<::std::string::String> {
                    ::core::option::Option::None
                }

                fn run(
                    _: ::herald::JobContext,
                    _: (),
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), ::core::convert::Infallible>,
                > + ::core::marker::Send {
                    async { ::core::result::Result::Ok(()) }
                }
            }
        };
    };
    let Signature {
        input,
        output,
        error,
    } = signature;
    let triggers = attrs.triggers.value.clone().unwrap_or_default();
    let trigger_list = triggers
        .iter()
        .map(|event| quote_spanned!(event.span()=> ::herald::Trigger::of::<#event, Self>()));
    let dedupe = match &attrs.dedupe.value {
        Some(field) => quote! {
            ::core::option::Option::Some(::std::string::ToString::to_string(&input.#field))
        },
        None => quote!({
            let _ = input;
            ::core::option::Option::None
        }),
    };
    let name = LitStr::new(&name, fn_name.span());
    // After the "must be async" error, keep the impl from adding a "not a future" one.
    let call = if function.sig.asyncness.is_some() {
        quote!(#fn_name(ctx, input))
    } else {
        quote!(async move { #fn_name(ctx, input) })
    };
    quote! {
        #header

        impl ::herald::Job for #type_name {
            const NAME: &'static str = #name;
            const POOL: &'static str = #pool;
            const RETRY: ::herald::RetryPolicy = ::herald::RetryPolicy {
                attempts: #attempts,
                backoff: #backoff,
            };
            const TIMEOUT: ::core::time::Duration = ::core::time::Duration::from_millis(#timeout);
            const CONCURRENCY: ::core::option::Option<u32> = #concurrency;
            const TRIGGERS: &'static [::herald::Trigger] = &[#(#trigger_list),*];

            type Input = #input;
            type Output = #output;
            type Error = #error;
            type Triggers = (#(#triggers,)*);

            fn dedupe_key(input: &Self::Input) -> ::core::option::Option<::std::string::String> {
                #dedupe
            }

            fn run(
                ctx: ::herald::JobContext,
                input: Self::Input,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<Self::Output, Self::Error>,
            > + ::core::marker::Send {
                #call
            }
        }
    }
}
