/**
 * Replica convergence at the end of a chaos run: once every fault is healed, every node's SQLite
 * file must hold the same rows. Checked twice: first by polling local reads on every running node
 * until they agree (replicas catch up asynchronously), then, after a clean stop, by opening each
 * node's file read-only, so the verdict rests on the files themselves.
 */
import Database from "better-sqlite3";
import type { ChaosCluster } from "./cluster.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** All registers, in key order, as canonical text. */
export const ALL_ROWS_SQL = "select k, v from regs order by k";

export interface ReplicaRows {
  readonly node: number;
  /** The rows as JSON text, or an error message prefixed with "error: ". */
  readonly rows: string;
}

/** Whether all replicas hold identical rows (errors never agree). */
export function agree(replicas: readonly ReplicaRows[]): boolean {
  if (replicas.length === 0) return false;
  const first = replicas[0]!.rows;
  return !first.startsWith("error: ") && replicas.every((r) => r.rows === first);
}

/** Every running node's rows by a local read through the gRPC API. */
export async function localRows(cluster: ChaosCluster): Promise<ReplicaRows[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      try {
        const res = await cluster
          .admin(n.index)
          .load(enc.encode(ALL_ROWS_SQL), { consistency: "local" });
        return { node: n.index, rows: JSON.stringify(JSON.parse(dec.decode(res))) };
      } catch (err) {
        return { node: n.index, rows: `error: ${(err as Error).message.split("\n")[0]}` };
      }
    }),
  );
}

/** Polls local reads until every node agrees or the time is up; returns the last rows seen. */
export async function waitLocalAgreement(
  cluster: ChaosCluster,
  timeoutMs: number,
): Promise<{ agreed: boolean; waitedMs: number; replicas: ReplicaRows[] }> {
  const t0 = performance.now();
  for (;;) {
    const replicas = await localRows(cluster);
    const waitedMs = performance.now() - t0;
    if (agree(replicas)) return { agreed: true, waitedMs, replicas };
    if (waitedMs > timeoutMs) return { agreed: false, waitedMs, replicas };
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The rows of a stopped node's SQLite file, opened read-only. */
export function fileRows(node: number, path: string): ReplicaRows {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return { node, rows: JSON.stringify(db.prepare(ALL_ROWS_SQL).all()) };
    } finally {
      db.close();
    }
  } catch (err) {
    return { node, rows: `error: ${(err as Error).message}` };
  }
}

/** A short description of where replicas differ (for the report). */
export function describeDisagreement(replicas: readonly ReplicaRows[]): string {
  const groups = new Map<string, number[]>();
  for (const r of replicas) {
    const g = groups.get(r.rows);
    if (g === undefined) groups.set(r.rows, [r.node]);
    else g.push(r.node);
  }
  return [...groups]
    .map(
      ([rows, nodes]) =>
        `  nodes ${nodes.join(",")}: ${rows.length > 400 ? `${rows.slice(0, 400)}...` : rows}`,
    )
    .join("\n");
}
