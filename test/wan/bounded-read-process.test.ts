/**
 * Follower reads with a staleness bound, on real `bin/sqlite_repl` processes: every node
 * advertises a link relay's address (`-nexus-listen-url` for its own), so a follower can be cut
 * off from its leader by stalling its relay. Fresh, the follower serves a bounded read from its
 * own store; stalled past the bound it refuses with TOO_STALE (the leader meanwhile took a write
 * the follower cannot have), or, asked to fall back, reads through the leader and sees the write;
 * once the stall ends it serves again, with that write. A leader cut off from its quorum refuses
 * as well: it may have been deposed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";
import { isNexusError } from "../../src/errors/index.js";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, tempDir, until } from "../e2e/programs.js";
import { closeRelays, startRelayedCluster } from "./helpers.js";
import { join } from "node:path";

const enc = new TextEncoder();
const dec = new TextDecoder();

test("a stalled follower refuses a bounded read past its bound and serves it when fresh", async () => {
  const { listenPorts, relays, urls } = await startRelayedCluster(3, 0);
  const root = tempDir("nexus-bounded-read-");
  const nodes = await Promise.all(
    relays.map(
      async (r, i) =>
        new SqliteNode(r.port, await freePort(), join(root, `n${i}`), urls, [
          `-nexus-listen-url=http://127.0.0.1:${listenPorts[i]!}`,
          // Long enough for the leader to stay leader while cut off for a moment (below).
          "-nexus-election-ms=2000",
        ]),
    ),
  );
  const clients: NexusClient[] = [];
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const lead = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (u) => u !== "",
    );
    const li = urls.indexOf(lead);
    const fi = (li + 1) % 3;
    const leader = createNexusClient(nodes[li]!.addr);
    const follower = createNexusClient(nodes[fi]!.addr);
    clients.push(leader, follower);
    await leader.save(enc.encode("create table kv (k text primary key, v text)"));
    await leader.save(enc.encode("insert into kv values ('a', '1')"));
    const read = (bound: Record<string, string>): Promise<string> =>
      follower
        .load(enc.encode("select v from kv where k = 'a'"), { consistency: "bounded", ...bound })
        .then((b) => dec.decode(b));

    // Fresh: served by the follower (it heard the leader within 300 ms and is caught up).
    assert.equal(
      await until(
        "a fresh bounded read",
        () => read({ "max-lag-ms": "300", "max-lag-entries": "0" }),
        (v) => v === '[{"v":"1"}]',
      ),
      '[{"v":"1"}]',
    );

    // Cut the follower off from the leader (every byte towards it held), write at the leader.
    relays[fi]!.stall(4000);
    await leader.save(enc.encode("update kv set v = '2' where k = 'a'"));
    await new Promise((r) => setTimeout(r, 500));
    const refused = await read({ "max-lag-ms": "300" }).then(
      (v) => v,
      (e: unknown) => e,
    );
    assert.ok(
      isNexusError(refused, "TOO_STALE"),
      `a follower cut off for 500 ms served a read bounded at 300 ms: ${String(refused)}`,
    );

    // Asked to fall back: a linearizable read through the leader, which answers only once the
    // follower hears it again, and then with the write (never the stale value).
    const fallback = read({ "max-lag-ms": "300", "on-stale": "linearizable" });
    await new Promise((r) => setTimeout(r, 300));
    // Fresh again: served, with the write made while it was cut off.
    relays[fi]!.stall(0);
    assert.equal(await fallback, '[{"v":"2"}]');
    assert.equal(
      await until(
        "the write after the stall",
        () => read({ "max-lag-ms": "300", "max-lag-entries": "0" }),
        (v) => v === '[{"v":"2"}]',
        15_000,
      ),
      '[{"v":"2"}]',
    );

    // The leader cut off from every follower (every byte towards it held): still the leader for
    // an election timeout, but it has not heard a quorum within the bound, so it refuses too.
    relays[li]!.stall(3000);
    await new Promise((r) => setTimeout(r, 600));
    const atLeader = await leader
      .load(enc.encode("select v from kv where k = 'a'"), {
        consistency: "bounded",
        "max-lag-ms": "300",
      })
      .then(
        (b) => dec.decode(b),
        (e: unknown) => e,
      );
    assert.ok(
      isNexusError(atLeader, "TOO_STALE"),
      `a leader that heard no quorum for 600 ms served a read bounded at 300 ms: ${String(atLeader)}`,
    );
    relays[li]!.stall(0);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await closeRelays(relays);
  }
});
