//! Generation time for synthetic domains of 1,000 and 10,000 event files.
//!
//! `cargo bench -p codegen-cli --bench generate`
//!
//! Each size is measured end to end as the CLI runs it (read the YAML from disk, check,
//! emit, format, write to an empty directory) and for the engine alone (in memory). The
//! baseline, measured in the same run, is parsing the same files with `serde-saphyr` into
//! plain structs and nothing else: the floor that any YAML-based generator pays.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use herald_codegen::output::write_files;
use herald_codegen::{Options, generate, load_sources};

const ENTITIES: usize = 50;

fn synthesize(dir: &Path, events: usize) {
    fs::create_dir_all(dir.join("events")).expect("mkdir");
    fs::create_dir_all(dir.join("entities")).expect("mkdir");
    for e in 0..ENTITIES {
        fs::write(
            dir.join(format!("entities/entity_{e}.yaml")),
            format!(
                "entity: entity_{e}\nfields:\n  name: {{ type: string, max_length: 200 }}\n  status: {{ type: enum, choices: [active, archived] }}\nbehaviors: [timestamps]\n"
            ),
        )
        .expect("write entity");
    }
    for i in 0..events {
        let body = match i % 4 {
            0 => format!("direction: change\naggregate: entity_{}\n", i % ENTITIES),
            1 => {
                "direction: inbound\nsource: stripe\nretry: { attempts: 5, backoff: exponential }\n"
                    .to_owned()
            }
            2 => "direction: outbound\ndestination: crm\n".to_owned(),
            _ => "tier: audit\n".to_owned(),
        };
        fs::write(
            dir.join(format!("events/event_{i}.yaml")),
            format!(
                "type: event_{i}\n{body}version: 1\ndescription: Synthetic event {i}.\npayload:\n  id: {{ type: uuid }}\n  name: {{ type: string }}\n  amount: {{ type: number, nullable: true }}\n  tags: {{ type: array, items: string }}\n  at: {{ type: datetime }}\n"
            ),
        )
        .expect("write event");
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct PlainEvent {
    #[serde(rename = "type")]
    type_: String,
    direction: Option<String>,
    tier: Option<String>,
    aggregate: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    version: Option<u32>,
    description: Option<String>,
    retry: Option<serde_json::Value>,
    payload: std::collections::BTreeMap<String, serde_json::Value>,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm the page cache and the allocator
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: stay quick there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick { &[100] } else { &[1_000, 10_000] };
    println!(
        "{:>7}  {:>14}  {:>14}  {:>14}  {:>8}",
        "events", "baseline parse", "engine", "end to end", "e2e/base"
    );
    for &events in sizes {
        let input = tempfile::tempdir().expect("temp dir");
        synthesize(input.path(), events);
        let runs = if events >= 10_000 { 5 } else { 11 };

        let baseline = measure(runs, || {
            for path in herald_codegen::yaml_files(&input.path().join("events")).expect("list") {
                let text = fs::read_to_string(path).expect("read");
                let _: PlainEvent = serde_saphyr::from_str(&text).expect("parse");
            }
        });
        let sources = load_sources(&input.path().join("events"), &input.path().join("entities"))
            .expect("load");
        let engine = measure(runs, || {
            generate(&sources, &Options::default()).expect("valid");
        });
        let end_to_end = measure(runs, || {
            let out = tempfile::tempdir().expect("temp dir");
            let sources =
                load_sources(&input.path().join("events"), &input.path().join("entities"))
                    .expect("load");
            let files = generate(&sources, &Options::default()).expect("valid");
            write_files(out.path(), &files).expect("write");
        });
        println!(
            "{events:>7}  {:>12.1}ms  {:>12.1}ms  {:>12.1}ms  {:>7.1}x",
            baseline.as_secs_f64() * 1e3,
            engine.as_secs_f64() * 1e3,
            end_to_end.as_secs_f64() * 1e3,
            end_to_end.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
