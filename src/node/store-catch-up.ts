/**
 * Brings a stopped node's store up to an index of its log: the store restored from the newest
 * snapshot if it is behind it (durable-state.ts), then the entries it has not applied, through the
 * node's own apply pipeline.
 *
 * Used by `nexus recover` before it copies the store into the new cluster's snapshot, through the
 * last entry of the survivor's log: the entries its store had not applied yet, or lost to a power
 * loss (a store that commits without fsync: the Raft WAL is the durable record,
 * src/store/DESIGN.md), and those the lost majority may have committed without the survivor
 * hearing so (a commit index is written lazily, and a follower learns of a commit after the
 * entry). With the majority gone nothing else can decide them; an entry the old cluster never
 * committed was never acknowledged, so taking effect is one of its allowed outcomes.
 */
import { join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { AppliedPosition } from "../store/store.js";
import { Applier } from "./applier.js";
import type { DurableState } from "./durable-state.js";
import type { NexusLogger } from "./options.js";
import { RestoreStaging } from "./restore-staging.js";

/** Entries read from the log per step: a long tail costs no more memory than one slice. */
const SLICE_BYTES = 4 << 20;

/**
 * Applies the log's entries after the store's position (`d.position`) through `through` (at most
 * the last) to `d`'s store and returns its new position. STORE_UNAVAILABLE when the store keeps
 * failing for `timeoutMs`. The caller closes the WAL and the store.
 */
export async function catchUpStore(
  d: DurableState,
  snapDir: string,
  store: ConstructorParameters<typeof Applier>[0],
  through: number,
  logger: NexusLogger,
  timeoutMs = 60_000,
): Promise<AppliedPosition> {
  const commit = Math.min(through, d.storage.lastIndex());
  if (commit <= d.position.index) return d.position;
  const staging = await RestoreStaging.open(join(snapDir, "restore-staging"), d.position, logger);
  let progress: () => void = () => undefined;
  const applier = new Applier(
    store,
    {
      onResult: () => undefined,
      onApplied: () => progress(),
      onStoreHealth: () => progress(),
    },
    logger,
    d.position,
    undefined,
    undefined,
    staging,
  );
  applier.start();
  try {
    let next = d.position.index + 1;
    while (next <= commit) {
      const slice = d.storage.entries(next, commit + 1, SLICE_BYTES);
      applier.enqueue({ entries: slice });
      next += slice.length;
      const last = next - 1;
      const deadline = Date.now() + timeoutMs;
      while (applier.position().index < last) {
        const err = applier.storeError();
        if (Date.now() > deadline) {
          throw new NexusError(
            "STORE_UNAVAILABLE",
            `the store did not apply the entries ${applier.position().index + 1} to ${last} ` +
              `within ${timeoutMs} ms${err === undefined ? "" : ` (${err.message})`}; no new cluster was made`,
          );
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 100);
          progress = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    }
    logger.info(
      { from: d.position.index, to: applier.position().index },
      "applied the log's entries the store had not applied",
    );
    return applier.position();
  } finally {
    await applier.stop();
  }
}
