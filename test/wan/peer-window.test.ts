/**
 * HTTP/2 flow-control windows sized for a WAN: a snapshot over a link of 100 ms round trip is not
 * held to one 64 KiB window per round trip (HTTP/2's default, about 650 KB/s at 100 ms), and
 * heartbeats keep arriving on the same connection meanwhile.
 */
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { test } from "node:test";
import { createMessage } from "../../src/raft/types.js";
import { snapMessage } from "../transport/messages.js";
import type { Message } from "../../src/raft/types.js";
import { Http2Transport } from "../../src/transport/http2-transport.js";
import type { TransportHandler } from "../../src/transport/http2-transport.js";
import { startRelay } from "./helpers.js";

const SIZE = 8 * 1024 * 1024;

function transport(id: string, handler: TransportHandler): Http2Transport {
  return new Http2Transport({
    id,
    clusterName: "wan",
    listenHost: "127.0.0.1",
    listenPort: 0,
    handler,
    openSnapshot: async function* () {
      const chunk = new Uint8Array(256 * 1024).fill(7);
      for (let sent = 0; sent < SIZE; sent += chunk.byteLength) yield chunk;
    },
  });
}

function handler(onSnapshot: (bytes: number) => void, beats: Message[]): TransportHandler {
  return {
    onMessages: (m) => void beats.push(...m),
    onUnreachable: () => undefined,
    onDropped: () => undefined,
    onSnapshot: async (_m: Message, body: Readable) => {
      let bytes = 0;
      for await (const c of body) bytes += (c as Buffer).byteLength;
      onSnapshot(bytes);
    },
    onSnapshotStatus: () => undefined,
    admitsSender: () => true,
  };
}

test("an 8 MiB snapshot over a 100 ms round trip moves faster than one 64 KiB window per round trip", async () => {
  let received = -1;
  let receivedAt = 0;
  const beats: Message[] = [];
  const a = transport(
    "a",
    handler(() => undefined, []),
  );
  const b = transport(
    "b",
    handler((bytes) => {
      received = bytes;
      receivedAt = performance.now();
    }, beats),
  );
  const pb = await b.start();
  await a.start();
  const relay = await startRelay(pb, 50);
  a.addPeer("b", `http://127.0.0.1:${relay.port}`);
  try {
    const hb = (n: number): Message =>
      createMessage({ type: "heartbeat", from: "a", to: "b", term: 1, commit: n });
    // Connect first (a heartbeat), so the measurement is the transfer.
    a.send([hb(0)]);
    const deadline = performance.now() + 10_000;
    while (beats.length === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const t0 = performance.now();
    a.send([snapMessage("a", "b", 9)]);
    const beatsBefore = beats.length;
    for (let n = 1; received < 0 && performance.now() - t0 < 30_000; n++) {
      a.send([hb(n)]);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(received, SIZE);
    const ms = receivedAt - t0;
    // One 64 KiB window per 100 ms round trip would take 12.8 s for 8 MiB.
    assert.ok(ms < 5000, `8 MiB took ${ms.toFixed(0)} ms over a 100 ms round trip`);
    assert.ok(beats.length > beatsBefore, "no heartbeat arrived while the snapshot was sent");
  } finally {
    await a.stop();
    await b.stop();
    await relay.close();
  }
});
