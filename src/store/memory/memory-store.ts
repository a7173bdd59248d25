/**
 * MemoryStore: a small deterministic key-value state machine kept in memory, for tests and for
 * trying Nexus without a database. Commands are UTF-8 text; the value is the rest of the line.
 *
 * Writes (save):  set <key> <value> | delete <key> | cas <key> <expected> <new> (result true/false)
 *                 | append <key> <value> | incr <key> (result: the new number)
 *                 | now (result: the entry's timestamp) | random (result: from the entry's seed)
 *                 | fail <message> (a statement error, for tests)
 * Reads (load):   get <key> | keys (JSON array, sorted) | dump (JSON object)
 *
 * Its state does not survive the process; `lastApplied()` starts at 0 when a new MemoryStore is
 * created, so a restarted node re-applies its whole log (or restores a snapshot).
 */
import { createHash } from "node:crypto";
import { StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
} from "../store.js";
import { pendingDigest } from "../store.js";
import type { RequestRecord } from "../request-records.js";
import {
  DEFAULT_REQUEST_WINDOW_MS,
  REQUEST_PURGE_BATCH,
  decide,
  purgeBefore,
  recordOf,
  validateRequestWindow,
} from "../request-records.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

const USAGE =
  "valid commands: set <key> <value>, delete <key>, cas <key> <expected> <new>, " +
  "append <key> <value>, incr <key>, now, random, fail <message>";

function parse(text: string): { op: string; args: string[]; rest: string } {
  const t = text.trim();
  const sp = t.indexOf(" ");
  const op = (sp < 0 ? t : t.slice(0, sp)).toLowerCase();
  const tail = sp < 0 ? "" : t.slice(sp + 1);
  return { op, args: tail.split(" ").filter((x) => x !== ""), rest: tail };
}

/** Options of a MemoryStore. */
export interface MemoryStoreOptions {
  /** How long request ids are remembered, in ms of the entries' timestamps (default 10 min). */
  readonly requestWindowMs?: number;
}

export class MemoryStore implements Store {
  readonly kind = "memory";
  private data = new Map<string, string>();
  /** Request records by id (request-records.ts); in backups, not in digests. */
  private requests = new Map<string, RequestRecord>();
  private applied: AppliedPosition = { index: 0, term: 0 };
  private available = true;
  private readonly requestWindowMs: number;

  constructor(opts: MemoryStoreOptions = {}) {
    this.requestWindowMs = validateRequestWindow(opts.requestWindowMs ?? DEFAULT_REQUEST_WINDOW_MS);
  }

  async open(): Promise<AppliedPosition> {
    return this.applied;
  }

  async close(): Promise<void> {}

  /** Makes every call fail with StoreUnavailableError (to test the runtime's handling). */
  setAvailable(available: boolean): void {
    this.available = available;
  }

  private check(): void {
    if (!this.available) throw new StoreUnavailableError("memory store is marked unavailable");
  }

  async lastApplied(): Promise<AppliedPosition> {
    this.check();
    return this.applied;
  }

  async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    this.check();
    const out: ApplyResult[] = [];
    for (const e of entries) {
      if (e.index <= this.applied.index) {
        out.push({ ok: true, data: new Uint8Array(0) });
        continue;
      }
      out.push(e.command === undefined ? { ok: true, data: new Uint8Array(0) } : this.once(e));
      this.applied = { index: e.index, term: e.term };
    }
    const last = entries.at(-1);
    if (last !== undefined) this.purge(last.timestampMs);
    return out;
  }

  /** Applies a command unless its request id is recorded; records the result. */
  private once(e: ApplyEntry): ApplyResult {
    const key = e.request;
    if (key === undefined) return this.exec(e);
    const d = decide(e, key, this.requests.get(key.id), this.requestWindowMs);
    if ("result" in d) return d.result;
    const result = this.exec(e);
    this.requests.set(key.id, recordOf(e, key, result));
    return result;
  }

  /** Drops up to REQUEST_PURGE_BATCH records dead for an entry at `timestampMs`. */
  private purge(timestampMs: number): void {
    const before = purgeBefore(timestampMs, this.requestWindowMs);
    let n = 0;
    for (const [id, r] of this.requests) {
      if (n >= REQUEST_PURGE_BATCH) break;
      if (r.keptFromMs < before) {
        this.requests.delete(id);
        n++;
      }
    }
  }

  /** The record of a request id, if one is stored (dead or live). */
  requestRecord(id: string): Promise<RequestRecord | undefined> {
    return Promise.resolve(this.requests.get(id));
  }

  private exec(e: ApplyEntry): ApplyResult {
    const { op, args, rest } = parse(dec.decode(e.command!.data));
    const ok = (s: string): ApplyResult => ({ ok: true, data: enc.encode(s) });
    const err = (s: string): ApplyResult => ({ ok: false, error: s });
    const key = args[0];
    const valueAfterKey = key === undefined ? "" : rest.slice(rest.indexOf(key) + key.length + 1);
    switch (op) {
      case "set":
        if (key === undefined || args.length < 2) return err(`usage: set <key> <value>`);
        this.data.set(key, valueAfterKey);
        return ok("OK");
      case "delete":
        if (key === undefined) return err("usage: delete <key>");
        return ok(this.data.delete(key) ? "1" : "0");
      case "cas": {
        if (key === undefined || args.length !== 3) return err("usage: cas <key> <expected> <new>");
        const cur = this.data.get(key) ?? "";
        if (cur !== args[1]) return ok("false");
        this.data.set(key, args[2]!);
        return ok("true");
      }
      case "append":
        if (key === undefined || args.length < 2) return err("usage: append <key> <value>");
        this.data.set(key, (this.data.get(key) ?? "") + valueAfterKey);
        return ok("OK");
      case "incr": {
        if (key === undefined) return err("usage: incr <key>");
        const n = Number(this.data.get(key) ?? "0");
        if (!Number.isSafeInteger(n)) return err(`value of ${key} is not an integer`);
        this.data.set(key, String(n + 1));
        return ok(String(n + 1));
      }
      case "now":
        return ok(String(e.timestampMs));
      case "random":
        return ok(String(e.seed % 1_000_000));
      case "fail":
        return err(rest === "" ? "failed on request" : rest);
      default:
        return err(`unknown command "${op}"; ${USAGE}`);
    }
  }

  async load(q: StoreCommand): Promise<Uint8Array> {
    this.check();
    const { op, args } = parse(dec.decode(q.data));
    if (op === "get" && args.length === 1) return enc.encode(this.data.get(args[0]!) ?? "");
    if (op === "keys" && args.length === 0)
      return enc.encode(JSON.stringify([...this.data.keys()].sort()));
    if (op === "dump" && args.length === 0) {
      return enc.encode(
        JSON.stringify(Object.fromEntries([...this.data].sort(([a], [b]) => (a < b ? -1 : 1)))),
      );
    }
    throw new StoreError(`bad query "${dec.decode(q.data)}": valid queries: get <key>, keys, dump`);
  }

  async backup(): Promise<StoreBackup> {
    this.check();
    const rows = [...this.data].sort(([a], [b]) => (a < b ? -1 : 1));
    const requests = [...this.requests.values()].map(requestLine);
    const position = this.applied;
    async function* stream(): AsyncIterable<Uint8Array> {
      yield enc.encode(JSON.stringify({ nexusMemoryBackup: 1, ...position }) + "\n");
      for (const [k, v] of rows) yield enc.encode(JSON.stringify([k, v]) + "\n");
      for (const r of requests) yield enc.encode(JSON.stringify(r) + "\n");
    }
    return { position, stream: stream() };
  }

  async restore(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    from: AppliedPosition = position,
  ): Promise<void> {
    this.check();
    let text = "";
    for await (const c of stream) text += dec.decode(c, { stream: true });
    const lines = text.split("\n").filter((l) => l !== "");
    const next = new Map<string, string>();
    const nextRequests = new Map<string, RequestRecord>();
    try {
      const head = JSON.parse(lines[0] ?? "") as { nexusMemoryBackup?: number; index?: number };
      if (head.nexusMemoryBackup !== 1 || head.index !== from.index) throw new Error("bad header");
      for (const l of lines.slice(1)) {
        const kv = JSON.parse(l) as unknown;
        if (kv !== null && typeof kv === "object" && !Array.isArray(kv)) {
          const r = recordFromLine(kv as Record<string, unknown>);
          nextRequests.set(r.id, r);
          continue;
        }
        if (
          !Array.isArray(kv) ||
          kv.length !== 2 ||
          typeof kv[0] !== "string" ||
          typeof kv[1] !== "string"
        ) {
          throw new Error("bad row");
        }
        next.set(kv[0], kv[1]);
      }
    } catch (err) {
      throw new StoreError(
        `not a memory-store backup at index ${position.index}: ${(err as Error).message}`,
      );
    }
    this.data = next;
    this.requests = nextRequests;
    this.applied = position;
  }

  /** Computed at once on a copy of the state (this store is for tests and small data). */
  async digest(): Promise<PendingDigest> {
    this.check();
    const h = createHash("sha256");
    for (const [k, v] of [...this.data].sort(([a], [b]) => (a < b ? -1 : 1))) {
      h.update(JSON.stringify([k, v]));
      h.update("\n");
    }
    return pendingDigest(this.applied, Promise.resolve(h.digest("hex")));
  }
}

/** A request record as one backup line (an object; data rows are arrays). */
function requestLine(r: RequestRecord): Record<string, unknown> {
  return {
    request: r.id,
    hash: r.hash,
    index: r.index,
    keptFromMs: r.keptFromMs,
    ...(r.result.ok
      ? { data: Buffer.from(r.result.data).toString("base64") }
      : { error: r.result.error }),
  };
}

function recordFromLine(o: Record<string, unknown>): RequestRecord {
  const { request, hash, index, keptFromMs, data, error } = o;
  if (
    typeof request !== "string" ||
    typeof hash !== "string" ||
    typeof index !== "number" ||
    typeof keptFromMs !== "number" ||
    (typeof data !== "string") === (typeof error !== "string")
  ) {
    throw new Error("bad request record");
  }
  const result: ApplyResult =
    typeof data === "string"
      ? { ok: true, data: new Uint8Array(Buffer.from(data, "base64")) }
      : { ok: false, error: error as string };
  return { id: request, hash, index, keptFromMs, result };
}
