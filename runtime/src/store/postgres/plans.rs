//! The plans of the statements that run once per batch, pinned: over a backlog of 20,000
//! events and 20,000 runs, the event and job claims read their batch from the claim indexes in
//! order and stop — no sort of the backlog, no scan of the table, no hash join — whether the
//! tables have no statistics, statistics taken while everything was pending (and then 15,000
//! processed: stale), or fresh ones; and a batch of runs is finished and heartbeaten through
//! the primary key, not through an index on the status that grows dead entries with every
//! run finished. With PostgreSQL's generic plans (what a prepared statement settles on) and
//! custom ones.

use serde_json::Value;
use sqlx::postgres::PgConnection;

use super::claim_events_sql;
use super::jobs::{FINISH_RUNS, HEARTBEAT, claim_runs_sql};
use crate::store::Lane;
use crate::store::sql::backend::SqlBackend;

const BACKLOG: i64 = 20_000;

/// Every node of a JSON plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut found = vec![plan];
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            found.extend(nodes(child));
        }
    }
    found
}

/// The plan of the prepared `statement` executed as a claim executes it.
async fn plan(connection: &mut PgConnection, statement: &str, arguments: &str) -> Value {
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE {statement}({arguments})");
    let plans = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(explain))
        .fetch_one(&mut *connection)
        .await
        .expect("explain");
    plans[0]["Plan"].clone()
}

/// Fails unless the plan reads `index` and nothing that grows with the backlog.
fn assert_bounded(plan: &Value, index: &str, when: &str) {
    let nodes = nodes(plan);
    let kinds: Vec<&str> = nodes
        .iter()
        .filter_map(|node| node["Node Type"].as_str())
        .collect();
    for unbounded in ["Sort", "Seq Scan", "Hash Join", "Hash"] {
        assert!(
            !kinds.contains(&unbounded),
            "{when}: the claim's plan has a {unbounded}: {plan:#}"
        );
    }
    assert!(
        nodes
            .iter()
            .any(|node| node["Index Name"].as_str() == Some(index)),
        "{when}: the claim does not read {index}: {plan:#}"
    );
}

/// Runs one statement of the test's own (a `SET`, a `PREPARE`, an `ANALYZE`).
async fn execute(connection: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// Moves `runs` runs from status `from` to `to`, as workers would have.
async fn move_runs(connection: &mut PgConnection, from: &str, to: &str, runs: i64) {
    sqlx::query(
        "UPDATE herald_jobs SET status = $2, attempt = 1 WHERE id IN ( \
           SELECT id FROM herald_jobs WHERE status = $1 LIMIT $3)",
    )
    .bind(from)
    .bind(to)
    .bind(runs)
    .execute(&mut *connection)
    .await
    .expect("runs ran");
}

async fn assert_claims_bounded(connection: &mut PgConnection, when: &str) {
    for mode in ["force_generic_plan", "force_custom_plan"] {
        execute(connection, &format!("SET plan_cache_mode = {mode}")).await;
        let events = plan(
            connection,
            "claim_events",
            "'events_change', 100, now(), 'plans', now() + interval '30 seconds'",
        )
        .await;
        assert_bounded(
            &events,
            "herald_events_claim",
            &format!("events, {when}, {mode}"),
        );
        let runs = plan(
            connection,
            "claim_runs",
            "'batch', ARRAY['sync_contact'], 100, 'plans', now() + interval '30 seconds', now()",
        )
        .await;
        assert_bounded(&runs, "herald_jobs_due", &format!("runs, {when}, {mode}"));
    }
}

/// Prepares the claims under the names [`assert_claims_bounded`] executes, as sqlx prepares
/// them: PostgreSQL then plans each execution with its values (custom) or once for all
/// (generic), as `plan_cache_mode` says.
async fn prepare_claims(connection: &mut PgConnection) {
    let lane = Lane::Pool("events_change".to_owned());
    for (name, types, sql) in [
        (
            "claim_events",
            "text, int8, timestamptz, text, timestamptz",
            claim_events_sql(&lane),
        ),
        (
            "claim_runs",
            "text, text[], int8, text, timestamptz, timestamptz",
            claim_runs_sql(),
        ),
    ] {
        execute(connection, &format!("PREPARE {name}({types}) AS {sql}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claims_read_their_batch_and_stop_whatever_the_statistics() {
    let Some((store, url, schema)) =
        crate::store::contract::postgres("the_claims_read_their_batch_and_stop").await
    else {
        return;
    };
    // A connection of the pool the claims run on, with its settings.
    let mut connection = store
        .backend()
        .bookkeeping()
        .acquire()
        .await
        .expect("a bookkeeping connection");
    // Plain inserts, as publishers leave them: nobody has analyzed anything.
    sqlx::query(
        "INSERT INTO herald_events (id, event_type, version, tier, direction, pool, \
           aggregate_type, aggregate_id, payload, occurred_at) \
         SELECT gen_random_uuid(), 'contact_created', 1, 'domain', 'change', 'events_change', \
           'contact', (n % 1000)::text, '{\"n\": 1}', now() \
         FROM generate_series(1, $1) n",
    )
    .bind(BACKLOG)
    .execute(&mut *connection)
    .await
    .expect("events");
    sqlx::query(
        "INSERT INTO herald_jobs (id, job, pool, input, max_attempts, run_at, root_id, \
           created_at) \
         SELECT id, 'sync_contact', 'batch', '{}', 3, now(), id, now() \
         FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) runs",
    )
    .bind(BACKLOG)
    .execute(&mut *connection)
    .await
    .expect("runs");
    prepare_claims(&mut connection).await;
    assert_claims_bounded(&mut connection, "no statistics").await;

    execute(&mut connection, "ANALYZE herald_events, herald_jobs").await;
    sqlx::query(
        "UPDATE herald_events SET status = 'processed', processed_at = now() \
         WHERE position <= $1",
    )
    .bind(BACKLOG * 3 / 4)
    .execute(&mut *connection)
    .await
    .expect("process most");
    assert_claims_bounded(
        &mut connection,
        "statistics of the pending backlog, now stale",
    )
    .await;

    execute(&mut connection, "ANALYZE herald_events, herald_jobs").await;
    assert_claims_bounded(&mut connection, "fresh statistics").await;

    // 15,000 runs ran and finished, leaving dead entries in the indexes on the status;
    // statistics were taken while none ran; then a batch of 100 started: what the worker
    // heartbeats and finishes.
    move_runs(&mut connection, "pending", "running", 15_000).await;
    move_runs(&mut connection, "running", "completed", 15_000).await;
    execute(&mut connection, "ANALYZE herald_jobs").await;
    move_runs(&mut connection, "pending", "running", 100).await;
    let running: String =
        sqlx::query_scalar("SELECT array_agg(id)::text FROM herald_jobs WHERE status = 'running'")
            .fetch_one(&mut *connection)
            .await
            .expect("the running runs");
    for (name, types, sql, arguments) in [
        (
            "heartbeat",
            "uuid[], int4[], timestamptz",
            HEARTBEAT,
            format!("'{running}', array_fill(1, ARRAY[100]), now()"),
        ),
        (
            "finish_runs",
            "uuid[], int4[], text[], text[], text[], timestamptz[], timestamptz",
            FINISH_RUNS,
            format!(
                "'{running}', array_fill(1, ARRAY[100]), array_fill('completed'::text, \
                 ARRAY[100]), array_fill('null'::text, ARRAY[100]), array_fill(NULL::text, \
                 ARRAY[100]), array_fill(NULL::timestamptz, ARRAY[100]), now()"
            ),
        ),
    ] {
        execute(
            &mut connection,
            &format!("PREPARE {name}({types}) AS {sql}"),
        )
        .await;
        for mode in ["force_generic_plan", "force_custom_plan"] {
            execute(&mut connection, &format!("SET plan_cache_mode = {mode}")).await;
            let plan = plan(&mut connection, name, &arguments).await;
            let nodes = nodes(&plan);
            let indexes: Vec<&str> = nodes
                .iter()
                .filter_map(|node| node["Index Name"].as_str())
                .collect();
            assert!(
                indexes.contains(&"herald_jobs_pkey")
                    && !indexes.contains(&"herald_jobs_by_status"),
                "{name}, {mode}: runs not reached by their ids: {plan:#}"
            );
            assert!(
                !nodes.iter().any(|node| node["Node Type"] == "Seq Scan"),
                "{name}, {mode}: a scan of the table: {plan:#}"
            );
        }
    }

    drop(connection);
    store.backend().bookkeeping().close().await;
    crate::store::contract::drop_schema(&url, &schema).await;
}
