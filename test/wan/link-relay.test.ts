/**
 * The WAN link relay on loopback: delay each way, order under jitter, a bandwidth cap, stalls
 * (also of bytes already queued), back-pressure, and changes while connections are open.
 */
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { after, before, test } from "node:test";
import { SeededRng } from "../chaos/seeded-rng.js";
import { LinkRelay } from "./link-relay.js";
import { applyControl } from "./relay-control.js";

let echo: Server;
let echoPort = 0;

before(async () => {
  // An echo server: every byte comes back, so a round trip crosses both directions.
  echo = createServer({ noDelay: true }, (s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as AddressInfo).port;
});
after(() => echo.close());

async function relayTo(
  o: Partial<ConstructorParameters<typeof LinkRelay>[0]> = {},
): Promise<LinkRelay> {
  const r = new LinkRelay({
    listenHost: "127.0.0.1",
    listenPort: 0,
    targetHost: "127.0.0.1",
    targetPort: echoPort,
    ...o,
  });
  await r.start();
  return r;
}

function dial(r: LinkRelay): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: r.port, noDelay: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Sends `bytes` and resolves with the ms until they all came back. */
function roundTrip(s: Socket, bytes: Buffer): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let got = 0;
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got >= bytes.length) {
        s.off("data", onData);
        resolve(performance.now() - t0);
      }
    };
    s.on("data", onData);
    s.write(bytes);
  });
}

test("a round trip takes the out delay plus the back delay", async () => {
  const r = await relayTo({
    out: { delayMs: 40, jitterMs: 0, bandwidthBps: 0 },
    back: { delayMs: 25, jitterMs: 0, bandwidthBps: 0 },
  });
  const s = await dial(r);
  const rtts: number[] = [];
  for (let i = 0; i < 5; i++) rtts.push(await roundTrip(s, Buffer.from("ping")));
  s.destroy();
  await r.close();
  for (const rtt of rtts) {
    assert.ok(rtt >= 64, `round trip ${rtt.toFixed(1)} ms is below the 65 ms of delay`);
    // Generous: a loaded machine adds scheduling delay, never removes any.
    assert.ok(rtt < 65 + 500, `round trip ${rtt.toFixed(1)} ms is far above the 65 ms of delay`);
  }
});

test("jitter varies the delay but never reorders the bytes of a connection", async () => {
  const rng = new SeededRng(7);
  const r = await relayTo({
    out: { delayMs: 20, jitterMs: 15, bandwidthBps: 0 },
    random: () => rng.float(),
  });
  const s = await dial(r);
  const received: Buffer[] = [];
  s.on("data", (c: Buffer) => received.push(c));
  const sent: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(`${i},`);
    sent.push(b);
    s.write(b);
    if (i % 10 === 0) await new Promise((res) => setTimeout(res, 2));
  }
  const total = Buffer.concat(sent).length;
  while (Buffer.concat(received).length < total) await new Promise((res) => setTimeout(res, 10));
  s.destroy();
  await r.close();
  assert.equal(Buffer.concat(received).toString(), Buffer.concat(sent).toString());
});

test("a bandwidth cap paces the bytes at the link's rate", async () => {
  const r = await relayTo({ out: { delayMs: 0, jitterMs: 0, bandwidthBps: 1_000_000 } });
  const s = await dial(r);
  // 300 KB at 1 MB/s: about 300 ms (the echo's way back is not capped).
  const ms = await roundTrip(s, Buffer.alloc(300_000, 1));
  s.destroy();
  await r.close();
  assert.ok(ms >= 280, `300 KB at 1 MB/s arrived in ${ms.toFixed(0)} ms`);
  assert.ok(ms < 1500, `300 KB at 1 MB/s took ${ms.toFixed(0)} ms`);
});

test("a stall holds bytes already on the wire and those sent during it", async () => {
  const r = await relayTo({ out: { delayMs: 50, jitterMs: 0, bandwidthBps: 0 } });
  const s = await dial(r);
  const first = roundTrip(s, Buffer.from("a"));
  await new Promise((res) => setTimeout(res, 10));
  r.stall(300);
  const ms = await first;
  assert.ok(ms >= 300, `a byte queued before a 300 ms stall came back after ${ms.toFixed(0)} ms`);
  r.stall(0);
  const after = await roundTrip(s, Buffer.from("b"));
  assert.ok(after < 300, `after the stall a round trip took ${after.toFixed(0)} ms`);
  s.destroy();
  await r.close();
});

test("the relay stops reading when its queue is full (back-pressure reaches the sender)", async () => {
  const r = await relayTo({
    out: { delayMs: 0, jitterMs: 0, bandwidthBps: 200_000 },
    maxQueuedBytes: 64 * 1024,
  });
  const s = await dial(r);
  try {
    s.on("data", () => undefined);
    // 40 MB offered at once; the kernel's socket buffers hold a few MB, the relay 64 KB.
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 640; i++) s.write(chunk);
    await new Promise((res) => setTimeout(res, 300));
    // Without back-pressure the relay would read all 40 MB into its queue at once.
    assert.ok(s.writableLength > 20_000_000, `only ${s.writableLength} bytes wait at the sender`);
  } finally {
    s.destroy();
    await r.close();
  }
});

test("control requests change a link while a connection is open, and bad ones are refused", async () => {
  const r = await relayTo();
  const links = new Map([["127.0.0.1:1", r]]);
  const s = await dial(r);
  const fast = await roundTrip(s, Buffer.from("x"));
  applyControl(links, { link: "*", out: { delayMs: 60 } });
  const slow = await roundTrip(s, Buffer.from("y"));
  assert.ok(slow >= 60 && slow > fast, `round trips ${fast.toFixed(0)} then ${slow.toFixed(0)} ms`);
  assert.throws(() => applyControl(links, { link: "127.0.0.1:2" }), /no link listens/);
  assert.throws(
    () => applyControl(links, { link: "*", out: { delayMs: -1 } }),
    /delayMs must be a number >= 0/,
  );
  assert.throws(
    () => applyControl(links, { link: "*", back: { latency: 5 } as never }),
    /unknown field latency/,
  );
  s.destroy();
  await r.close();
});

test("a refused target resets the dialer's connection", async () => {
  const r = new LinkRelay({
    listenHost: "127.0.0.1",
    listenPort: 0,
    targetHost: "127.0.0.1",
    targetPort: 1,
  });
  await r.start();
  const s = await dial(r);
  const closed = await new Promise<boolean>((resolve) => {
    s.on("close", () => resolve(true));
    s.on("error", () => undefined);
    setTimeout(() => resolve(false), 2000);
  });
  await r.close();
  assert.ok(closed, "the dialer's connection stayed open although the target refused");
});
