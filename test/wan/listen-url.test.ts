/**
 * Listen and advertise apart (`listenUrl`, `-nexus-listen-url`): three nodes each bind one port and
 * advertise another, where a WAN link relay with 30 ms each way forwards to it. The cluster elects,
 * replicates through a follower and pays the link's delay, which shows the traffic crossed the
 * relays; ids come from the advertised URLs.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isNexusError } from "../../src/errors/index.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { createReplicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { until } from "../node/helpers.js";
import { closeRelays, relayedReplicators, startRelayedCluster } from "./helpers.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const root = mkdtempSync(join(tmpdir(), "nexus-listen-url-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("nodes that advertise a relay's address and listen on their own replicate through it", async () => {
  const cluster = await startRelayedCluster(3, 30);
  const { relays, urls } = cluster;
  const reps = relayedReplicators(cluster, root, () => ({
    heartbeatTickMs: 100,
    electionTickMs: 1000,
  }));
  try {
    await Promise.all(reps.map((r) => r.start()));
    await until(() => reps.some((r) => r.status().role === "leader"), 20_000, "a leader");
    const leader = reps.findIndex((r) => r.status().role === "leader");
    const follower = reps[(leader + 1) % 3]!;
    const t0 = performance.now();
    assert.equal(dec.decode(await follower.save(enc.encode("set k v"))), "OK");
    const ms = performance.now() - t0;
    // Forwarded to the leader (one round trip over a relay) and replicated (another): at least
    // two crossings of 60 ms.
    assert.ok(
      ms >= 110,
      `a save through a follower took ${ms.toFixed(0)} ms, under the relays' delay`,
    );
    assert.equal(dec.decode(await reps[(leader + 2) % 3]!.load(enc.encode("get k"))), "v");
    assert.deepEqual(
      follower
        .listMembers()
        .members.map((m) => m.id)
        .sort(),
      urls.map((u) => nodeIdOf(u)).sort(),
    );
    assert.ok(
      relays.every((r) => r.accepted > 0),
      "some node was reached without its relay",
    );
  } finally {
    for (const r of reps) await r.stop().catch(() => undefined);
    await closeRelays(relays);
  }
});

test("a listen URL with another scheme than the node URL is refused", () => {
  assert.throws(
    () =>
      createReplicator({
        nodeUrl: "http://127.0.0.1:9021",
        listenUrl: "https://0.0.0.0:9021",
        clusterUrls: ["http://127.0.0.1:9021"],
        store: new MemoryStore(),
      }),
    (e: unknown) => isNexusError(e, "BAD_CONFIG") && /differ in scheme/.test(String(e)),
  );
});
