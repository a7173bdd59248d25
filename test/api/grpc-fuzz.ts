/**
 * Fuzzing of the gRPC port, seeded and replayable: random and mutated request bodies sent over
 * HTTP/2 to a real server (startApiServer over a one-node replicator on the memory store, its WAL
 * on disk). Inputs are valid requests of every method, mutated (bit flips, bytes changed, cuts,
 * random bytes spliced in, protobuf fields with wrong wire types, overlong varints, lengths past
 * the end, deep nesting), random bytes, and broken gRPC framing (a length prefix that lies, the
 * compressed flag on uncompressed data, gzip that is not gzip, two messages for a unary call, an
 * unknown path or content type).
 *
 * Every call must end, within 10 s, with a gRPC status (or an HTTP refusal for a request that is
 * not gRPC) that says what was wrong: never INTERNAL or UNKNOWN, never a reset stream or a dead
 * connection, and the server must still answer afterwards. A body that decodes as a valid
 * request of a method that changes membership, leadership or runs checks is not sent (it would
 * change the cluster under test); its decoding is what the fuzzing is about, and it is checked
 * in-process (checkMessages) instead.
 *
 *   node --import tsx test/api/grpc-fuzz.ts [--inputs N] [--seed S] [--only I]
 * prints one JSON line with inputs/s and findings, and exits 1 if there is any finding
 * (test/fuzz-runner.ts).
 */
import http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Nexus } from "../../src/api/gen/nexus_pb.js";
import { NexusAdmin } from "../../src/api/gen/nexus_admin_pb.js";
import { NexusChecks } from "../../src/api/gen/nexus_checks_pb.js";
import { startApiServer } from "../../src/api/server.js";
import type { ApiServer } from "../../src/api/server.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/index.js";
import type { RandomSource } from "../../src/raft/random.js";
import { bytes, fuzzMain, fuzzSeed, runInputs } from "../fuzz-runner.js";
import type { FuzzReport, InputOutcome } from "../fuzz-runner.js";
import { freePort } from "../free-port.js";

/** One input that broke a rule. */
export type Finding = FuzzReport["findings"][number];

/** The outcome of a run: accepted, calls that ended OK; refused, with a clear status (by code). */
export interface GrpcFuzzReport extends FuzzReport<"grpc"> {
  readonly codes: Readonly<Record<string, number>>;
  /** Valid bodies of cluster-changing methods, checked in-process instead of sent. */
  readonly notSent: number;
}

const CALL_TIMEOUT_MS = 10_000;
/** gRPC codes that are never a clear refusal: INTERNAL and UNKNOWN. */
const UNCLEAR = new Set(["2", "13"]);

const METHODS: readonly DescMethod[] = [
  ...Nexus.methods,
  ...NexusAdmin.methods,
  ...NexusChecks.methods,
];
const READ_ONLY = new Set(["Check", "Load", "ListNodes", "ListMembers", "NodeStatus", "Save"]);

function text(rnd: RandomSource): string {
  const words = [
    "set",
    "get",
    "delete",
    "cas",
    "keys",
    "dump",
    "k",
    "v",
    "x",
    "",
    " ",
    "é",
    "\u0000",
  ];
  return Array.from({ length: rnd(5) }, () => words[rnd(words.length)]!).join(" ");
}

/** A valid request of `m` with random field values. */
function validRequest(rnd: RandomSource, m: DescMethod): Uint8Array {
  const enc = new TextEncoder();
  const url = ["http://127.0.0.1:1", "", "not a url", "https://[::1]:99999", "http://x"][rnd(5)]!;
  const init: Record<string, unknown> = {};
  for (const f of m.input.fields) {
    if (rnd(3) === 0) continue;
    if (f.fieldKind === "scalar") {
      switch (f.scalar) {
        case 9: // string
          init[f.localName] = f.name.toLowerCase().includes("url") ? url : text(rnd);
          break;
        case 12: // bytes
          init[f.localName] = enc.encode(text(rnd));
          break;
        case 8: // bool
          init[f.localName] = rnd(2) === 0;
          break;
        case 3:
        case 4:
        case 18:
        case 6: // 64-bit
          init[f.localName] = BigInt(rnd(3) === 0 ? -rnd(1000) : rnd(1_000_000));
          break;
        default:
          init[f.localName] = rnd(3) === 0 ? -rnd(1000) : rnd(100_000);
      }
    } else if (f.fieldKind === "map") {
      const args: Record<string, Uint8Array> = {};
      for (let n = rnd(3); n > 0; n--) {
        args[["consistency", "params", "db.index", text(rnd)][rnd(4)]!] = enc.encode(
          ["linearizable", "local", "lease", "[1]", "2", text(rnd)][rnd(6)]!,
        );
      }
      init[f.localName] = args;
    } else if (f.fieldKind === "list" && f.listKind === "scalar") {
      init[f.localName] = Array.from({ length: rnd(3) }, () => url);
    }
  }
  try {
    return toBinary(m.input, create(m.input, init as never));
  } catch {
    return toBinary(m.input, create(m.input));
  }
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Hand-built hostile protobuf: wrong wire types, overlong varints, lengths past the end, nesting. */
function hostileProtobuf(rnd: RandomSource): Uint8Array {
  const out: number[] = [];
  for (let n = 1 + rnd(4); n > 0; n--) {
    const field = 1 + rnd(6);
    switch (rnd(7)) {
      case 0: // a field with a wire type it does not have
        out.push((field << 3) | rnd(6), ...Array.from(bytes(rnd, rnd(6))));
        break;
      case 1: // an overlong varint
        out.push(field << 3, ...Array(11).fill(0xff), 0x01);
        break;
      case 2: // a length past the end
        out.push((field << 3) | 2, ...varint(1000 + rnd(1_000_000)), 1, 2, 3);
        break;
      case 3: // start groups nested deep
        for (let d = rnd(200); d > 0; d--) out.push((field << 3) | 3);
        break;
      case 4: // an end group without a start
        out.push((field << 3) | 4);
        break;
      case 5: // field number 0
        out.push(0, 1);
        break;
      default: // a string that is not UTF-8
        out.push((field << 3) | 2, 2, 0xc3, 0x28);
    }
  }
  return new Uint8Array(out);
}

function mutate(rnd: RandomSource, b: Uint8Array): Uint8Array {
  let out = b.slice();
  for (let n = 1 + rnd(3); n > 0; n--) {
    const i = rnd(out.byteLength + 1);
    switch (rnd(5)) {
      case 0:
        if (out.byteLength > 0) out[Math.min(i, out.byteLength - 1)]! ^= 1 << rnd(8);
        break;
      case 1:
        if (out.byteLength > 0) out[Math.min(i, out.byteLength - 1)] = rnd(256);
        break;
      case 2:
        out = out.slice(0, i);
        break;
      case 3:
        out = new Uint8Array(
          Buffer.concat([out.subarray(0, i), hostileProtobuf(rnd), out.subarray(i)]),
        );
        break;
      default:
        out = new Uint8Array(
          Buffer.concat([out.subarray(0, i), bytes(rnd, 1 + rnd(16)), out.subarray(i)]),
        );
    }
  }
  return out;
}

function envelope(msg: Uint8Array, flags = 0, len = msg.byteLength): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(len >>> 0, 1);
  return Buffer.concat([h, msg]);
}

interface Request {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The method's input, when the path is a method's (for the in-process check). */
  readonly method?: DescMethod;
  /** The message bytes (before framing), for the report. */
  readonly message: Uint8Array;
}

function requestFor(rnd: RandomSource): Request {
  const m = METHODS[rnd(METHODS.length)]!;
  const path = `/${m.parent.typeName}/${m.name}`;
  const headers: Record<string, string> = {
    "content-type": "application/grpc+proto",
    te: "trailers",
  };
  let msg: Uint8Array;
  switch (rnd(6)) {
    case 0:
      msg = bytes(rnd, rnd(64));
      break;
    case 1:
      msg = hostileProtobuf(rnd);
      break;
    case 2:
      msg = validRequest(rnd, m);
      break;
    default:
      msg = mutate(rnd, validRequest(rnd, m));
  }
  let body = envelope(msg);
  switch (rnd(12)) {
    case 0: // a length prefix that promises more than is sent
      body = envelope(msg, 0, msg.byteLength + 1 + rnd(100));
      break;
    case 1: // a length prefix that promises less
      body = envelope(msg, 0, Math.max(0, msg.byteLength - 1 - rnd(4)));
      break;
    case 2: // the compressed flag without compression
      body = envelope(msg, 1);
      break;
    case 3: // gzip, declared, of the message or of garbage
      headers["grpc-encoding"] = "gzip";
      body = envelope(rnd(2) === 0 ? gzipSync(msg) : mutate(rnd, gzipSync(msg)), 1);
      break;
    case 4: // two messages for a unary call
      body = Buffer.concat([envelope(msg), envelope(msg)]);
      break;
    case 5: // an unknown flag, a cut header, no body
      body = [envelope(msg, 0x80), envelope(msg).subarray(0, rnd(5)), Buffer.alloc(0)][rnd(3)]!;
      break;
    case 6:
      headers["grpc-encoding"] = ["br", "zstd", "identity", "x"][rnd(4)]!;
      break;
    case 7:
      headers["content-type"] = ["application/json", "application/grpc+json", "text/plain"][
        rnd(3)
      ]!;
      break;
    case 8:
      headers["grpc-timeout"] = ["1n", "99999999H", "x", "-1S", "5S"][rnd(5)]!;
      break;
    default:
  }
  if (rnd(40) === 0) {
    return {
      path: ["/", "/nexus.api.Nexus/Nope", "/x/y/z", path + "/"][rnd(4)]!,
      headers,
      body,
      message: msg,
    };
  }
  return { path, headers, body, method: m, message: msg };
}

/** The status a request ended with: "grpc:<code>", "http:<status>", or a failure. */
function send(
  session: http2.ClientHttp2Session,
  r: Request,
): Promise<{ outcome: string; message: string }> {
  return new Promise((resolve) => {
    let headers: http2.IncomingHttpHeaders = {};
    let done = false;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ outcome, message: String(headers["grpc-message"] ?? "") });
    };
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      finish("hang");
    }, CALL_TIMEOUT_MS);
    const req = session.request({ ":method": "POST", ":path": r.path, ...r.headers });
    req.on("response", (h) => (headers = { ...headers, ...h }));
    req.on("trailers", (t) => (headers = { ...headers, ...t }));
    req.on("data", () => undefined);
    req.on("end", () => {
      const g = headers["grpc-status"];
      finish(g !== undefined ? `grpc:${String(g)}` : `http:${String(headers[":status"])}`);
    });
    req.on("error", (e: Error & { code?: string }) =>
      finish(`stream error ${e.code ?? e.message}`),
    );
    req.end(r.body);
  });
}

/** A server under fuzzing: one node on the memory store. */
export interface FuzzServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startFuzzServer(): Promise<FuzzServer> {
  const dir = mkdtempSync(join(tmpdir(), "nexus-grpc-fuzz-"));
  const url = `http://127.0.0.1:${await freePort()}`;
  const rep: Replicator = createReplicator({
    nodeUrl: url,
    clusterUrls: [url],
    store: new MemoryStore(),
    logDir: join(dir, "logs"),
    snapDir: join(dir, "snap"),
    heartbeatTickMs: 20,
    electionTickMs: 200,
    replTimeoutMs: 2000,
  });
  await rep.start();
  for (const t = Date.now(); !rep.status().serving;) {
    if (Date.now() - t > 10_000) throw new Error("the fuzzed node did not start serving");
    await new Promise((r) => setTimeout(r, 20));
  }
  const api: ApiServer = await startApiServer({
    replicator: rep,
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: 64 * 1024,
  });
  return {
    port: api.port,
    close: async () => {
      await api.close(500);
      await rep.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fuzzes the gRPC port of `server` with `inputs` inputs from `seed`, `window` calls in flight. */
export async function fuzzGrpc(
  server: FuzzServer,
  seed: number,
  inputs: number,
  only?: number,
  window = 16,
): Promise<GrpcFuzzReport> {
  const codes: Record<string, number> = {};
  let notSent = 0;
  let session = http2.connect(`http://127.0.0.1:${server.port}`);
  session.on("error", () => undefined);
  const one = async (rnd: RandomSource): Promise<InputOutcome> => {
    const r = requestFor(rnd);
    const none = { input: r.body, problem: "", accepted: false, refused: false };
    if (r.method !== undefined && !READ_ONLY.has(r.method.name)) {
      let decodes = true;
      try {
        fromBinary(r.method.input as DescMessage, r.message);
      } catch {
        decodes = false;
      }
      if (decodes) {
        notSent++;
        return none;
      }
    }
    const problems: string[] = [];
    if (session.closed || session.destroyed) {
      problems.push("the connection was closed by the server");
      session = http2.connect(`http://127.0.0.1:${server.port}`);
      session.on("error", () => undefined);
    }
    const { outcome, message } = await send(session, r);
    codes[outcome] = (codes[outcome] ?? 0) + 1;
    let accepted = false;
    let refused = false;
    if (outcome === "grpc:0") accepted = true;
    else if (outcome.startsWith("grpc:")) {
      const code = outcome.slice(5);
      if (UNCLEAR.has(code)) problems.push(`${outcome} ${decodeURIComponent(message)}`);
      else if (message === "") problems.push(`${outcome} without a message`);
      else refused = true;
    } else if (outcome.startsWith("http:") && outcome !== "http:200") refused = true;
    else problems.push(outcome);
    const problem =
      problems.length === 0 ? "" : `${r.path} ${JSON.stringify(r.headers)}: ${problems.join("; ")}`;
    return { ...none, problem, accepted, refused };
  };
  const report = await runInputs({ target: "grpc", seed, inputs, only, window }, one);
  const findings = [...report.findings];
  // Still serving after all that.
  const alive = await send(session, {
    path: "/nexus.api.Nexus/Check",
    headers: { "content-type": "application/grpc+proto", te: "trailers" },
    body: envelope(new Uint8Array(0)),
    message: new Uint8Array(0),
  });
  if (alive.outcome !== "grpc:0") {
    findings.push({
      target: "grpc",
      seed,
      input: -1,
      problem: `the server no longer answers: ${alive.outcome}`,
      bytes: "",
    });
  }
  session.close();
  return { ...report, codes, notSent, findings };
}

export { fuzzSeed };

if (import.meta.url === `file://${process.argv[1]}`) {
  await fuzzMain(process.argv.slice(2), {
    targets: ["grpc"] as const,
    run: async (_target, seed, inputs, only) => {
      const server = await startFuzzServer();
      try {
        return await fuzzGrpc(server, seed, inputs, only);
      } finally {
        await server.close();
      }
    },
  });
}
