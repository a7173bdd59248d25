/**
 * Real child processes on loopback, SQLite stores: a leader killed with SIGKILL, writes
 * acknowledged before killing any minority are never lost, a slow statement causes no election.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChildNode } from "./process-cluster.js";
import { freePort } from "../free-port.js";

const roots: string[] = [];
const nodes: ChildNode[] = [];
after(async () => {
  for (const n of nodes) await n.kill();
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const t = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function leaderOf(ns: ChildNode[]): Promise<ChildNode | undefined> {
  for (const n of ns) {
    if (!n.alive) continue;
    const s = await n.status();
    if (s?.role === "leader") return n;
  }
  return undefined;
}

async function cluster(size: number): Promise<ChildNode[]> {
  const root = mkdtempSync(join(tmpdir(), "nexus-proc-"));
  roots.push(root);
  const urls = await Promise.all(
    Array.from({ length: size }, async () => `http://127.0.0.1:${await freePort()}`),
  );
  const ns = urls.map((u, i) => new ChildNode(u, urls, join(root, `n${i}`)));
  nodes.push(...ns);
  await Promise.all(ns.map((n) => n.start()));
  return ns;
}

describe("child-process cluster on SQLite", () => {
  it("acknowledged saves survive SIGKILL of the leader and of any minority; the killed node catches up", async () => {
    const ns = await cluster(3);
    const leader = await until(() => leaderOf(ns), 20_000, "a leader");
    assert.ok((await leader.request("save", "create table kv (k text primary key, v text)")).ok);
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await leader.request("save", `insert into kv values ('a${i}', 'v${i}')`);
      if (r.ok) acked.push(`a${i}`);
    }
    assert.equal(acked.length, 20);
    await leader.kill();
    const survivors = ns.filter((n) => n !== leader);
    const next = await until(() => leaderOf(survivors), 20_000, "a new leader");
    for (let i = 0; i < 10; i++) {
      const r = await next.request("save", `insert into kv values ('b${i}', 'v${i}')`);
      if (r.ok) acked.push(`b${i}`);
    }
    // Kill the other survivor too (a minority at a time), restart, and check every acked row.
    const other = survivors.find((n) => n !== next)!;
    await other.kill();
    await leader.start();
    const count = await until(
      async () => {
        const r = await next.request("load", "select count(*) as n from kv");
        return r.ok ? (JSON.parse(r.result as string) as { n: number }[])[0]!.n : undefined;
      },
      20_000,
      "a linearizable read",
    );
    assert.equal(count, acked.length);
    await other.start();
    // Every node, read locally once caught up, holds every acknowledged row.
    for (const n of ns) {
      await until(
        async () => {
          const r = await n.request("load", "select k from kv order by k", "local");
          const keys = r.ok
            ? (JSON.parse(r.result as string) as { k: string }[]).map((x) => x.k)
            : [];
          return acked.every((k) => keys.includes(k)) ? true : undefined;
        },
        20_000,
        `node ${n.url} to hold every acknowledged row`,
      );
    }
  });

  it("a slow SQLite statement on the leader does not cause an election", async () => {
    const ns = await cluster(3);
    const leader = await until(() => leaderOf(ns), 20_000, "a leader");
    const before = (await leader.status())!;
    const slow = await leader.request(
      "load",
      "with recursive c(x) as (select 1 union all select x + 1 from c where x < 20000000) select count(*) as n from c",
      "local",
    );
    assert.ok(slow.ok, slow.error);
    const after = (await leader.status())!;
    assert.equal(after.role, "leader");
    assert.equal(
      after.term,
      before.term,
      "the term changed: an election happened during the slow query",
    );
  });
});
