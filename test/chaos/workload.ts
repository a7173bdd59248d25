/**
 * The chaos workload: N sequential clients doing reads, writes and compare-and-set on a few
 * registers through the gRPC API, each operation recorded in the history format of history.ts.
 *
 * A register is a row of `regs(k text primary key, v integer)`; no row is the initial `null`.
 * - write: `insert ... on conflict(k) do update set v = excluded.v` (an upsert);
 * - cas from a value: `update regs set v = ? where k = ? and v = ?` (rowsAffected 1: swapped);
 * - cas from null: `insert ... on conflict(k) do nothing` (rowsAffected 1: the row was absent);
 * - read: `select v from regs where k = ?` with the run's consistency, or `local` for a share.
 * Every write and cas writes a value never written before (a run-wide counter), so a read names
 * the write it saw and the checker has power.
 *
 * Each client sticks to a node and moves on when an operation there fails (see `client`); a share
 * of local reads goes to nodes the nemesis says are likely stale (isolated, in a minority, just
 * resumed or restarted), so the suite demonstrably sees stale local reads.
 */
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";
import type { Operation, OpKind, ReadMode } from "./history.js";
import { outcomeOfError } from "./outcome.js";
import type { SeededRng } from "./seeded-rng.js";

export const CREATE_TABLE = "create table if not exists regs (k text primary key, v integer)";
export const WRITE_SQL =
  "insert into regs (k, v) values (?, ?) on conflict (k) do update set v = excluded.v";
export const CAS_SQL = "update regs set v = ? where k = ? and v = ?";
export const CAS_FROM_NULL_SQL = "insert into regs (k, v) values (?, ?) on conflict (k) do nothing";
export const READ_SQL = "select v from regs where k = ?";

export interface WorkloadOptions {
  /** Number of sequential clients. */
  readonly clients: number;
  /** Register names. */
  readonly keys: readonly string[];
  /** The consistency of the run's reads (not counting the local share). */
  readonly readMode: Exclude<ReadMode, "local">;
  /** Share of reads sent with consistency=local, in [0, 1]. */
  readonly localShare: number;
  /** Of the local reads, the share aimed at a likely stale node when there is one. */
  readonly staleBias: number;
  /** Mean pause between a client's operations, ms (uniform in [0, 2 * mean]). */
  readonly thinkMs: number;
  /** Deadline of each call, ms. */
  readonly timeoutMs: number;
  /** The nodes' gRPC addresses (host:port), by node number - 1. */
  readonly addrs: readonly string[];
  readonly rng: SeededRng;
  /** The run's monotonic clock, ms. */
  readonly now: () => number;
  /** Node numbers (1-based) likely to serve stale local reads now. */
  readonly staleNodes: () => readonly number[];
}

/** Per operation, the chance that a client moves to another node although all went well. */
const ROTATE = 0.02;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Parses a save's result: rowsAffected, or undefined when it is not the expected JSON. */
export function rowsAffectedOf(res: Uint8Array): number | undefined {
  try {
    const v = JSON.parse(dec.decode(res)) as { rowsAffected?: unknown };
    return typeof v.rowsAffected === "number" ? v.rowsAffected : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a read's rows: the register's value, null for no row, undefined when malformed. */
export function registerOf(res: Uint8Array): number | null | undefined {
  try {
    const rows = JSON.parse(dec.decode(res)) as unknown;
    if (!Array.isArray(rows)) return undefined;
    if (rows.length === 0) return null;
    const v = (rows[0] as { v?: unknown }).v;
    return rows.length === 1 && typeof v === "number" && Number.isSafeInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** What the workload needs of a client: saves and loads. */
export type RegisterClient = Pick<NexusClient, "save" | "load">;

/** One operation to perform, before it is sent. */
export interface Invocation {
  readonly kind: OpKind;
  readonly key: string;
  readonly value?: number;
  readonly expected?: number | null;
  readonly mode?: ReadMode;
}

/**
 * Performs one invocation against a node and returns the recorded fields that depend on how it
 * ended (outcome, result, casOk, error).
 */
export async function perform(
  c: RegisterClient,
  inv: Invocation,
): Promise<Pick<Operation, "outcome" | "result" | "casOk" | "error">> {
  try {
    switch (inv.kind) {
      case "read": {
        const args: Record<string, string> = { params: JSON.stringify([inv.key]) };
        // The linearizable default is sent as the default (no arg), as a plain client would.
        if (inv.mode !== undefined && inv.mode !== "linearizable") args["consistency"] = inv.mode;
        const r = registerOf(await c.load(enc.encode(READ_SQL), args));
        if (r === undefined) return { outcome: "unknown", error: "malformed read result" };
        return { outcome: "ok", result: r };
      }
      case "write": {
        const res = await c.save(enc.encode(WRITE_SQL), {
          params: JSON.stringify([inv.key, inv.value]),
        });
        if (rowsAffectedOf(res) !== 1) {
          return { outcome: "unknown", error: `unexpected write result ${dec.decode(res)}` };
        }
        return { outcome: "ok" };
      }
      case "cas": {
        const res =
          inv.expected === null || inv.expected === undefined
            ? await c.save(enc.encode(CAS_FROM_NULL_SQL), {
                params: JSON.stringify([inv.key, inv.value]),
              })
            : await c.save(enc.encode(CAS_SQL), {
                params: JSON.stringify([inv.value, inv.key, inv.expected]),
              });
        const n = rowsAffectedOf(res);
        if (n !== 0 && n !== 1) {
          return { outcome: "unknown", error: `unexpected cas result ${dec.decode(res)}` };
        }
        return { outcome: "ok", casOk: n === 1 };
      }
    }
  } catch (err) {
    return outcomeOfError(err);
  }
}

/** The running workload; `stop()` ends it once every client's current operation is done. */
export class Workload {
  /** Completed operations, in completion order. */
  readonly ops: Operation[] = [];
  private nextId = 0;
  private nextValue = 1;
  private stopping = false;
  private running: Promise<void>[] = [];
  private readonly conns: NexusClient[];
  /** The last value each register was seen to hold (for cas expectations). */
  private readonly lastSeen = new Map<string, number | null>();
  /** Local reads aimed at a likely stale node. */
  biasedLocalReads = 0;

  constructor(private readonly o: WorkloadOptions) {
    this.conns = o.addrs.map((a) => createNexusClient(a, { timeoutMs: o.timeoutMs }));
  }

  /** Starts the clients. */
  start(): void {
    for (let c = 0; c < this.o.clients; c++) {
      this.running.push(this.client(c, this.o.rng.fork()));
    }
  }

  /** Records one operation by a client outside the random loop (e.g. the final reads). */
  async record(client: number, node: number, inv: Invocation): Promise<Operation> {
    const id = this.nextId++;
    const startMs = this.o.now();
    const r = await perform(this.conns[node - 1]!, inv);
    const op = this.makeOp(id, client, node, inv, startMs, r);
    this.ops.push(op);
    return op;
  }

  /**
   * Fires `count` reads in the run's mode at node `node` at once, each as its own one-operation
   * client (ids above every sequential client's), without waiting for them. The nemesis uses it
   * right before and after it resumes a paused node or heals a partition: reads that queue up at
   * an old leader are served the moment it wakes, before it hears of the newer term; a lease
   * that outlived the pause would show there as a stale read.
   */
  probe(node: number, count: number): void {
    for (let k = 0; k < count; k++) {
      const client = this.o.clients + 1 + this.probes++;
      const key = this.o.rng.pick(this.o.keys);
      const p = this.record(client, node, { kind: "read", key, mode: this.o.readMode }).then(
        () => undefined,
      );
      this.running.push(p);
    }
  }

  /**
   * Writes every register once at node `node` (one one-operation client per write, not waited
   * for). The nemesis calls it through the new leader while an old leader sleeps, so that the
   * old leader's state is certainly stale when it wakes and the probe reads would show it.
   */
  probeWrites(node: number): void {
    for (const key of this.o.keys) {
      const client = this.o.clients + 1 + this.probes++;
      const p = this.record(client, node, { kind: "write", key, value: this.freshValue() }).then(
        () => undefined,
      );
      this.running.push(p);
    }
  }

  /** Probe operations fired so far (reads and writes). */
  probes = 0;

  /** A fresh value for a write or cas. */
  freshValue(): number {
    return this.nextValue++;
  }

  private makeOp(
    id: number,
    client: number,
    node: number,
    inv: Invocation,
    startMs: number,
    r: Pick<Operation, "outcome" | "result" | "casOk" | "error">,
  ): Operation {
    const op: Operation = {
      id,
      client,
      key: inv.key,
      kind: inv.kind,
      ...(inv.value !== undefined ? { value: inv.value } : {}),
      ...(inv.kind === "cas" ? { expected: inv.expected ?? null } : {}),
      startMs,
      endMs: Math.max(startMs, this.o.now()),
      outcome: r.outcome,
      ...(r.result !== undefined ? { result: r.result } : {}),
      ...(r.casOk !== undefined ? { casOk: r.casOk } : {}),
      ...(inv.mode !== undefined ? { mode: inv.mode } : {}),
      node: this.o.addrs[node - 1]!,
      ...(r.error !== undefined ? { error: r.error } : {}),
    };
    if (op.outcome === "ok") {
      if (op.kind === "read" && op.mode !== "local") this.lastSeen.set(op.key, op.result ?? null);
      if (op.kind === "write") this.lastSeen.set(op.key, op.value ?? null);
      if (op.kind === "cas" && op.casOk === true) this.lastSeen.set(op.key, op.value ?? null);
    }
    return op;
  }

  private choose(rng: SeededRng, home: number): { inv: Invocation; node: number } {
    const key = rng.pick(this.o.keys);
    const kind = rng.weighted({ read: 50, write: 25, cas: 25 });
    let node = home;
    if (kind === "read") {
      const local = rng.chance(this.o.localShare);
      if (local) {
        const stale = this.o.staleNodes();
        if (stale.length > 0 && rng.chance(this.o.staleBias)) {
          node = rng.pick(stale);
          this.biasedLocalReads++;
        }
      }
      return { inv: { kind, key, mode: local ? "local" : this.o.readMode }, node };
    }
    if (kind === "write") return { inv: { kind, key, value: this.freshValue() }, node };
    const expected = this.lastSeen.get(key) ?? null;
    return { inv: { kind, key, value: this.freshValue(), expected }, node };
  }

  /**
   * A client sticks to a home node and moves to another random node when an operation on it
   * does not come back ok, and now and then (ROTATE) anyway, so every node sees every client.
   * (Picking a node per operation would soon leave every client waiting on the one faulty node,
   * which measures the clients' bad luck rather than the cluster's availability.)
   */
  private async client(c: number, rng: SeededRng): Promise<void> {
    const n = this.o.addrs.length;
    let home = 1 + rng.int(n);
    const move = (): number => (n === 1 ? home : 1 + ((home + rng.int(n - 1)) % n));
    while (!this.stopping) {
      const { inv, node } = this.choose(rng, home);
      const id = this.nextId++;
      const startMs = this.o.now();
      const r = await perform(this.conns[node - 1]!, inv);
      this.ops.push(this.makeOp(id, c, node, inv, startMs, r));
      if ((r.outcome !== "ok" && node === home) || rng.chance(ROTATE)) home = move();
      const think = this.o.thinkMs > 0 ? rng.int(2 * this.o.thinkMs + 1) : 0;
      if (think > 0 && !this.stopping) await new Promise((res) => setTimeout(res, think));
    }
  }

  /** Stops issuing operations and waits for the clients' current ones to finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
    this.running = [];
  }

  /** Closes the connections. */
  close(): void {
    for (const c of this.conns) c.close();
  }
}
