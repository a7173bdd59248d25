/**
 * The steps the backup end-to-end tests share, whatever the store: a backup taken through a
 * follower while a writer saves numbered rows, the file checked, restored (`nexus restore`) into
 * a new cluster of any size, and each cluster's digest read with `repl checkConsistency` (every
 * replica's store digested at one index, all of them equal).
 *
 * The writer inserts row i (i = 1, 2, ...) one save after the other, so the source's state at the
 * backup's index is exactly its rows up to the highest one the backup holds: a test compares the
 * restored cluster's digest to the source's rows up to that one, digested by the store itself.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { createNexusClient } from "../../src/api/client.js";
import { startWriter } from "./membership-writer.js";
import { leaderUrl, repl, run, tempDir, until } from "./programs.js";
import type { SqliteNode } from "./programs.js";
import type { Store } from "../../src/store/store.js";

/** What `nexus backup info -o json` prints. */
export interface BackupInfo {
  readonly storeKind: string;
  readonly clusterName: string;
  readonly index: number;
  readonly term: number;
  readonly members: readonly { url: string; role: string }[];
}

/** A backup taken under writes. */
export interface BackupTaken {
  readonly file: string;
  readonly dir: string;
  readonly info: BackupInfo;
  /** The highest row acknowledged before `nexus backup` began (0: none). */
  readonly lastAckedBefore: number;
  /** Every row acknowledged, in order (the writer stopped a few saves after the backup). */
  readonly acked: readonly number[];
}

export async function waitForLeader(addr: string): Promise<string> {
  return until(
    "a leader",
    () => leaderUrl(addr),
    (u) => u !== "",
    30_000,
  );
}

/**
 * With `src` running and its table created: saves `insert(i)` for i = 1, 2, ... through src[0],
 * takes `nexus backup` through a follower once 10 saves are in, lets 3 more saves in, stops the
 * writer, then checks the file (`backup verify`, `backup info`) and its header.
 */
export async function backupUnderLoad(
  src: readonly SqliteNode[],
  storeKind: string,
  insert: (i: number) => string,
): Promise<BackupTaken> {
  const writer = startWriter(
    () => [src[0]!.addr],
    (i) => insert(i + 1),
  );
  let stopped = false;
  try {
    await until(
      "10 saves",
      async () => writer.acked.length,
      (n) => n >= 10,
      60_000,
    );
    const leader = await waitForLeader(src[0]!.addr);
    const follower = src.find((n) => n.url !== leader)!;
    const dir = tempDir("nexus-backup-");
    const file = join(dir, "cluster.nexus-backup");
    const lastAckedBefore = (writer.acked.at(-1) ?? -1) + 1;
    const b = await run("nexus", ["backup", follower.addr, file]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /backup: [\d.]+ MiB, [\d.]+ MiB\/s/);
    assert.match(b.stdout, new RegExp(`backup of ${storeKind} cluster "nexus" at index \\d+`));
    assert.deepEqual(readdirSync(dir), ["cluster.nexus-backup"], "no .tmp left");
    const during = writer.acked.length;
    await until(
      "3 more saves",
      async () => writer.acked.length,
      (n) => n >= during + 3,
      60_000,
    );
    stopped = true;
    const acked = (await writer.stop()).map((i) => i + 1);
    const v = await run("nexus", ["backup", "verify", file]);
    assert.equal(v.code, 0, v.stderr);
    const i = await run("nexus", ["backup", "info", "-o", "json", file]);
    assert.equal(i.code, 0, i.stderr);
    const info = JSON.parse(i.stdout) as BackupInfo;
    assert.equal(info.storeKind, storeKind);
    assert.deepEqual(info.members.map((m) => m.url).sort(), src.map((n) => n.url).sort());
    return { file, dir, info, lastAckedBefore, acked };
  } finally {
    if (!stopped) await writer.stop();
  }
}

/** The flags `nexus restore` takes for node `n` (its URLs and folders), then `storeFlags`. */
export function restoreArgs(
  file: string,
  n: SqliteNode,
  storeFlags: readonly string[] = ["-sqlitePath", join(n.dir, "store.db")],
): string[] {
  return [
    "restore",
    file,
    "-nexus-node-url",
    n.url,
    "-nexus-cluster-url",
    n.clusterUrls.join(","),
    `-nexus-log-dir=${join(n.dir, "logs")}`,
    `-nexus-snap-dir=${join(n.dir, "snap")}`,
    ...storeFlags,
  ];
}

/**
 * Prepares every node of `dst` from the backup (`nexus restore` with `storeFlags(i)`), starts
 * them and waits for a leader.
 */
export async function restoreCluster(
  file: string,
  dst: readonly SqliteNode[],
  storeFlags?: (i: number) => readonly string[],
): Promise<void> {
  for (const [i, n] of dst.entries()) {
    const r = await run("nexus", restoreArgs(file, n, storeFlags?.(i)));
    assert.equal(r.code, 0, r.stderr);
  }
  await Promise.all(dst.map((n) => n.start()));
  await waitForLeader(dst[0]!.addr);
}

const CHECK_LINE = /^([0-9a-f]{16}) => (\S+) (\S+) (ok|DIVERGED|NO REPORT|UNDECIDED)$/;

/**
 * `repl checkConsistency` through `addr` until every one of `members` reported: the check's index
 * and the one digest all of them have (fails if they differ).
 */
export async function clusterDigest(
  addr: string,
  members: readonly string[],
): Promise<{ index: number; digest: string }> {
  const out = await until(
    `every member's digest (${members.length})`,
    async () => {
      const r = await repl(addr, "checkConsistency");
      return { code: r.code, text: r.stdout + r.stderr };
    },
    (r) => r.code === 0,
    60_000,
  );
  const lines = out.text.trimEnd().split("\n");
  const head = /^Consistency check at index (\d+):$/.exec(lines[0] ?? "");
  assert.ok(head !== null, out.text);
  const digests = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const m = CHECK_LINE.exec(l);
    assert.ok(m !== null, `unexpected line: ${l}`);
    digests.set(m[2]!, m[3]!);
  }
  assert.deepEqual([...digests.keys()].sort(), [...members].sort(), out.text);
  const all = new Set(digests.values());
  assert.equal(all.size, 1, `the replicas' digests differ:\n${out.text}`);
  return { index: Number(head[1]), digest: [...all][0]! };
}

/** One row of a load's JSON result, by a client of `addr`. */
export async function loadOne<T>(addr: string, sql: string): Promise<T> {
  const c = createNexusClient(addr, { timeoutMs: 10_000 });
  try {
    const rows = JSON.parse(
      new TextDecoder().decode(await c.load(new TextEncoder().encode(sql))),
    ) as T[];
    assert.equal(rows.length, 1, JSON.stringify(rows));
    return rows[0]!;
  } finally {
    c.close();
  }
}

/** The highest row of table t, through a node's gRPC address (the SQL stores). */
async function highestSqlRow(addr: string): Promise<number> {
  return (await loadOne<{ k: number }>(addr, "select max(i) as k from t")).k;
}

/**
 * Checks a restored cluster against the source: the highest row it holds (`highestRow`, default
 * the highest of SQL table t) is at least the last one acknowledged before the backup and below
 * the last one acknowledged, every replica's digest is the same, and it equals
 * `sourceDigestUpTo(k)`: the source's rows up to that row k, which is the source's state at the
 * backup's index. Resolves with k.
 */
export async function assertRestoredAsSource(
  dst: readonly SqliteNode[],
  taken: BackupTaken,
  sourceDigestUpTo: (k: number) => Promise<string>,
  highestRow: (addr: string) => Promise<number> = highestSqlRow,
): Promise<number> {
  const k = await highestRow(dst[0]!.addr);
  assert.ok(k >= taken.lastAckedBefore, `row ${k}, ${taken.lastAckedBefore} acknowledged before`);
  assert.ok(k < taken.acked.at(-1)!, `row ${k}: the source kept going after the backup`);
  const restored = await clusterDigest(
    dst[0]!.addr,
    dst.map((n) => n.url),
  );
  assert.ok(restored.index > taken.info.index);
  assert.equal(restored.digest, await sourceDigestUpTo(k), "the restored state is the source's");
  return k;
}

/** A store's digest as a replica computes it: opened, digested, closed. */
export async function digestOfStore(store: Store): Promise<string> {
  await store.open();
  try {
    return await (
      await store.digest()
    ).digest;
  } finally {
    await store.close();
  }
}
