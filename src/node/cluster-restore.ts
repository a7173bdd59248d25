/**
 * Restore into a running cluster, the proposer's side (Replicator.restore): check the backup file
 * here first (checksums, store kind, format version), then propose it as `restore-chunk` entries,
 * each applied (staged) on this node before the next is proposed, and finally a `restore-commit`
 * entry carrying the file's length and SHA-256. Every replica stages the chunks and applies the
 * commit identically (restore-staging.ts): the store is replaced at the commit's index, or nothing
 * changes anywhere. A stream cut short is dropped on every replica by a `restore-abort` entry
 * (or, when this node cannot propose it, by the next leader's term).
 */
import { createHash, randomBytes } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { BackupFileError, verifyBackupFile } from "../backup/backup-file.js";
import { NexusError, isNexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import type { ApplyResult } from "../store/store.js";
import type { NexusLogger } from "./options.js";
import { RESTORE_ARGS, RESTORE_CHUNK_BYTES } from "./restore-staging.js";
import type { RestoreOutcome, RestoreRefusal } from "./restore-staging.js";

/** What a restore needs from the node: proposing restore entries and waiting for their result. */
export interface RestoreProposer {
  propose(
    data: Uint8Array,
    args: Readonly<Record<string, string>>,
    kind: "restore-chunk" | "restore-commit" | "restore-abort",
    timeoutMs?: number,
  ): Promise<ApplyResult>;
}

/** Options of Replicator.restore. */
export interface RestoreOptions {
  /** Called after each chunk is staged: bytes staged so far and the file's size. */
  readonly onProgress?: (stagedBytes: number, totalBytes: number) => void;
  /** Stops proposing chunks; the staged part is dropped on every replica. */
  readonly signal?: AbortSignal;
}

/** A restore that took effect on every replica. */
export interface RestoreResult {
  /** The log index of the commit entry: the store holds the backup's state from there on. */
  readonly index: number;
  /** The backup file's size in bytes. */
  readonly bytes: number;
  /** The index and term the backup was taken at (in its source cluster). */
  readonly backupIndex: number;
  readonly backupTerm: number;
  /** The cluster the backup was taken from. */
  readonly backupCluster: string;
  readonly storeKind: string;
}

const REFUSAL_CODES: Record<RestoreRefusal, NexusErrorCode> = {
  "not-staged": "PROPOSAL_DROPPED",
  incomplete: "PROPOSAL_DROPPED",
  "not-a-backup": "CORRUPTED",
  damaged: "CORRUPTED",
  "newer-version": "INVALID_ARGUMENT",
  "wrong-store-kind": "INVALID_ARGUMENT",
};

function parseOutcome(r: ApplyResult): RestoreOutcome {
  if (!r.ok) throw new NexusError("INTERNAL", `the restore commit failed: ${r.error}`);
  const o = JSON.parse(new TextDecoder().decode(r.data)) as RestoreOutcome;
  if (typeof o !== "object" || o === null || typeof o.restored !== "boolean") {
    throw new NexusError("INTERNAL", "the restore commit returned no outcome");
  }
  return o;
}

/**
 * Restores the backup file at `file` into the running cluster. Throws, with nothing changed on
 * any replica: BackupFileError (CORRUPTED, INVALID_ARGUMENT) for a damaged or newer file,
 * INVALID_ARGUMENT for another store kind, PROPOSAL_DROPPED / NO_LEADER when the chunk stream was
 * interrupted (run it again). UNKNOWN_OUTCOME when the commit was proposed but not applied here
 * in time: the restore may still take effect (look at the data, or `nexus status`, before
 * running it again).
 */
export async function restoreIntoCluster(
  node: RestoreProposer,
  storeKind: string,
  file: string,
  maxChunkBytes: number,
  logger: NexusLogger,
  opts: RestoreOptions = {},
  replTimeoutMs = 5000,
): Promise<RestoreResult> {
  const verified = await verifyBackupFile(file);
  const h = verified.header;
  if (h.storeKind !== storeKind) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `${file} is a backup of a ${h.storeKind} store and this cluster's store is ${storeKind}; ` +
        "nothing changed: restore a backup taken from a cluster with the same store",
    );
  }
  const total = (await stat(file)).size;
  const id = randomBytes(16).toString("hex");
  const chunkBytes = Math.max(1024, Math.min(RESTORE_CHUNK_BYTES, maxChunkBytes));
  const hash = createHash("sha256");
  const started = Date.now();
  logger.info(
    { id, file, bytes: total, backupIndex: h.index, storeKind },
    "restore into the cluster: staging",
  );
  let offset = 0;
  const fh = await open(file, "r");
  try {
    const buf = Buffer.allocUnsafe(chunkBytes);
    for (;;) {
      opts.signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, offset);
      if (bytesRead === 0) break;
      const part = new Uint8Array(buf.subarray(0, bytesRead));
      hash.update(part);
      await node.propose(
        part,
        { [RESTORE_ARGS.id]: id, [RESTORE_ARGS.offset]: String(offset) },
        "restore-chunk",
      );
      offset += bytesRead;
      opts.onProgress?.(offset, total);
    }
  } catch (err) {
    await fh.close();
    // Drop what was staged, on every replica; if this cannot be proposed, the next leader's term
    // or the next restore drops it.
    await node
      .propose(new Uint8Array(0), { [RESTORE_ARGS.id]: id }, "restore-abort")
      .catch(() => undefined);
    const code: NexusErrorCode = isNexusError(err) ? err.code : "INTERNAL";
    if (err instanceof BackupFileError) throw err;
    throw new NexusError(
      code === "UNKNOWN_OUTCOME" || code === "TIMEOUT" ? "PROPOSAL_DROPPED" : code,
      `the restore was interrupted after ${offset} of ${total} bytes were staged ` +
        `(${(err as Error).message}); nothing changed on any replica: run it again`,
      { cause: err },
    );
  }
  await fh.close();
  if (offset !== total) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `${file} changed while it was being restored (${offset} of ${total} bytes read); ` +
        "nothing changed: restore a file nobody writes to",
    );
  }
  const r = await node.propose(
    new Uint8Array(0),
    {
      [RESTORE_ARGS.id]: id,
      [RESTORE_ARGS.bytes]: String(total),
      [RESTORE_ARGS.sha256]: hash.digest("hex"),
    },
    "restore-commit",
    // The commit waits for the store's restore on this node: the replication timeout plus one
    // second per MiB of backup (a large store takes a while to load).
    replTimeoutMs + Math.ceil(total / (1024 * 1024)) * 1000,
  );
  const o = parseOutcome(r);
  if (!o.restored) throw new NexusError(REFUSAL_CODES[o.reason], `restore refused: ${o.message}`);
  logger.info(
    { id, index: o.index, bytes: total, ms: Date.now() - started },
    "restore into the cluster: committed",
  );
  return {
    index: o.index,
    bytes: total,
    backupIndex: h.index,
    backupTerm: h.term,
    backupCluster: h.clusterName,
    storeKind: h.storeKind,
  };
}
