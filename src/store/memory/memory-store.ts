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

export class MemoryStore implements Store {
  readonly kind = "memory";
  private data = new Map<string, string>();
  private applied: AppliedPosition = { index: 0, term: 0 };
  private available = true;

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
      out.push(e.command === undefined ? { ok: true, data: new Uint8Array(0) } : this.exec(e));
      this.applied = { index: e.index, term: e.term };
    }
    return out;
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
    const position = this.applied;
    async function* stream(): AsyncIterable<Uint8Array> {
      yield enc.encode(JSON.stringify({ nexusMemoryBackup: 1, ...position }) + "\n");
      for (const [k, v] of rows) yield enc.encode(JSON.stringify([k, v]) + "\n");
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
    try {
      const head = JSON.parse(lines[0] ?? "") as { nexusMemoryBackup?: number; index?: number };
      if (head.nexusMemoryBackup !== 1 || head.index !== from.index) throw new Error("bad header");
      for (const l of lines.slice(1)) {
        const kv = JSON.parse(l) as unknown;
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
