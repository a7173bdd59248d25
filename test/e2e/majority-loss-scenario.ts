/**
 * The steps of the "losing 2 of 3" procedure (docs/backup.md) that the end-to-end tests share,
 * whatever the store: a 3-node cluster written to, two nodes killed, the stopped survivor chosen
 * with `nexus recover --inspect` and recovered with `nexus recover` into a one-member cluster,
 * then two new members added back with addNode. Every write the survivor had applied is kept,
 * on every member.
 *
 * The writes are numbered rows 1, 2, ... saved one after the other: a store's `rows` lists the
 * ones it holds, in order.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";

/** One store kind as the scenario drives it. */
const SQLITE_RESPONSE = /Response from SQLite \(without quotes\): '(.*)'/s;

/** The rows 1, 2, ... of table t that a SQLite node holds, in order, read with `consistency`. */
export async function sqliteRows(addr: string, consistency = "linearizable"): Promise<number[]> {
  const r = await repl(
    `-consistency=${consistency}`,
    addr,
    "sqlite",
    "load",
    "select group_concat(i) as rows from (select i from t order by i)",
  );
  if (r.code !== 0) throw new Error(`load failed: ${r.stderr}`);
  const m = SQLITE_RESPONSE.exec(r.stdout);
  if (m === null) throw new Error(`unexpected output: ${r.stdout}`);
  const v = (JSON.parse(m[1]!) as { rows: string | null }[])[0]!.rows;
  return v === null ? [] : v.split(",").map(Number);
}

/** Saves `sql` through a SQLite node's repl; fails the test if it is not acknowledged. */
export async function sqliteSave(addr: string, sql: string): Promise<void> {
  const r = await repl(addr, "sqlite", "save", sql);
  assert.equal(r.code, 0, r.stderr);
}

export interface LossStore {
  /** The `-store` value of `nexus recover`. */
  readonly kind: string;
  /** The node program in bin/. */
  readonly program: string;
  /**
   * The store flags of `n` new nodes, by position (each node its own empty store); undefined
   * for a SQLite file in each node's folder (the programs' default).
   */
  stores(n: number): Promise<((i: number) => readonly string[]) | undefined>;
  /** Makes what the rows go in (a table), if the store needs it. */
  setup(addr: string): Promise<void>;
  /** Saves row i through addr. */
  insert(addr: string, i: number): Promise<void>;
  /** The rows a node holds, in order, read with `-consistency`. */
  rows(addr: string, consistency: "linearizable" | "local"): Promise<number[]>;
}

/** The store flags node n runs with. */
function storeFlagsOf(n: SqliteNode): readonly string[] {
  return n.storeFlags ?? ["-sqlitePath", join(n.dir, "store.db")];
}

/** The flags of `nexus recover` for node n's data. */
export function recoverFlags(n: SqliteNode, kind: string): string[] {
  return [
    "-nexus-node-url",
    n.url,
    `-nexus-log-dir=${join(n.dir, "logs")}`,
    `-nexus-snap-dir=${join(n.dir, "snap")}`,
    "-store",
    kind,
    ...storeFlagsOf(n),
  ];
}

/** Runs the whole procedure on store s (see the module comment). */
export async function recoverAfterLosingTwo(s: LossStore): Promise<void> {
  const nodes = await sqliteCluster(3, [], s.program, await s.stores(3));
  await Promise.all(nodes.map((n) => n.start()));
  await until(
    "a leader",
    () => leaderUrl(nodes[0]!.addr),
    (u) => u !== "",
  );
  await s.setup(nodes[0]!.addr);
  for (let i = 1; i <= 8; i++) await s.insert(nodes[i % 3]!.addr, i);
  const survivor = nodes[1]!;
  await until(
    "the survivor applied every write",
    () => s.rows(survivor.addr, "local"),
    (r) => r.length === 8,
  );
  await nodes[0]!.stop("SIGKILL");
  await nodes[2]!.stop("SIGKILL");
  await survivor.stop();
  const flags = recoverFlags(survivor, s.kind);
  const inspect = await run("nexus", ["recover", "--inspect", ...flags]);
  assert.equal(inspect.code, 0, inspect.stderr);
  const last = /last index: +(\d+)/.exec(inspect.stdout);
  assert.ok(last !== null && Number(last[1]) >= 10, inspect.stdout);
  assert.match(inspect.stdout, /store applied: \d+ \(term \d+\)/);
  const rec = await run("nexus", ["recover", ...flags]);
  assert.equal(rec.code, 0, rec.stderr);
  assert.match(rec.stdout, /is now the only member of a new cluster/);

  // The same node, folders and store, started as the only member.
  const one = new SqliteNode(
    survivor.raftPort,
    survivor.grpcPort,
    survivor.dir,
    [survivor.url],
    [],
    s.program,
    survivor.storeFlags,
  );
  await one.start();
  await until(
    "the survivor leads alone",
    () => leaderUrl(one.addr),
    (u) => u === one.url,
  );
  assert.deepEqual(await s.rows(one.addr, "linearizable"), [1, 2, 3, 4, 5, 6, 7, 8]);
  // Recovering a running node is refused.
  const running = await run("nexus", ["recover", ...flags]);
  assert.equal(running.code, 2);
  assert.match(running.stderr, /stop the node before recovering it/);
  await s.insert(one.addr, 9);
  const added: SqliteNode[] = [];
  for (let k = 0; k < 2; k++) {
    const n = new SqliteNode(
      await freePort(),
      await freePort(),
      join(tempDir(), `new${k}`),
      [one.url],
      [],
      s.program,
      (await s.stores(1))?.(0),
    );
    await n.start();
    const a = await repl(one.addr, "addNode", n.url);
    assert.equal(a.code, 0, a.stderr);
    added.push(n);
  }
  await s.insert(added[1]!.addr, 10);
  for (const n of [one, ...added]) {
    await until(
      "every write on every member",
      () => s.rows(n.addr, "local"),
      (v) => v.length === 10,
    );
    assert.deepEqual(await s.rows(n.addr, "local"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }
}
