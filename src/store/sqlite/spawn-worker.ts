/** Starts one of this folder's worker threads, from its compiled .js or, in development, its .ts. */
import { Worker } from "node:worker_threads";
import type { ResourceLimits } from "node:worker_threads";

/**
 * Spawns the worker module `name` (without extension) of src/store/sqlite, with V8's
 * `resourceLimits` if given (a worker over them ends with ERR_WORKER_OUT_OF_MEMORY). Running from the
 * TypeScript sources (tests, development), it is loaded through tsx, resolved from here: the
 * worker's own base is the process's working directory, where tsx may not be installed.
 */
export function spawnSqliteWorker(name: string, resourceLimits?: ResourceLimits): Worker {
  const here = import.meta.url;
  const ts = here.endsWith(".ts");
  const url = new URL(`./${name}${ts ? ".ts" : ".js"}`, here);
  const limits = resourceLimits === undefined ? {} : { resourceLimits };
  if (!ts) return new Worker(url, limits);
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  return new Worker(
    `import(${tsx}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`,
    { eval: true, ...limits },
  );
}
