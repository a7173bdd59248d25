/**
 * Restore into a running cluster, the replica's side: backup-file bytes arrive as `restore-chunk`
 * log entries and are staged in a file beside the node's snapshots; a `restore-commit` entry
 * replaces the store with the staged backup at the commit entry's own index, or is refused; a
 * `restore-abort` entry drops the staging. Every decision is a function of the log alone, made
 * once per index (the staging records the last index it decided, `throughIndex`, durably), so
 * every replica reaches the same state at the same index, and a replica that crashes and re-applies
 * entries decides nothing twice. The rules (src/node/DESIGN.md, "Restore into a running cluster"):
 *
 * - A chunk at offset 0 begins restore `id` (dropping any other staged restore). A chunk at
 *   offset o of the open restore, where o equals the staged size, appends; any other chunk of the
 *   open restore (a gap: a chunk was lost) drops it; a chunk of a restore that is not open is
 *   ignored.
 * - A restore belongs to the term of its first chunk: any entry of a higher term drops it (the
 *   leader that streamed it is gone, and nobody else holds the client's stream).
 * - A snapshot restored into the store drops every staged restore (`reset`); no node takes a
 *   snapshot at an index where a restore is open (`openAt`), so a replica that catches up by
 *   snapshot never misses chunks of a restore that is later committed.
 * - The commit is applied if restore `id` is open with exactly `bytes` staged, and the staged file
 *   is a valid backup of this store kind and a format this version reads; otherwise it is refused
 *   and nothing changes. A staged file whose SHA-256 differs from the commit's (the log holds the
 *   right bytes, so this disk damaged them) is a failure of this replica, not a refusal: applying
 *   stops and is retried, as for a store that is down.
 */
import { createHash } from "node:crypto";
import { open, readdir, rename, rm, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { BackupFileError, openBackupFile, verifyBackupFile } from "../backup/backup-file.js";
import { NexusError } from "../errors/index.js";
import type { AppliedPosition } from "../store/store.js";
import type { EntryPayload } from "./entry-payload.js";
import type { NexusLogger } from "./options.js";

/** The largest chunk a restore-chunk entry carries. */
export const RESTORE_CHUNK_BYTES = 1024 * 1024;

/** A restore being staged. */
export interface OpenRestore {
  /** 32 hex digits, chosen by the proposer. */
  readonly id: string;
  /** The term of its first chunk. */
  readonly term: number;
  /** The index of its first chunk. */
  readonly beginIndex: number;
  /** Bytes staged so far. */
  readonly size: number;
}

/** The staging's durable state (state.json). */
interface StagingState {
  /** Every entry up to this index has been decided. */
  readonly throughIndex: number;
  readonly open: OpenRestore | undefined;
  /** A commit at this index was about to replace the store (see `commit`). */
  readonly committing: number | undefined;
  /** The last refused commit, so that deciding it again (a retry, a replay) says the same. */
  readonly refused?: {
    readonly index: number;
    readonly reason: RestoreRefusal;
    readonly message: string;
  };
}

/** Why a restore commit was refused: the same on every replica. */
export type RestoreRefusal =
  "not-staged" | "incomplete" | "not-a-backup" | "damaged" | "newer-version" | "wrong-store-kind";

/** What a commit entry's result data holds (JSON), on every replica alike. */
export type RestoreOutcome =
  | { readonly restored: true; readonly index: number; readonly bytes: number }
  | { readonly restored: false; readonly reason: RestoreRefusal; readonly message: string };

/** A commit entry's decision: a stream to restore the store from, or a refusal. */
export type CommitDecision =
  | {
      readonly ok: true;
      readonly data: AsyncIterable<Uint8Array>;
      readonly bytes: number;
      /** Where the backup was taken (its header): the store checks the data against it. */
      readonly from: AppliedPosition;
    }
  | { readonly ok: false; readonly outcome: RestoreOutcome & { restored: false } };

/** The fields a restore entry's args carry. */
export const RESTORE_ARGS = {
  id: "restore.id",
  offset: "restore.offset",
  bytes: "restore.bytes",
  sha256: "restore.sha256",
} as const;

const REFUSAL_TEXT: Record<BackupFileError["reason"], string> = {
  "not-a-backup": "the file is not a Nexus backup",
  "newer-version":
    "the backup was written by a newer nexus-raft (a newer format): restore it with that version",
  damaged: "the backup is damaged (a checksum does not match): take a new backup or another copy",
  truncated: "the backup is cut short: take a new backup or another copy",
  "trailing-bytes": "the backup has bytes after its end: take a new backup or another copy",
};

const ID_RE = /^[0-9a-f]{32}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
const STATE = "state.json";

function nonNegInt(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,16}$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A restore entry's fields, or undefined when they are malformed (the entry is then ignored). */
export function restoreFieldsOf(
  p: EntryPayload,
): { id: string; offset: number; bytes: number; sha256: string } | undefined {
  const id = p.args[RESTORE_ARGS.id];
  if (id === undefined || !ID_RE.test(id)) return undefined;
  const offset = nonNegInt(p.args[RESTORE_ARGS.offset] ?? "0") ?? -1;
  const bytes = nonNegInt(p.args[RESTORE_ARGS.bytes] ?? "0") ?? -1;
  const sha256 = p.args[RESTORE_ARGS.sha256] ?? "";
  if (offset < 0 || bytes < 0) return undefined;
  if (p.kind === "restore-commit" && !HEX64_RE.test(sha256)) return undefined;
  return { id, offset, bytes, sha256 };
}

/** One committed entry as the staging sees it. */
export interface StagedEntry {
  readonly index: number;
  readonly term: number;
  readonly payload: EntryPayload | undefined;
}

/**
 * The staged restores of one replica, in `<dir>` (the node's snapshot folder's `restore-staging`).
 * Invariant: `state.throughIndex` only grows, except by `reset` to a snapshot's index.
 * Invariant: a file `<id>.part` exists for `state.open` and holds exactly `state.open.size` bytes
 * (extra bytes after a crash are cut before the next write).
 */
export class RestoreStaging {
  /** Recent restores' spans [beginIndex, endIndex) for `openAt`. */
  private readonly closed: { begin: number; end: number }[] = [];
  /** Below this index, whether a restore was open is unknown (before a restart): assume it was. */
  private unknownBelow = 0;

  private constructor(
    private readonly dir: string,
    private state: StagingState,
    private readonly logger: NexusLogger,
  ) {}

  /**
   * Opens (or creates) the staging folder. A commit that replaced the store before a crash
   * (`committing` at or below the store's applied index) is finished; files of restores that are
   * not open are removed.
   */
  static async open(
    dir: string,
    storeApplied: AppliedPosition,
    logger: NexusLogger,
  ): Promise<RestoreStaging> {
    await mkdir(dir, { recursive: true });
    let state: StagingState = { throughIndex: 0, open: undefined, committing: undefined };
    try {
      const fh = await open(join(dir, STATE), "r");
      try {
        state = parseState(await fh.readFile("utf8"), join(dir, STATE));
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const s = new RestoreStaging(dir, state, logger);
    if (state.committing !== undefined && state.committing <= storeApplied.index) {
      await s.save({ throughIndex: state.committing, open: undefined, committing: undefined });
    } else if (state.committing !== undefined) {
      // The store was not replaced: the commit is applied again, from the open restore.
      await s.save({ ...state, committing: undefined });
    }
    if (s.state.throughIndex > storeApplied.index) s.unknownBelow = s.state.throughIndex;
    await s.removeStrays();
    return s;
  }

  /** The restore being staged, if any. */
  current(): OpenRestore | undefined {
    return this.state.open;
  }

  /** The last index decided. */
  throughIndex(): number {
    return this.state.throughIndex;
  }

  /**
   * Whether a restore was open at `index` (its first chunk at or before it, its commit or drop
   * after it): no snapshot may be taken there. Conservative (true) where it cannot tell.
   */
  openAt(index: number): boolean {
    if (index < this.unknownBelow) return true;
    const o = this.state.open;
    if (o !== undefined && o.beginIndex <= index) return true;
    return this.closed.some((c) => c.begin <= index && index < c.end);
  }

  /** The staged file of restore `id`. */
  private fileOf(id: string): string {
    return join(this.dir, `${id}.part`);
  }

  /**
   * Decides the staging effect of entries, in index order: chunks, aborts and the term rule. A
   * commit entry must come alone through `commit`. Entries at or below `throughIndex` were decided
   * before (a replay after a crash): skipped. Each change is durable before this returns.
   */
  async stage(entries: readonly StagedEntry[]): Promise<void> {
    for (const e of entries) {
      if (e.index <= this.state.throughIndex) continue;
      await this.dropIfOlderTerm(e);
      const p = e.payload;
      if (p?.kind === "restore-chunk") await this.stageChunk(e.index, e.term, p);
      else if (p?.kind === "restore-abort") {
        const f = restoreFieldsOf(p);
        if (f !== undefined && this.state.open?.id === f.id) await this.drop(e.index, "aborted");
      }
    }
  }

  private async dropIfOlderTerm(e: StagedEntry): Promise<void> {
    const o = this.state.open;
    if (o !== undefined && e.term > o.term) await this.drop(e.index, "leader changed");
  }

  private async stageChunk(index: number, term: number, p: EntryPayload): Promise<void> {
    const f = restoreFieldsOf(p);
    if (f === undefined) return;
    const o = this.state.open;
    if (f.offset === 0) {
      if (o !== undefined) await this.drop(index, "a newer restore began");
      await this.writeAt(f.id, 0, p.data);
      await this.save({
        throughIndex: index,
        open: { id: f.id, term, beginIndex: index, size: p.data.byteLength },
        committing: undefined,
      });
      this.logger.info({ id: f.id, index, term }, "restore staging began");
      return;
    }
    if (o === undefined || o.id !== f.id) return;
    if (f.offset !== o.size) {
      await this.drop(index, `a chunk is missing (expected offset ${o.size}, got ${f.offset})`);
      return;
    }
    await this.writeAt(f.id, f.offset, p.data);
    await this.save({
      throughIndex: index,
      open: { ...o, size: o.size + p.data.byteLength },
      committing: undefined,
    });
  }

  /**
   * Decides a commit entry. Refused (the same on every replica): the staging is dropped at once.
   * Accepted: the caller restores the store from `data` at (index, term) and then calls
   * `committed(index)`; a crash in between is settled at `open`. Throws CORRUPTED when the staged
   * bytes differ from the log's (this disk damaged them): applying stops and is retried.
   */
  async commit(e: StagedEntry, storeKind: string): Promise<CommitDecision> {
    if (e.payload?.kind !== "restore-commit") {
      throw new NexusError("INTERNAL", `entry ${e.index} is not a restore commit`);
    }
    const before = this.state.refused;
    if (e.index <= this.state.throughIndex && before?.index === e.index) {
      return {
        ok: false,
        outcome: { restored: false, reason: before.reason, message: before.message },
      };
    }
    await this.dropIfOlderTerm(e);
    const f = restoreFieldsOf(e.payload);
    const o = this.state.open;
    const refuse = async (reason: RestoreRefusal, message: string): Promise<CommitDecision> => {
      await this.drop(e.index, `refused: ${reason}`);
      await this.save({
        ...this.state,
        throughIndex: e.index,
        refused: { index: e.index, reason, message },
      });
      this.logger.warn({ index: e.index, reason }, "restore refused; nothing changed");
      return { ok: false, outcome: { restored: false, reason, message } };
    };
    if (f === undefined || o === undefined || o.id !== f.id) {
      return refuse(
        "not-staged",
        "the restore's chunks are not all in the log (it was interrupted: a leader change, a " +
          "lost chunk or a newer restore); nothing changed: run the restore again",
      );
    }
    if (o.size !== f.bytes) {
      return refuse(
        "incomplete",
        `${o.size} of ${f.bytes} bytes were staged; nothing changed: run the restore again`,
      );
    }
    const file = this.fileOf(o.id);
    const sha = await sha256Of(file, o.size);
    if (sha !== f.sha256) {
      throw new NexusError(
        "CORRUPTED",
        `the staged restore ${file} does not match its SHA-256 in the log (this disk damaged it); ` +
          "applying is retried: check the disk, or rebuild this replica (removeNode, addNode)",
      );
    }
    let from: AppliedPosition;
    try {
      const v = await verifyBackupFile(file);
      from = { index: v.header.index, term: v.header.term };
      if (v.header.storeKind !== storeKind) {
        return refuse(
          "wrong-store-kind",
          `the backup is of a ${v.header.storeKind} store and this cluster's store is ${storeKind}; ` +
            "nothing changed: restore a backup taken from a cluster with the same store",
        );
      }
    } catch (err) {
      if (err instanceof BackupFileError) {
        const reason: RestoreRefusal =
          err.reason === "newer-version"
            ? "newer-version"
            : err.reason === "not-a-backup"
              ? "not-a-backup"
              : "damaged";
        // Not err.message: it names this replica's path, and the outcome must be the same bytes
        // on every replica (consistency checks hash it).
        return refuse(reason, `${REFUSAL_TEXT[err.reason]}; nothing changed`);
      }
      throw err;
    }
    await this.save({ ...this.state, committing: e.index });
    const opened = await openBackupFile(file);
    return { ok: true, data: opened.data, bytes: o.size, from };
  }

  /** The store now holds the restore committed at `index`: drop its staging. */
  async committed(index: number): Promise<void> {
    const o = this.state.open;
    await this.save({ throughIndex: index, open: undefined, committing: undefined });
    if (o !== undefined) {
      this.closed.push({ begin: o.beginIndex, end: index });
      this.trimClosed();
      await rm(this.fileOf(o.id), { force: true });
    }
  }

  /**
   * A snapshot at `index` was restored into the store: no restore is open there (no node takes
   * a snapshot where one is), so every staged file goes.
   */
  async reset(index: number): Promise<void> {
    const o = this.state.open;
    if (o !== undefined) this.logger.info({ id: o.id, index }, "staged restore dropped: snapshot");
    await this.save({ throughIndex: index, open: undefined, committing: undefined });
    this.closed.length = 0;
    this.unknownBelow = 0;
    await this.removeStrays();
  }

  private async drop(index: number, why: string): Promise<void> {
    const o = this.state.open;
    if (o === undefined) return;
    await this.save({ throughIndex: index, open: undefined, committing: undefined });
    this.closed.push({ begin: o.beginIndex, end: index });
    this.trimClosed();
    await rm(this.fileOf(o.id), { force: true });
    this.logger.warn({ id: o.id, index, why }, "staged restore dropped");
  }

  private trimClosed(): void {
    while (this.closed.length > 16) this.closed.shift();
  }

  /** Writes `data` at `offset` of restore `id`'s file, cuts what follows, and fsyncs. */
  private async writeAt(id: string, offset: number, data: Uint8Array): Promise<void> {
    const fh = await open(this.fileOf(id), offset === 0 ? "w" : "r+");
    try {
      let at = 0;
      while (at < data.byteLength) {
        const { bytesWritten } = await fh.write(data, at, data.byteLength - at, offset + at);
        at += bytesWritten;
      }
      await fh.truncate(offset + data.byteLength);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (offset === 0) await this.syncDir();
  }

  /** Replaces state.json atomically (temporary file, fsync, rename, fsync the folder). */
  private async save(next: StagingState): Promise<void> {
    const s: StagingState =
      next.refused === undefined && this.state.refused !== undefined
        ? { ...next, refused: this.state.refused }
        : next;
    const tmp = join(this.dir, `${STATE}.tmp`);
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(JSON.stringify(s));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, STATE));
    await this.syncDir();
    this.state = s;
  }

  private async syncDir(): Promise<void> {
    const d = await open(this.dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  /** Removes staged files of restores that are not open (dropped before a crash). */
  private async removeStrays(): Promise<void> {
    for (const n of await readdir(this.dir)) {
      if (n === STATE) continue;
      if (this.state.open !== undefined && n === `${this.state.open.id}.part`) continue;
      await rm(join(this.dir, n), { force: true });
    }
  }
}

function parseState(text: string, file: string): StagingState {
  const bad = (): NexusError =>
    new NexusError(
      "CORRUPTED",
      `${file} is not a valid restore staging state; remove the folder it is in only if no ` +
        "restore into the cluster is under way (a staged restore is then refused at its commit)",
    );
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw bad();
  }
  if (typeof j !== "object" || j === null) throw bad();
  const r = j as Record<string, unknown>;
  const idx = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!idx(r.throughIndex)) throw bad();
  if (r.committing !== undefined && !idx(r.committing)) throw bad();
  let o: OpenRestore | undefined;
  if (r.open !== undefined) {
    const x = r.open as Record<string, unknown>;
    if (
      typeof x !== "object" ||
      x === null ||
      typeof x.id !== "string" ||
      !ID_RE.test(x.id) ||
      !idx(x.term) ||
      !idx(x.beginIndex) ||
      !idx(x.size)
    ) {
      throw bad();
    }
    o = { id: x.id, term: x.term, beginIndex: x.beginIndex, size: x.size };
  }
  let refused: StagingState["refused"];
  if (r.refused !== undefined) {
    const x = r.refused as Record<string, unknown>;
    if (
      typeof x !== "object" ||
      x === null ||
      !idx(x.index) ||
      typeof x.reason !== "string" ||
      typeof x.message !== "string"
    ) {
      throw bad();
    }
    refused = { index: x.index, reason: x.reason as RestoreRefusal, message: x.message };
  }
  return {
    throughIndex: r.throughIndex,
    open: o,
    committing: r.committing === undefined ? undefined : (r.committing as number),
    ...(refused === undefined ? {} : { refused }),
  };
}

/** SHA-256 (hex) of the first `size` bytes of a file. */
async function sha256Of(file: string, size: number): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - at), at);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}
