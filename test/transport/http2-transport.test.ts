import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { connect, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import type { Readable } from "node:stream";
import { Http2Transport } from "../../src/transport/http2-transport.js";
import type { TransportHandler } from "../../src/transport/http2-transport.js";
import { decodeBatch, encodeBatch } from "../../src/transport/codec.js";
import { createMessage } from "../../src/raft/types.js";
import { snapMessage } from "./messages.js";
import type { Message } from "../../src/raft/types.js";

interface Recorder extends TransportHandler {
  msgs: Message[];
  unreachable: string[];
  snapshots: { msg: Message; bytes: number }[];
  statuses: string[];
  dropped: Message[];
}

function recorder(): Recorder {
  const r: Recorder = {
    msgs: [],
    unreachable: [],
    snapshots: [],
    statuses: [],
    dropped: [],
    onDropped: (m) => void r.dropped.push(...m),
    onMessages: (m) => void r.msgs.push(...m),
    onUnreachable: (p) => void r.unreachable.push(p),
    onSnapshot: async (msg: Message, body: Readable) => {
      let bytes = 0;
      for await (const c of body) bytes += (c as Buffer).byteLength;
      r.snapshots.push({ msg, bytes });
    },
    onSnapshotStatus: (p, s) => void r.statuses.push(`${p}:${s}`),
    admitsSender: () => true,
  };
  return r;
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

type Logged = { fields: Readonly<Record<string, unknown>>; msg: string | undefined }[];

function node(
  id: string,
  handler: Recorder,
  cluster = "test",
  snapBytes = 0,
  logged?: Logged,
): Http2Transport {
  return new Http2Transport({
    ...(logged === undefined
      ? {}
      : {
          logger: {
            warn: (fields, msg) => void logged.push({ fields, msg }),
            info: (fields, msg) => void logged.push({ fields, msg }),
          },
        }),
    id,
    clusterName: cluster,
    listenHost: "127.0.0.1",
    listenPort: 0,
    handler,
    openSnapshot: async function* () {
      const chunk = new Uint8Array(1024 * 1024).fill(9);
      for (let sent = 0; sent < snapBytes; sent += chunk.byteLength) {
        yield chunk.subarray(0, Math.min(chunk.byteLength, snapBytes - sent));
      }
    },
  });
}

/** A transport of cluster "test" listening on `port` (one `closedPort` gave), with no snapshot. */
function nodeOnPort(id: string, handler: Recorder, port: number): Http2Transport {
  return new Http2Transport({
    id,
    clusterName: "test",
    listenHost: "127.0.0.1",
    listenPort: port,
    handler,
    openSnapshot: async function* () {},
  });
}

/** A port a transport bound and let go: nothing listens there until a test starts a node on it. */
async function closedPort(): Promise<number> {
  const probe = node("x", recorder());
  const port = await probe.start();
  await probe.stop();
  return port;
}

const hb = (from: string, to: string, term: number): Message =>
  createMessage({ type: "heartbeat", from, to, term, commit: term });

describe("codec", () => {
  it("round-trips every field and rejects malformed or unsafe input", () => {
    const m = createMessage({
      type: "app",
      from: "a",
      to: "b",
      term: 3,
      logTerm: 2,
      index: 9,
      commit: 8,
      entries: [{ term: 3, index: 10, type: "conf-change", data: new Uint8Array([1, 2]) }],
      reject: true,
      rejectHint: 4,
      context: new Uint8Array([7]),
    });
    assert.deepEqual(decodeBatch(encodeBatch([m])), [m]);
    const snap = createMessage({
      type: "snap",
      from: "a",
      to: "b",
      term: 1,
      snapshot: {
        metadata: {
          index: 5,
          term: 1,
          confState: {
            voters: ["a"],
            learners: [],
            votersOutgoing: [],
            learnersNext: [],
            autoLeave: false,
          },
        },
        data: new Uint8Array([1]),
      },
    });
    assert.deepEqual(decodeBatch(encodeBatch([snap])), [snap]);
    assert.throws(() => decodeBatch(new Uint8Array([0xff, 0xff, 0xff])), /malformed raft message/);
    assert.throws(
      () => decodeBatch(encodeBatch([createMessage({ type: "hup" })])),
      /local message type/,
    );
    assert.throws(
      () => decodeBatch(encodeBatch([{ ...m, term: Number.MAX_SAFE_INTEGER + 2 }])),
      /not a safe integer/,
    );
  });
});

describe("HTTP/2 peer transport", () => {
  it("delivers messages in order, batching one turn's messages into one frame", async () => {
    const ra = recorder();
    const rb = recorder();
    const a = node("a", ra);
    const b = node("b", rb);
    const pb = await b.start();
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    try {
      const msgs = Array.from({ length: 100 }, (_, i) => hb("a", "b", i + 1));
      for (const m of msgs) a.send([m]);
      await until(() => rb.msgs.length === 100);
      assert.deepEqual(
        rb.msgs.map((m) => m.term),
        msgs.map((m) => m.term),
      );
      assert.equal(a.stats()["b"]!.framesSent, 1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("delivers what was queued for a peer removed in the same turn (a removed member hears its removal)", async () => {
    const ra = recorder();
    const rb = recorder();
    const a = node("a", ra);
    const b = node("b", rb);
    const pb = await b.start();
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    try {
      // Connected first, as a member is before it is removed.
      a.send([hb("a", "b", 1)]);
      await until(() => rb.msgs.length === 1);
      // The commit that removes b, then b removed from the transport in the same turn.
      a.send([hb("a", "b", 2)]);
      a.removePeer("b");
      await until(() => rb.msgs.length === 2, 5000);
      assert.equal(rb.msgs[1]!.term, 2);
      assert.equal(a.hasPeer("b"), false);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("reports an unreachable peer, then reconnects when it comes up", async () => {
    const ra = recorder();
    const a = node("a", ra);
    await a.start();
    const port = await closedPort();
    a.addPeer("b", `http://127.0.0.1:${port}`);
    try {
      a.send([hb("a", "b", 1)]);
      await until(() => ra.unreachable.includes("b"));
      const rb = recorder();
      const b = nodeOnPort("b", rb, port);
      await b.start();
      try {
        await until(() => {
          a.send([hb("a", "b", 2)]);
          return rb.msgs.length > 0;
        }, 15_000);
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  });

  it("reports as dropped exactly the messages that never reached a peer, not those delivered", async () => {
    const ra = recorder();
    const a = node("a", ra);
    await a.start();
    const port = await closedPort();
    a.addPeer("b", `http://127.0.0.1:${port}`);
    try {
      // Nobody listens: the connection fails before it is established.
      a.send([hb("a", "b", 1), hb("a", "b", 2)]);
      await until(() => ra.dropped.length === 2);
      assert.deepEqual(
        ra.dropped.map((m) => m.term),
        [1, 2],
      );
      // A peer that is up receives them, and nothing is reported dropped.
      const rb = recorder();
      const b = nodeOnPort("b", rb, port);
      await b.start();
      try {
        let term = 3;
        await until(() => {
          a.send([hb("a", "b", term++)]);
          return rb.msgs.length > 0;
        }, 15_000);
        await new Promise((r) => setTimeout(r, 100));
        const delivered = new Set(rb.msgs.map((m) => m.term));
        for (const m of ra.dropped)
          assert.ok(!delivered.has(m.term), `term ${m.term} both dropped and delivered`);
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  });

  it("refuses traffic from another cluster", async () => {
    const rb = recorder();
    const b = node("b", rb, "one");
    const pb = await b.start();
    const a = node("a", recorder(), "two");
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    try {
      for (let i = 0; i < 5; i++) {
        a.send([hb("a", "b", i + 1)]);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(rb.msgs.length, 0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("answers a progress request with the handler's bytes; 'not the leader', another cluster and a silent peer are errors", async () => {
    const rb = recorder();
    let view: Uint8Array | undefined = new TextEncoder().encode('{"members":[]}');
    rb.onProgressRequest = () => view;
    const b = node("b", rb, "one");
    const pb = await b.start();
    const a = node("a", recorder(), "one");
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    const stranger = node("c", recorder(), "two");
    await stranger.start();
    stranger.addPeer("b", `http://127.0.0.1:${pb}`);
    // A port that accepts connections and never answers.
    const accepted = new Set<Socket>();
    const silent = createServer((sock) => void accepted.add(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    a.addPeer("d", `http://127.0.0.1:${(silent.address() as AddressInfo).port}`);
    try {
      assert.equal(new TextDecoder().decode(await a.requestProgress("b", 2000)), '{"members":[]}');
      view = undefined;
      await assert.rejects(a.requestProgress("b", 2000), { code: "NOT_LEADER" });
      await assert.rejects(stranger.requestProgress("b", 2000), {
        code: "UNREACHABLE",
        message: /answered HTTP 403/,
      });
      await assert.rejects(a.requestProgress("d", 300), {
        code: "UNREACHABLE",
        message: /did not answer in 300 ms/,
      });
      await assert.rejects(a.requestProgress("nobody", 300), { code: "UNREACHABLE" });
      // The raft stream to b still works after all that.
      a.send([hb("a", "b", 1)]);
      await until(() => rb.msgs.length === 1);
    } finally {
      await a.stop();
      await stranger.stop();
      await b.stop();
      for (const sock of accepted) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it("streams a large snapshot on its own stream while heartbeats keep flowing", async () => {
    const ra = recorder();
    const rb = recorder();
    const size = 64 * 1024 * 1024;
    const a = node("a", ra, "test", size);
    const b = node("b", rb);
    const pb = await b.start();
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    const rssBefore = process.memoryUsage().rss;
    try {
      a.send([snapMessage("a", "b", 7)]);
      let beats = 0;
      while (rb.snapshots.length === 0) {
        a.send([hb("a", "b", ++beats)]);
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(rb.snapshots[0]!.bytes, size);
      assert.equal(rb.snapshots[0]!.msg.snapshot?.metadata.index, 7);
      await until(() => ra.statuses.includes("b:finish"));
      assert.ok(rb.msgs.length > 0, "heartbeats arrived during the transfer");
      const grew = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
      assert.ok(grew < 200, `memory grew ${grew.toFixed(0)} MB for a 64 MB snapshot`);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("logs a snapshot sent and received once at info, with its size and duration", async () => {
    const sentLog: Logged = [];
    const gotLog: Logged = [];
    const size = 3 * 1024 * 1024 + 5;
    const a = node("a", recorder(), "test", size, sentLog);
    const rb = recorder();
    const b = node("b", rb, "test", 0, gotLog);
    const pb = await b.start();
    await a.start();
    a.addPeer("b", `http://127.0.0.1:${pb}`);
    try {
      const cs = { voters: ["a", "b"], learners: [], votersOutgoing: [], learnersNext: [] };
      a.send([
        createMessage({
          type: "snap",
          from: "a",
          to: "b",
          term: 1,
          snapshot: {
            metadata: { index: 9, term: 1, confState: { ...cs, autoLeave: false } },
            data: new TextEncoder().encode("handle"),
          },
        }),
      ]);
      await until(() => sentLog.some((l) => l.msg === "snapshot sent"));
      await until(() => gotLog.some((l) => l.msg === "snapshot received"));
      const sent = sentLog.filter((l) => l.msg === "snapshot sent");
      const got = gotLog.filter((l) => l.msg === "snapshot received");
      assert.equal(sent.length, 1);
      assert.equal(got.length, 1);
      assert.deepEqual(
        {
          peer: sent[0]!.fields["peer"],
          index: sent[0]!.fields["index"],
          bytes: sent[0]!.fields["bytes"],
        },
        { peer: "b", index: 9, bytes: size },
      );
      assert.deepEqual(
        {
          from: got[0]!.fields["from"],
          index: got[0]!.fields["index"],
          bytes: got[0]!.fields["bytes"],
        },
        { from: "a", index: 9, bytes: size },
      );
      assert.equal(typeof sent[0]!.fields["ms"], "number");
      assert.equal(typeof got[0]!.fields["ms"], "number");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a malformed frame closes the stream without reaching the handler", async () => {
    const rb = recorder();
    const b = node("b", rb);
    const pb = await b.start();
    const s = http2.connect(`http://127.0.0.1:${pb}`);
    try {
      const st = s.request({
        ":method": "POST",
        ":path": "/nexus/raft/v1/stream",
        "nexus-cluster": "test",
        "nexus-from": "z",
      });
      const closed = new Promise<void>((r) => st.on("close", () => r()));
      st.on("error", () => undefined);
      const junk = Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff]);
      st.write(junk);
      await closed;
      assert.equal(rb.msgs.length, 0);
    } finally {
      s.destroy();
      await b.stop();
    }
  });

  it("a connection that goes silent (a partition that drops packets) is found dead by PING and made again", async () => {
    const rb = recorder();
    const b = node("b", rb);
    const pb = await b.start();
    // A TCP relay in front of b that can go silent: it keeps the connections open but stops
    // forwarding anything on them, as a network that drops packets does; new connections made
    // after it heals are relayed again.
    let silent = false;
    const open = new Set<Socket>();
    const relay = createServer((client) => {
      const upstream = connect(pb, "127.0.0.1");
      open.add(client).add(upstream);
      const pipe = (from: Socket, to: Socket): void => {
        from.on("data", (d: Buffer) => {
          if (!silent && !stuck.has(from)) to.write(d);
        });
      };
      pipe(client, upstream);
      pipe(upstream, client);
      for (const sock of [client, upstream]) {
        sock.on("error", () => undefined);
        sock.on("close", () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
    const stuck = new Set<Socket>();
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
    const relayPort = (relay.address() as AddressInfo).port;
    const ra = recorder();
    const a = new Http2Transport({
      id: "a",
      clusterName: "test",
      listenHost: "127.0.0.1",
      listenPort: 0,
      handler: ra,
      openSnapshot: async function* () {},
      pingIntervalMs: 100,
      pingTimeoutMs: 300,
      connectTimeoutMs: 300,
    });
    await a.start();
    try {
      a.addPeer("b", `http://127.0.0.1:${relayPort}`);
      const hb = (n: number): Message =>
        createMessage({ type: "heartbeat", from: "a", to: "b", term: n });
      a.send([hb(1)]);
      await until(() => rb.msgs.length === 1);
      // The partition: every connection made so far stays open but is silent forever.
      silent = true;
      for (const sock of open) stuck.add(sock);
      // Enough to fill HTTP/2's flow-control window, so the dead stream is left waiting to drain.
      const big = (n: number): Message =>
        createMessage({
          type: "app",
          from: "a",
          to: "b",
          term: n,
          entries: [{ type: "normal", term: n, index: n, data: new Uint8Array(64 * 1024) }],
        });
      for (let i = 0; i < 32; i++) {
        a.send([big(100 + i)]);
        await new Promise((r) => setImmediate(r));
      }
      await until(() => a.stats()["b"]!.deadConnections >= 1, 5000);
      // Healed: messages sent now reach b over a new connection.
      silent = false;
      await until(() => {
        a.send([hb(3)]);
        return rb.msgs.some((m) => m.term === 3);
      }, 5000);
      assert.ok(a.stats()["b"]!.reconnects >= 2);
    } finally {
      await a.stop();
      await b.stop();
      for (const sock of open) sock.destroy();
      await new Promise<void>((r) => relay.close(() => r()));
    }
  });
});
