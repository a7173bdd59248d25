/**
 * `npm run bench -- peer-frames [--mib N] [--chunk-kib K] [--paced]`: what it costs a node to
 * receive one large peer frame (an `app` message carrying one N MiB entry, default 16) written to
 * its raft stream in K KiB pieces (default 16, HTTP/2's default DATA frame size), as a peer or an
 * attacker would send it; `--paced` yields to the event loop after each piece so that each goes
 * out as its own DATA frame (a slow or hostile sender). Prints `{"bench":"peer-frames","case":"one-frame","mib":N,"cpuMs":...,
 * "wallMs":...}`: the process's CPU time (user + system) and the wall time from the first byte
 * written to the message reaching the handler. Reassembly that copies the partial frame for each
 * piece costs O(N^2); it should cost O(N).
 */
import http2 from "node:http2";
import { Http2Transport } from "../src/transport/http2-transport.js";
import { encodeBatch } from "../src/transport/codec.js";
import { createMessage } from "../src/raft/types.js";

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: "peer-frames", ...o }) + "\n");
}

export default async function main(args: string[]): Promise<void> {
  let mib = 16;
  let chunkKib = 16;
  let paced = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--mib") mib = Number(args[++i]);
    else if (args[i] === "--chunk-kib") chunkKib = Number(args[++i]);
    else if (args[i] === "--paced") paced = true;
    else
      throw new Error(
        `unknown argument ${args[i]}; usage: npm run bench -- peer-frames [--mib N] [--chunk-kib K] [--paced]`,
      );
  }
  let received = 0;
  const b = new Http2Transport({
    id: "b",
    clusterName: "bench",
    listenHost: "127.0.0.1",
    listenPort: 0,
    handler: {
      onMessages: (msgs) => void (received += msgs.length),
      onUnreachable: () => undefined,
      onSnapshot: async () => undefined,
      onSnapshotStatus: () => undefined,
      admitsSender: () => true,
    },
    openSnapshot: async function* () {},
  });
  const port = await b.start();
  const body = encodeBatch([
    createMessage({
      type: "app",
      from: "a",
      to: "b",
      term: 1,
      index: 0,
      logTerm: 0,
      entries: [{ term: 1, index: 1, type: "normal", data: new Uint8Array(mib * 1024 * 1024) }],
    }),
  ]);
  const frame = Buffer.allocUnsafe(4 + body.byteLength);
  frame.writeUInt32BE(body.byteLength, 0);
  frame.set(body, 4);
  const s = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const st = s.request({
      ":method": "POST",
      ":path": "/nexus/raft/v1/stream",
      "nexus-cluster": "bench",
      "nexus-from": "a",
    });
    st.on("error", () => undefined);
    const piece = chunkKib * 1024;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let off = 0; off < frame.byteLength; off += piece) {
      if (!st.write(frame.subarray(off, Math.min(frame.byteLength, off + piece)))) {
        await new Promise((r) => st.once("drain", r));
      }
      // Paced: one HTTP/2 DATA frame per piece, as a slow or hostile sender makes them.
      if (paced) await new Promise((r) => setImmediate(r));
    }
    while (received === 0) await new Promise((r) => setImmediate(r));
    const cpu = process.cpuUsage(cpu0);
    line({
      case: "one-frame",
      mib,
      chunkKib,
      paced,
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      wallMs: Math.round(performance.now() - t0),
    });
    st.close();
  } finally {
    s.destroy();
    await b.stop();
  }
}
