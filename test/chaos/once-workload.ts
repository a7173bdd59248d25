/**
 * The exactly-once workload (issue 21), beside the register workload of workload.ts: clients
 * send non-idempotent saves (counter increments, inserts) each with a request id, and retry one
 * through every failure (timeouts, lost leaders, kills, partitions) with the same id on other
 * nodes until its deadline. After an acknowledged save, a client reads it back on a random node
 * (maybe a stale one) with `min-index` set to the index the save answered: read-your-writes.
 *
 * At the end (`settle`, on the healed cluster) the outcome of every save left unknown is asked
 * with RequestOutcome. Besides, an acknowledged save is now and then sent again with its id through
 * another node, as if its answer had been lost: it must answer the first result and index and not
 * apply again. `judgeOnce` checks, from the final rows:
 * - every counter is at least its acknowledged increments and at most those plus the unknown
 *   ones (the issue's bound), and exactly the acknowledged plus the unknown ones that the request
 *   records say committed;
 * - no insert's tag appears twice; an acknowledged one appears once, a failed one never;
 * - no read-your-writes read missed the client's own save (an own counter below the client's
 *   acknowledged increments, or its insert not there), nor saw it twice.
 *
 * Tables: `counters(k text primary key, n integer)` and `items(tag text)`, with no unique
 * constraint on `tag`, so that a save applied twice shows as a second row rather than an error.
 */
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";
import { MIN_INDEX_ARG } from "../../src/api/request-args.js";
import { REQUEST_ID_ARG, REQUEST_ISSUED_AT_ARG } from "../../src/api/service.js";
import { isNexusError } from "../../src/errors/index.js";
import { outcomeOfError } from "./outcome.js";
import type { SeededRng } from "./seeded-rng.js";

export const ONCE_TABLES = [
  "create table if not exists counters (k text primary key, n integer not null)",
  "create table if not exists items (tag text not null)",
] as const;
export const INCR_SQL =
  "insert into counters (k, n) values (?, 1) on conflict (k) do update set n = n + 1";
export const INSERT_SQL = "insert into items (tag) values (?)";
const COUNTER_SQL = "select n from counters where k = ?";
const TAG_COUNT_SQL = "select count(*) as n from items where tag = ?";
const ALL_COUNTERS_SQL = "select k, n from counters order by k";
const TAG_COUNTS_SQL = "select tag, count(*) as n from items group by tag";

/** The counter every client increments (the others are one per client, `own-<client>`). */
export const SHARED_COUNTER = "shared";

/** One exactly-once save as it ended for its client. */
export interface OnceOp {
  readonly client: number;
  readonly kind: "incr" | "insert";
  /** The counter (incr) or the tag (insert). */
  readonly key: string;
  readonly requestId: string;
  /**
   * ok: acknowledged; failed: no attempt can have been applied (every one was refused before
   * it was proposed); unknown: at least one attempt may have been applied, none acknowledged.
   */
  readonly outcome: "ok" | "failed" | "unknown";
  /** The index the save answered, and its result (ok only). */
  readonly index?: number;
  readonly result?: string;
  /** When it was first issued (the `request-issued-at` sent), ms since the epoch. */
  readonly issuedAt: number;
  readonly attempts: number;
  readonly startMs: number;
  readonly endMs: number;
  /** The last error, when not ok. */
  readonly error?: string;
}

/**
 * An acknowledged save sent again with its id, as a client does when the answer was lost: it must
 * answer the first result and index, and not apply again (the counters and tags tell).
 */
export interface Resend {
  readonly requestId: string;
  readonly index: number;
  readonly result: string;
  /** The repeat's answer, when it came back ok. */
  readonly again?: { readonly index: number; readonly result: string };
}

/** A read-your-writes read: a client's load at `minIndex` (its save's index) on `node`. */
export interface RywRead {
  readonly client: number;
  readonly kind: "incr" | "insert";
  readonly key: string;
  readonly minIndex: number;
  readonly node: number;
  /** What the client's own saves allow: the value read must lie in [min, max]. */
  readonly min: number;
  readonly max: number;
  /** The value read (a counter, or the number of rows with the tag); undefined when the node
   * did not answer (e.g. TIMEOUT: it could not reach the index in time, which is allowed). */
  readonly value?: number;
  readonly error?: string;
}

export interface OnceOptions {
  readonly clients: number;
  /** The nodes' gRPC addresses, by node number - 1. */
  readonly addrs: readonly string[];
  readonly rng: SeededRng;
  /** The run's monotonic clock, ms. */
  readonly now: () => number;
  /** Deadline of each call, ms. */
  readonly timeoutMs: number;
  /** How long a save is retried with its id, from its first attempt, ms. */
  readonly retryForMs: number;
  /** Makes request ids unique to the run. */
  readonly runTag: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The only number in a one-row, one-column result (`[{"n": 3}]`), 0 for no row. */
export function numberOf(res: Uint8Array): number | undefined {
  try {
    const rows = JSON.parse(dec.decode(res)) as unknown;
    if (!Array.isArray(rows)) return undefined;
    if (rows.length === 0) return 0;
    const v = Object.values(rows[0] as object)[0] as unknown;
    return rows.length === 1 && typeof v === "number" ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The running exactly-once clients; `stop()` waits for each one's current save to settle. */
export class OnceWorkload {
  readonly ops: OnceOp[] = [];
  readonly reads: RywRead[] = [];
  readonly resends: Resend[] = [];
  private stopping = false;
  private running: Promise<void>[] = [];
  private readonly conns: NexusClient[];

  constructor(private readonly o: OnceOptions) {
    this.conns = o.addrs.map((a) => createNexusClient(a, { timeoutMs: o.timeoutMs }));
  }

  start(): void {
    for (let c = 0; c < this.o.clients; c++) this.running.push(this.client(c, this.o.rng.fork()));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
    this.running = [];
  }

  close(): void {
    for (const c of this.conns) c.close();
  }

  private async client(c: number, rng: SeededRng): Promise<void> {
    const n = this.o.addrs.length;
    let home = 1 + rng.int(n);
    const own = `own-${c}`;
    let ownAcked = 0;
    let ownUnknown = 0;
    const move = (): number => {
      home = 1 + ((home + rng.int(n - 1)) % n);
      return home;
    };
    for (let seq = 0; !this.stopping; seq++) {
      const kind = rng.weighted({ own: 40, shared: 20, insert: 40 });
      const key = kind === "own" ? own : kind === "shared" ? SHARED_COUNTER : `t-${c}-${seq}`;
      const id = { requestId: `${this.o.runTag}-${c}-${seq}`, issuedAt: Date.now() };
      const opKind = kind === "insert" ? "insert" : "incr";
      const op = await this.saveOnce(c, opKind, key, id, move, home);
      this.ops.push(op);
      if (op.outcome === "ok" && rng.chance(0.3)) {
        // The answer "was lost": the same request again, through another node.
        const again = await this.saveOnce(c, opKind, key, id, move, move());
        this.resends.push({
          requestId: id.requestId,
          index: op.index!,
          result: op.result!,
          ...(again.outcome === "ok"
            ? { again: { index: again.index!, result: again.result! } }
            : {}),
        });
      }
      if (key === own) {
        if (op.outcome === "ok") ownAcked++;
        if (op.outcome === "unknown") ownUnknown++;
      }
      if (op.outcome !== "ok" || kind === "shared" || !rng.chance(0.5)) continue;
      // Read it back on any node (a stale one too) with the save's index.
      const node = 1 + rng.int(n);
      const bounds =
        kind === "own" ? { min: ownAcked, max: ownAcked + ownUnknown } : { min: 1, max: 1 };
      this.reads.push(await this.readBack(c, op, node, bounds));
    }
  }

  /** One save with a request id, retried with it on other nodes until `retryForMs`. */
  private async saveOnce(
    client: number,
    kind: "incr" | "insert",
    key: string,
    id: { readonly requestId: string; readonly issuedAt: number },
    move: () => number,
    home: number,
  ): Promise<OnceOp> {
    const { requestId, issuedAt } = id;
    const args = {
      params: JSON.stringify([key]),
      [REQUEST_ID_ARG]: requestId,
      [REQUEST_ISSUED_AT_ARG]: String(issuedAt),
    };
    const sql = enc.encode(kind === "incr" ? INCR_SQL : INSERT_SQL);
    const startMs = this.o.now();
    let node = home;
    let maybeApplied = false;
    for (let attempts = 1; ; attempts++) {
      try {
        const r = await this.conns[node - 1]!.saveWithIndex(sql, args);
        const base = { client, kind, key, requestId, issuedAt, attempts, startMs };
        return {
          ...base,
          endMs: this.o.now(),
          outcome: "ok",
          index: r.index,
          result: dec.decode(r.data),
        };
      } catch (err) {
        const o = outcomeOfError(err);
        if (o.outcome === "unknown") maybeApplied = true;
        // A statement error is the request's recorded result: retrying gives the same.
        const final = isNexusError(err, "STORE_ERROR") || isNexusError(err, "INVALID_ARGUMENT");
        if (final || Date.now() - issuedAt >= this.o.retryForMs) {
          return {
            client,
            kind,
            key,
            requestId,
            issuedAt,
            outcome: maybeApplied && !final ? "unknown" : "failed",
            attempts,
            startMs,
            endMs: this.o.now(),
            error: o.error,
          };
        }
        node = move();
        await sleep(100);
      }
    }
  }

  private async readBack(
    client: number,
    op: OnceOp,
    node: number,
    bounds: { min: number; max: number },
  ): Promise<RywRead> {
    const base = { client, kind: op.kind, key: op.key, minIndex: op.index!, node, ...bounds };
    try {
      const res = await this.conns[node - 1]!.load(
        enc.encode(op.kind === "incr" ? COUNTER_SQL : TAG_COUNT_SQL),
        { params: JSON.stringify([op.key]), [MIN_INDEX_ARG]: String(op.index!) },
      );
      const value = numberOf(res);
      return value === undefined
        ? { ...base, error: `malformed: ${dec.decode(res)}` }
        : { ...base, value };
    } catch (err) {
      return { ...base, error: outcomeOfError(err).error };
    }
  }

  /**
   * On the healed cluster: the outcome of every unknown save (RequestOutcome), then the final
   * counters and tags (linearizable loads), judged by judgeOnce. `node()` names a node to ask
   * (the leader, when known); each question is retried for up to 30 s.
   */
  async settle(node: () => Promise<number>): Promise<OnceVerdict> {
    const ask = async <T>(f: (c: NexusClient) => Promise<T>): Promise<T> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          return await f(this.conns[(await node()) - 1]!);
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(300);
        }
      }
    };
    const committed = new Set<string>();
    for (const op of this.ops.filter((o) => o.outcome === "unknown")) {
      const r = await ask((c) => c.requestOutcome(op.requestId));
      if (r.committed && r.result.ok) committed.add(op.requestId);
    }
    const rowsOf = async (sql: string): Promise<Record<string, unknown>[]> =>
      JSON.parse(dec.decode(await ask((c) => c.load(enc.encode(sql))))) as Record<
        string,
        unknown
      >[];
    const counters = new Map(
      (await rowsOf(ALL_COUNTERS_SQL)).map((r) => [String(r["k"]), Number(r["n"])]),
    );
    const tags = new Map(
      (await rowsOf(TAG_COUNTS_SQL)).map((r) => [String(r["tag"]), Number(r["n"])]),
    );
    return judgeOnce({
      ops: this.ops,
      reads: this.reads,
      resends: this.resends,
      committed,
      counters,
      tags,
    });
  }
}

/** What judgeOnce found. */
export interface OnceVerdict {
  readonly ok: boolean;
  /** One line per finding (empty when ok). */
  readonly problems: readonly string[];
  /** Counts for the report. */
  readonly saves: { readonly ok: number; readonly failed: number; readonly unknown: number };
  readonly unknownCommitted: number;
  readonly retried: number;
  /** Acknowledged saves sent again, and of those answered ok. */
  readonly resent: { readonly sent: number; readonly answered: number };
  readonly reads: { readonly ok: number; readonly unavailable: number };
  readonly counters: readonly {
    readonly key: string;
    readonly value: number;
    readonly acked: number;
    readonly unknown: number;
  }[];
}

/** Judges the end state against what the clients were told (see the top of this file). */
export function judgeOnce(r: {
  readonly ops: readonly OnceOp[];
  readonly reads: readonly RywRead[];
  readonly resends: readonly Resend[];
  /** Request ids of unknown saves that RequestOutcome says committed (with an ok result). */
  readonly committed: ReadonlySet<string>;
  readonly counters: ReadonlyMap<string, number>;
  /** Rows per tag. */
  readonly tags: ReadonlyMap<string, number>;
}): OnceVerdict {
  const problems: string[] = [];
  const perKey = new Map<string, { acked: number; unknown: number; committed: number }>();
  for (const op of r.ops.filter((o) => o.kind === "incr")) {
    const k = perKey.get(op.key) ?? { acked: 0, unknown: 0, committed: 0 };
    if (op.outcome === "ok") k.acked++;
    if (op.outcome === "unknown") {
      k.unknown++;
      if (r.committed.has(op.requestId)) k.committed++;
    }
    perKey.set(op.key, k);
  }
  for (const [key, value] of r.counters) {
    if (!perKey.has(key)) problems.push(`counter ${key} = ${value}, but no client incremented it`);
  }
  const counters = [...perKey].map(([key, k]) => {
    const value = r.counters.get(key) ?? 0;
    if (value < k.acked || value > k.acked + k.unknown) {
      problems.push(
        `counter ${key} = ${value}: not within ${k.acked} acknowledged and ${k.acked + k.unknown} ` +
          `with the ${k.unknown} unknown`,
      );
    } else if (value !== k.acked + k.committed) {
      problems.push(
        `counter ${key} = ${value}, but ${k.acked} acknowledged + ${k.committed} unknown that ` +
          "committed (by their request records) make " +
          String(k.acked + k.committed),
      );
    }
    return { key, value, ...k };
  });
  const inserts = new Map(r.ops.filter((o) => o.kind === "insert").map((o) => [o.key, o]));
  for (const [tag, n] of r.tags) {
    if (n > 1) problems.push(`insert ${tag} appears ${n} times`);
    if (!inserts.has(tag)) problems.push(`insert ${tag} is there, but no client sent it`);
  }
  for (const op of inserts.values()) {
    const n = r.tags.get(op.key) ?? 0;
    const want =
      op.outcome === "ok" ? 1 : op.outcome === "failed" ? 0 : r.committed.has(op.requestId) ? 1 : 0;
    if (n !== want) {
      problems.push(
        `insert ${op.key} (${op.outcome}${op.outcome === "unknown" ? `, ${want === 1 ? "" : "not "}committed by its record` : ""}) appears ${n} times, expected ${want}`,
      );
    }
  }
  for (const x of r.reads) {
    if (x.value === undefined) continue;
    if (x.value < x.min || x.value > x.max) {
      problems.push(
        `read-your-writes: client ${x.client} read ${x.kind === "incr" ? `counter ${x.key} = ` : `${x.key} x`}${x.value} ` +
          `on node ${x.node} at min-index ${x.minIndex}, expected ${x.min === x.max ? x.min : `${x.min} to ${x.max}`}`,
      );
    }
  }
  for (const x of r.resends) {
    if (x.again === undefined) continue;
    if (x.again.index !== x.index || x.again.result !== x.result) {
      problems.push(
        `request ${x.requestId} sent again answered index ${x.again.index} '${x.again.result}', ` +
          `not the first answer, index ${x.index} '${x.result}'`,
      );
    }
  }
  const count = (o: OnceOp["outcome"]): number => r.ops.filter((x) => x.outcome === o).length;
  return {
    ok: problems.length === 0,
    problems,
    saves: { ok: count("ok"), failed: count("failed"), unknown: count("unknown") },
    unknownCommitted: r.ops.filter((o) => o.outcome === "unknown" && r.committed.has(o.requestId))
      .length,
    retried: r.ops.filter((o) => o.attempts > 1).length,
    resent: {
      sent: r.resends.length,
      answered: r.resends.filter((x) => x.again !== undefined).length,
    },
    reads: {
      ok: r.reads.filter((x) => x.value !== undefined).length,
      unavailable: r.reads.filter((x) => x.value === undefined).length,
    },
    counters,
  };
}

/** The report's section. */
export function describeOnce(v: OnceVerdict): string {
  const lines = [
    `exactly-once saves (request ids, retried through faults): ${v.ok ? "OK" : "VIOLATION"}`,
    `  saves: ${v.saves.ok} ok, ${v.saves.failed} failed, ${v.saves.unknown} unknown after their deadline ` +
      `(${v.unknownCommitted} of them committed, by their request records); ${v.retried} retried; ` +
      `${v.resent.sent} acknowledged ones sent again as if their answer was lost (${v.resent.answered} answered)`,
    `  counters: ${v.counters.map((c) => `${c.key}=${c.value} (acked ${c.acked}, unknown ${c.unknown})`).join(", ")}`,
    `  read-your-writes (min-index on a random node): ${v.reads.ok} read, ${v.reads.unavailable} not answered in time`,
    ...v.problems.map((p) => `  PROBLEM: ${p}`),
  ];
  return `${lines.join("\n")}\n`;
}
