// graphile-worker's side of `outbox-bench --side-by-side`.
//
//   node burndown.mjs fill <database-url> <jobs>
//     installs graphile-worker's schema, adds <jobs> no-op jobs in one statement (as its own
//     perfTest/init.js does) and takes statistics (VACUUM ANALYZE, as peer benchmark scripts do).
//   node burndown.mjs work <database-url> <defaults|batched>
//     runs the jobs until none is left (runOnce) and prints one JSON line: the wall-clock
//     milliseconds of the first job's start and of the moment every completion was written,
//     and how many jobs this process ran. The parent starts several at once for several workers
//     and measures from the earliest start to the latest end, so that Node's start-up is not
//     counted, as it is not counted for Herald either.
import { EventEmitter } from "node:events";
import pg from "pg";
import { Logger, runMigrations, runOnce } from "graphile-worker";

const [command, connectionString, arg] = process.argv.slice(2);

// `batched`: graphile-worker's documented batching (its docs, "Performance"): a local queue a
// little larger than the concurrency, completions written in batches as soon as the event loop
// is free. `defaults`: every setting as it ships but the concurrency, 10 instead of 1 (with 1
// job at a time a queue of no-op jobs measures round trips, not the queue).
const MODES = {
  defaults: { concurrentJobs: 10 },
  batched: {
    concurrentJobs: 50,
    localQueue: { size: 51 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

async function fill(jobs) {
  await runMigrations({ connectionString, logger: quietLogger() });
  const pool = new pg.Pool({ connectionString });
  await pool.query(
    `select 1 from graphile_worker.add_jobs(array(
       select json_populate_record(null::graphile_worker.job_spec,
         json_build_object('identifier', 'noop', 'payload', json_build_object('n', i)))
       from generate_series(1, $1::int) i))`,
    [jobs],
  );
  await pool.query("vacuum analyze");
  await pool.end();
}

async function work(mode) {
  const worker = MODES[mode];
  if (!worker) throw new Error(`unknown mode ${mode}: defaults or batched`);
  const events = new EventEmitter();
  let firstStart = null;
  let ran = 0;
  events.on("job:start", () => {
    if (firstStart === null) firstStart = Date.now();
  });
  events.on("job:success", () => {
    ran += 1;
  });
  await runOnce({
    noHandleSignals: true,
    events,
    logger: quietLogger(),
    taskList: { noop: async () => {} },
    preset: {
      worker: { connectionString, maxPoolSize: worker.concurrentJobs + 2, ...worker },
    },
  });
  const end = Date.now();
  console.log(JSON.stringify({ first_start_ms: firstStart, end_ms: end, ran }));
}

function quietLogger() {
  // Errors and warnings still reach stderr; per-job info lines would cost time.
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`[graphile-worker] ${message}`);
  });
}

if (command === "fill") await fill(Number(arg));
else if (command === "work") await work(arg);
else throw new Error("usage: burndown.mjs fill <url> <jobs> | work <url> <defaults|batched>");
