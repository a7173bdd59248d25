/**
 * Auto timing (`heartbeatTickMs: "auto"`, auto-timing.ts): the heartbeat and election timeout
 * derived from measured round trips, the lease bounded by the shortest vote hold-off among the
 * voters, a lease whose rounds carry that bound, and the wiring on real transports and nodes
 * whose links run through relays with a delay.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { deriveTiming, leaseBoundMs, measurePeerRtts } from "../../src/node/auto-timing.js";
import { LeaderLease, leaseDurationMs } from "../../src/node/leader-lease.js";
import { LeaseUpkeep } from "../../src/node/lease-upkeep.js";
import { requestKey } from "../../src/node/entry-payload.js";
import type { NodeMetrics, NodeMetricsView } from "../../src/node/node-metrics.js";
import { createMessage } from "../../src/raft/types.js";
import { Http2Transport } from "../../src/transport/http2-transport.js";
import type { TransportHandler } from "../../src/transport/http2-transport.js";
import { FlagError, parseFlags } from "../../src/cli/flags.js";
import { NODE_FLAGS, nodeConfigOf } from "../../src/cli/node-flags.js";
import {
  closeRelays,
  relayedReplicators,
  startRelay,
  startRelayedCluster,
} from "../wan/helpers.js";
import { RawPeer, peerHeaders } from "../transport/raw-peer.js";
import { until } from "./helpers.js";

describe("deriveTiming: heartbeat from the farthest round trip, election 10 heartbeats", () => {
  for (const c of [
    { name: "loopback: the floors", rtts: [0.2, 0.4], floor: 100, eFloor: 1000, hb: 100, el: 1000 },
    { name: "no peer measured: the floors", rtts: [], floor: 100, eFloor: 1000, hb: 100, el: 1000 },
    {
      name: "150 ms to the farthest",
      rtts: [30, 150.2, 80],
      floor: 100,
      eFloor: 1000,
      hb: 151,
      el: 1510,
    },
    {
      name: "an election floor above 10 heartbeats",
      rtts: [120],
      floor: 100,
      eFloor: 3000,
      hb: 120,
      el: 3000,
    },
    {
      name: "an election floor not a multiple rounds up",
      rtts: [120],
      floor: 100,
      eFloor: 1250,
      hb: 120,
      el: 1320,
    },
  ]) {
    it(c.name, () => {
      const t = deriveTiming(c.rtts, c.floor, c.eFloor);
      assert.equal(t.heartbeatTickMs, c.hb);
      assert.equal(t.electionTickMs, c.el);
      assert.equal(t.electionTick * t.heartbeatTickMs, t.electionTickMs);
    });
  }
});

describe("-nexus-heartbeat-ms", () => {
  const base = [
    "-nexus-node-url",
    "http://127.0.0.1:9021",
    "-nexus-cluster-url",
    "http://127.0.0.1:9021",
    "-grpcPort",
    "9121",
  ];
  const heartbeat = (v: string[]) =>
    nodeConfigOf(parseFlags([...base, ...v], NODE_FLAGS)).replicator.heartbeatTickMs;
  it("takes ms or auto; anything else is refused naming the flag", () => {
    assert.equal(heartbeat([]), 100);
    assert.equal(heartbeat(["-nexus-heartbeat-ms", "250"]), 250);
    assert.equal(heartbeat(["-nexus-heartbeat-ms", "auto"]), "auto");
    for (const bad of ["0", "fast", "1.5", "-3"]) {
      assert.throws(
        () => heartbeat([`-nexus-heartbeat-ms=${bad}`]),
        (e: unknown) => e instanceof FlagError && /-nexus-heartbeat-ms/.test(String(e)),
        bad,
      );
    }
  });
});

describe("leaseBoundMs: the shortest vote hold-off among the voters", () => {
  const own = { heartbeatTickMs: 200, electionTick: 10 };
  const timings = new Map([
    ["b", { heartbeatTickMs: 100, electionTick: 10 }],
    ["c", { heartbeatTickMs: 300, electionTick: 10 }],
  ]);
  const of = (id: string) => timings.get(id);
  for (const c of [
    { name: "alone: its own", voters: ["a"], want: leaseDurationMs(200, 10, 0.1) },
    {
      name: "a voter with a shorter timeout bounds it",
      voters: ["a", "b", "c"],
      want: leaseDurationMs(100, 10, 0.1),
    },
    {
      name: "longer timeouts do not lengthen it",
      voters: ["a", "c"],
      want: leaseDurationMs(200, 10, 0.1),
    },
    {
      name: "a voter that announced nothing counts as its own",
      voters: ["a", "c", "d"],
      want: leaseDurationMs(200, 10, 0.1),
    },
  ]) {
    it(c.name, () => assert.equal(leaseBoundMs(c.voters, "a", own, of, 0.1), c.want));
  }
});

describe("a lease round carries its bound", () => {
  it("a round sent under a shorter bound expires by it, never past the lease's own", () => {
    let t = 1000;
    const l = new LeaderLease({ durationMs: 900, now: () => t });
    l.renewalSent("r1", 2, 450);
    t += 10;
    l.confirmed("r1", 2, true);
    t = 1449;
    assert.equal(l.valid(2), true);
    t = 1450;
    assert.equal(l.valid(2), false, "a voter with half the timeout could vote from here");
    l.renewalSent("r2", 2, 5000);
    l.confirmed("r2", 2, true);
    t = 1450 + 899;
    assert.equal(l.valid(2), true);
    t = 1450 + 900;
    assert.equal(l.valid(2), false, "a bound above the node's own does not lengthen the lease");
  });
});

describe("lease upkeep bounds each renewal by the voters' shortest hold-off", () => {
  it("a lease renewed while a voter announces a shorter timeout lasts only that long", () => {
    let t = 1000;
    let ctx: Uint8Array | undefined;
    let bound = 450;
    const upkeep = new LeaseUpkeep({
      heartbeatTickMs: 100,
      electionTick: 10,
      leaseBasedReads: true,
      clock: () => t,
      raw: {
        basicStatus: () => ({ term: 3, state: "leader", lead: "a", commit: 7, leadTransferee: "" }),
        readIndex: (c: Uint8Array) => void (ctx = c),
      },
      schedule: () => undefined,
      leaseBoundMs: () => bound,
    });
    upkeep.maybeRenew();
    assert.ok(upkeep.confirmed(requestKey(ctx!), 3, true));
    t = 1449;
    assert.equal(upkeep.readIndex(), 7, "within the shorter bound");
    t = 1450;
    bound = 810; // the voter left, say; the next round may last the node's own 810 ms
    assert.equal(upkeep.readIndex(), undefined, "past the shortest voter's hold-off");
  });
});

describe("measurePeerRtts", () => {
  it("keeps the median of three PINGs per peer and retries one that does not answer yet", async () => {
    const answers = new Map<string, (number | undefined)[]>([
      ["b", [10, 90, 12]],
      ["c", [undefined, undefined, 40, 41, 39]],
    ]);
    const rtts = await measurePeerRtts(
      { measureRtt: async (peer) => answers.get(peer)!.shift() },
      ["b", "c"],
      2000,
    );
    assert.deepEqual([...rtts].sort(), [
      ["b", 12],
      ["c", 40],
    ]);
  });

  it("gives up on a peer that never answers within the window", async () => {
    const t0 = performance.now();
    const rtts = await measurePeerRtts({ measureRtt: async () => undefined }, ["b"], 300);
    assert.equal(rtts.size, 0);
    assert.ok(performance.now() - t0 < 1500);
  });
});

describe("timings announced between peers", () => {
  it("a peer's announced timing is known after its first message; RTT is timed by a PING", async () => {
    let received = 0;
    const handler: TransportHandler = {
      onMessages: (m) => void (received += m.length),
      onUnreachable: () => undefined,
      onDropped: () => undefined,
      onSnapshot: async () => undefined,
      onSnapshotStatus: () => undefined,
      admitsSender: () => true,
    };
    const make = (id: string) =>
      new Http2Transport({
        id,
        clusterName: "t",
        listenHost: "127.0.0.1",
        listenPort: 0,
        handler,
        openSnapshot: async function* () {},
      });
    const a = make("a");
    const b = make("b");
    const pb = await b.start();
    await a.start();
    const relay = await startRelay(pb, 40);
    try {
      a.addPeer("b", `http://127.0.0.1:${relay.port}`);
      const rtt = await a.measureRtt("b", 5000);
      assert.ok(rtt !== undefined && rtt >= 80 && rtt < 400, `rtt ${String(rtt)}`);
      assert.equal(b.timingOf("a"), undefined);
      a.announceTiming({ heartbeatTickMs: 120, electionTick: 10 });
      a.send([createMessage({ type: "heartbeat", from: "a", to: "b", term: 1 })]);
      await until(() => received > 0, 5000, "the heartbeat");
      assert.deepEqual(b.timingOf("a"), { heartbeatTickMs: 120, electionTick: 10 });
      // A malformed announcement is ignored (the last good one stays): it could only shorten or
      // lengthen a lease on a sender's say-so.
      const raw = new RawPeer(`http://127.0.0.1:${pb}`);
      try {
        for (const bad of ["0/10", "100/1", "fast", "100/10/3", "-5/10"]) {
          await raw.sendMessages({ ...peerHeaders("a", "t"), "nexus-timing": bad }, [
            createMessage({ type: "heartbeat", from: "a", to: "b", term: 1 }),
          ]);
        }
        assert.deepEqual(b.timingOf("a"), { heartbeatTickMs: 120, electionTick: 10 });
        await raw.sendMessages({ ...peerHeaders("a", "t"), "nexus-timing": "130/12" }, [
          createMessage({ type: "heartbeat", from: "a", to: "b", term: 1 }),
        ]);
        assert.deepEqual(b.timingOf("a"), { heartbeatTickMs: 130, electionTick: 12 });
      } finally {
        raw.session.close();
      }
    } finally {
      await a.stop();
      await b.stop();
      await relay.close();
    }
  });
});

const root = mkdtempSync(join(tmpdir(), "nexus-auto-timing-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("auto timing on real nodes behind 150 ms relays", () => {
  it("measures the round trip and runs with it", async () => {
    const cluster = await startRelayedCluster(3, 75);
    const views: (NodeMetricsView | undefined)[] = [undefined, undefined, undefined];
    const sink = (i: number): NodeMetrics => ({
      attach: (v) => void (views[i] = v),
      walSynced: () => undefined,
      snapshotTransferred: () => undefined,
    });
    const reps = relayedReplicators(cluster, root, (i) => ({
      heartbeatTickMs: "auto",
      metrics: sink(i),
    }));
    try {
      await Promise.all(reps.map((r) => r.start()));
      for (const v of views) {
        const t = v!.timing!();
        // 150 ms of relay delay per round trip, plus a little for the processes.
        assert.ok(
          t.heartbeatTickMs >= 150 && t.heartbeatTickMs < 300,
          `heartbeat ${t.heartbeatTickMs}`,
        );
        assert.equal(t.electionTickMs, 10 * t.heartbeatTickMs);
      }
      await until(() => reps.some((r) => r.status().role === "leader"), 30_000, "a leader");
      const leader = reps.find((r) => r.status().role === "leader")!;
      assert.equal(
        new TextDecoder().decode(await leader.save(new TextEncoder().encode("set k v"))),
        "OK",
      );
    } finally {
      for (const r of reps) await r.stop().catch(() => undefined);
      await closeRelays(cluster.relays);
    }
  });
});
