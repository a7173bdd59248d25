/**
 * A Replicator and a Store that time what passes through them and tell OpsMetrics: saves (also
 * saveWithIndex and a session's) and loads (with their outcome, decided by error code, and read
 * mode), store applies, and snapshots taken (a store backup read to its end). They change nothing else: every other call goes straight on.
 */
import { isNexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import type {
  LoadOptions,
  ReadConsistency,
  Replicator,
  SaveOptions,
  SaveResult,
} from "../node/replicator.js";
import { createSession } from "../node/session.js";
import type { ApplyEntry, ApplyResult, Store, StoreBackup } from "../store/store.js";
import type { LoadOutcome, OpsMetrics, SaveOutcome } from "./metrics.js";

const SAVE_OUTCOMES: Partial<Record<NexusErrorCode, SaveOutcome>> = {
  STORE_ERROR: "store_error",
  PROPOSAL_DROPPED: "dropped",
  NO_LEADER: "no_leader",
  NOT_LEADER: "no_leader",
  UNKNOWN_OUTCOME: "unknown_outcome",
  TIMEOUT: "unknown_outcome",
  NOT_SERVING: "not_serving",
  STORE_UNAVAILABLE: "not_serving",
};

const LOAD_OUTCOMES: Partial<Record<NexusErrorCode, LoadOutcome>> = {
  STORE_ERROR: "store_error",
  NO_LEADER: "no_leader",
  NOT_LEADER: "no_leader",
  TIMEOUT: "timeout",
  UNKNOWN_OUTCOME: "timeout",
  NOT_SERVING: "not_serving",
  STORE_UNAVAILABLE: "not_serving",
  TOO_STALE: "too_stale",
};

/** The outcome label of a save that threw `err`. */
export function saveOutcomeOf(err: unknown): SaveOutcome {
  return isNexusError(err) ? (SAVE_OUTCOMES[err.code] ?? "error") : "error";
}

/** The outcome label of a load that threw `err`. */
export function loadOutcomeOf(err: unknown): LoadOutcome {
  return isNexusError(err) ? (LOAD_OUTCOMES[err.code] ?? "error") : "error";
}

/**
 * `rep` with saves and loads measured. `defaultMode` is the read mode of a load that names none
 * (lease with -nexusLeaseBasedReads, else linearizable).
 */
export function measureReplicator(
  rep: Replicator,
  m: OpsMetrics,
  defaultMode: ReadConsistency,
): Replicator {
  const saveWithIndex = async (
    data: Uint8Array | string,
    opts?: SaveOptions,
  ): Promise<SaveResult> => {
    const t0 = performance.now();
    try {
      const r = await rep.saveWithIndex(data, opts);
      m.saved(performance.now() - t0, "ok");
      return r;
    } catch (err) {
      m.saved(performance.now() - t0, saveOutcomeOf(err));
      throw err;
    }
  };
  const save = async (data: Uint8Array | string, opts?: SaveOptions): Promise<Uint8Array> =>
    (await saveWithIndex(data, opts)).data;
  const load = async (data: Uint8Array | string, opts?: LoadOptions): Promise<Uint8Array> => {
    const t0 = performance.now();
    // A minIndex load without a mode reads this node's store once it has applied the index.
    const mode =
      opts?.consistency ?? (opts?.minIndex === undefined ? defaultMode : ("local" as const));
    try {
      const r = await rep.load(data, opts);
      m.loaded(performance.now() - t0, "ok", mode);
      return r;
    } catch (err) {
      m.loaded(performance.now() - t0, loadOutcomeOf(err), mode);
      throw err;
    }
  };
  return new Proxy(rep, {
    get(target, key) {
      if (key === "save") return save;
      if (key === "saveWithIndex") return saveWithIndex;
      if (key === "load") return load;
      // A session's saves and loads go through the measured ones.
      if (key === "session") return () => createSession({ saveWithIndex, load });
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `store` with applies and backups (snapshots) measured. */
export function measureStore(store: Store, m: OpsMetrics): Store {
  const apply = async (entries: readonly ApplyEntry[]): Promise<ApplyResult[]> => {
    const t0 = performance.now();
    const r = await store.apply(entries);
    m.applied(performance.now() - t0, entries.length);
    return r;
  };
  const backup = async (): Promise<StoreBackup> => {
    const t0 = performance.now();
    const b = await store.backup();
    const inner = b.stream;
    const stream = (async function* () {
      let bytes = 0;
      for await (const chunk of inner) {
        bytes += chunk.byteLength;
        yield chunk;
      }
      m.snapshotTaken(performance.now() - t0, bytes);
    })();
    return { ...b, stream };
  };
  return new Proxy(store, {
    get(target, key) {
      if (key === "apply") return apply;
      if (key === "backup") return backup;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
