/**
 * Fuzzing of what a peer sends, seeded and replayable:
 * - `frames`: the frame assembler (frame-reader.ts) fed random byte streams and valid frame
 *   sequences cut into random pieces, checked against a plain reference parse; a header frame
 *   followed by a raw rest (a snapshot stream) must hand the rest over byte for byte.
 * - `messages`: the raft message and batch decoders (codec.ts) fed random bytes, mutated valid
 *   encodings, hand-built protobuf values out of range, and valid messages. Each input must either
 *   decode to messages that satisfy every rule the codec promises (and re-encode to the same), or
 *   be refused with INVALID_ARGUMENT "malformed raft message from peer: ...". Anything else (another
 *   exception, a message breaking a rule, a valid message refused or changed, an input taking more
 *   than a second) is a finding.
 *
 * Input i of a run with seed s draws from its own generator, so one input replays alone:
 *   node --import tsx test/transport/peer-fuzz.ts [--inputs N] [--seed S] [--target frames|messages] [--only I]
 * prints one JSON line per target with inputs/s and findings, and exits 1 if there is any finding.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  decodeBatch,
  decodeMessage,
  encodeBatch,
  encodeMessage,
} from "../../src/transport/codec.js";
import { FrameReader, frameOf } from "../../src/transport/frame-reader.js";
import { MessageBatchSchema, MessageSchema } from "../../src/transport/gen/raft_pb.js";
import { isNexusError } from "../../src/errors/index.js";
import type { RandomSource } from "../../src/raft/random.js";
import { bytes, fuzzMain, fuzzSeed, runInputs } from "../fuzz-runner.js";
import type { FuzzReport as RunReport } from "../fuzz-runner.js";
import { createMessage } from "../../src/raft/types.js";
import type { Entry, Message, MessageType } from "../../src/raft/types.js";

/** One input that broke a rule. */
export type Finding = FuzzReport["findings"][number];

/**
 * The outcome of fuzzing one target. accepted: inputs that decoded (messages) or yielded frames;
 * refused: inputs refused with the expected error.
 */
export type FuzzReport = RunReport<"frames" | "messages">;

const WIRE_TYPES: readonly MessageType[] = [
  "prop",
  "app",
  "app-resp",
  "vote",
  "vote-resp",
  "pre-vote",
  "pre-vote-resp",
  "snap",
  "heartbeat",
  "heartbeat-resp",
  "transfer-leader",
  "timeout-now",
  "read-index",
  "read-index-resp",
];
const ID_RE = /^[\x21-\x7e]{1,64}$/;
const SLOW_MS = 1000;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** Cuts b into pieces of random sizes (mostly small, sometimes large). */
function pieces(rnd: RandomSource, b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.byteLength;) {
    const n = 1 + (rnd(4) === 0 ? rnd(b.byteLength) : rnd(16));
    out.push(b.subarray(at, Math.min(b.byteLength, at + n)));
    at += n;
  }
  return out;
}

// ---- frames ----

/** The frames of a byte stream, parsed in one piece: the reference FrameReader must agree with. */
function referenceFrames(b: Uint8Array, cap: number): { frames: Uint8Array[]; tooLarge: boolean } {
  const frames: Uint8Array[] = [];
  let at = 0;
  while (b.byteLength - at >= 4) {
    const len = Buffer.from(b.buffer, b.byteOffset + at, 4).readUInt32BE(0);
    if (len > cap) return { frames, tooLarge: true };
    if (b.byteLength - at - 4 < len) break;
    frames.push(b.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return { frames, tooLarge: false };
}

/** One frames input: returns a problem, "refused" (an oversized prefix, as expected), or "ok". */
function frameInput(rnd: RandomSource): { input: Uint8Array; outcome: string } {
  const cap = rnd(3) === 0 ? 1 + rnd(64) : 1 + rnd(4096);
  let stream: Uint8Array;
  const mode = rnd(3);
  if (mode === 0) {
    stream = bytes(rnd, rnd(300));
  } else {
    const parts: Uint8Array[] = [];
    for (let n = rnd(8); n > 0; n--)
      parts.push(frameOf(bytes(rnd, rnd(3) === 0 ? rnd(cap + 1) : rnd(32))));
    if (rnd(4) === 0) parts.push(frameOf(bytes(rnd, cap + 1 + rnd(16)))); // oversized
    if (rnd(3) === 0) parts.push(bytes(rnd, rnd(8))); // a partial frame at the end
    stream = concat(parts);
  }
  const ref = referenceFrames(stream, cap);
  const reader = new FrameReader(cap);
  const got: Uint8Array[] = [];
  let tooLarge = false;
  outer: for (const p of pieces(rnd, stream)) {
    reader.push(p);
    for (;;) {
      let f: Uint8Array | undefined;
      try {
        f = reader.next();
      } catch (err) {
        if (isNexusError(err, "TOO_LARGE")) {
          tooLarge = true;
          break outer;
        }
        return { input: stream, outcome: `threw ${(err as Error).message}` };
      }
      if (f === undefined) break;
      got.push(f);
    }
  }
  if (tooLarge !== ref.tooLarge) {
    return { input: stream, outcome: `oversized: reader ${tooLarge}, reference ${ref.tooLarge}` };
  }
  if (got.length !== ref.frames.length || got.some((f, i) => !equalBytes(f, ref.frames[i]!))) {
    return { input: stream, outcome: `frames differ: ${got.length} vs ${ref.frames.length}` };
  }
  if (mode === 2 && !tooLarge) {
    // A header frame, then the rest raw: takeRest hands over exactly the bytes after it.
    const head = frameOf(bytes(rnd, rnd(Math.min(cap, 64) + 1)));
    const rest = bytes(rnd, rnd(200));
    const all = concat([head, rest]);
    const r = new FrameReader(cap);
    const after: Uint8Array[] = [];
    let header: Uint8Array | undefined;
    for (const p of pieces(rnd, all)) {
      if (header !== undefined) {
        after.push(p);
        continue;
      }
      r.push(p);
      header = r.next();
      if (header !== undefined) after.push(...r.takeRest());
    }
    if (header === undefined || !equalBytes(header, head.subarray(4))) {
      return { input: all, outcome: "header frame not returned whole" };
    }
    if (!equalBytes(concat(after), rest)) return { input: all, outcome: "rest bytes differ" };
  }
  return { input: stream, outcome: tooLarge ? "refused" : "ok" };
}

// ---- messages ----

function randomId(rnd: RandomSource): string {
  if (rnd(2) === 0) return bytesHex(rnd, 8);
  let s = "";
  for (let n = 1 + rnd(64); n > 0; n--) s += String.fromCharCode(0x21 + rnd(94));
  return s;
}

function bytesHex(rnd: RandomSource, n: number): string {
  return Buffer.from(bytes(rnd, n)).toString("hex");
}

function randomNumber(rnd: RandomSource): number {
  switch (rnd(4)) {
    case 0:
      return 0;
    case 1:
      return rnd(100);
    case 2:
      return rnd(0x100000000);
    default:
      return Number.MAX_SAFE_INTEGER - rnd(3);
  }
}

/** A random message that the codec must accept and round-trip. */
function validMessage(rnd: RandomSource): Message {
  const type = WIRE_TYPES[rnd(WIRE_TYPES.length)]!;
  const term = randomNumber(rnd);
  const index = type === "app" ? rnd(1000) : randomNumber(rnd);
  let entries: Entry[] = [];
  if (type === "prop" || (type === "app" && rnd(2) === 0)) {
    const n = 1 + rnd(4);
    entries = Array.from({ length: n }, (_, i) => ({
      term: rnd(50),
      index: type === "app" ? index + 1 + i : rnd(3),
      type: rnd(2) === 0 ? ("normal" as const) : ("conf-change" as const),
      data: bytes(rnd, rnd(40)),
    }));
  }
  const snapTerm = type === "snap" ? 1 + rnd(Math.max(1, Math.min(term, 1000))) : 0;
  return createMessage({
    type,
    from: randomId(rnd),
    to: randomId(rnd),
    term: type === "snap" ? Math.max(term, snapTerm) : term,
    logTerm: randomNumber(rnd),
    index,
    entries,
    commit: randomNumber(rnd),
    snapshot:
      type === "snap"
        ? {
            metadata: {
              index: 1 + rnd(1_000_000),
              term: snapTerm,
              confState: {
                voters: Array.from({ length: rnd(5) }, () => randomId(rnd)),
                learners: Array.from({ length: rnd(3) }, () => randomId(rnd)),
                votersOutgoing: Array.from({ length: rnd(3) }, () => randomId(rnd)),
                learnersNext: Array.from({ length: rnd(2) }, () => randomId(rnd)),
                autoLeave: rnd(2) === 0,
              },
            },
            data: bytes(rnd, rnd(30)),
          }
        : undefined,
    reject: rnd(2) === 0,
    rejectHint: randomNumber(rnd),
    context: bytes(rnd, rnd(20)),
  });
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x1a, 0x22];

/** Applies 1 to 8 random mutations to an encoding. */
function mutate(rnd: RandomSource, b: Uint8Array, other: Uint8Array): Uint8Array {
  const a = [...b];
  for (let n = 1 + rnd(8); n > 0; n--) {
    const at = rnd(a.length + 1);
    switch (rnd(8)) {
      case 0:
        if (a.length > 0) a[at % a.length]! ^= 1 << rnd(8);
        break;
      case 1:
        if (a.length > 0) a[at % a.length] = INTERESTING[rnd(INTERESTING.length)]!;
        break;
      case 2:
        a.splice(at, 0, rnd(256));
        break;
      case 3:
        a.splice(at, 1 + rnd(4));
        break;
      case 4:
        a.length = Math.min(a.length, at);
        break;
      case 5: {
        const from = rnd(a.length + 1);
        a.splice(at, 0, ...a.slice(from, from + 1 + rnd(16)));
        break;
      }
      case 6: {
        const from = rnd(other.length + 1);
        a.splice(at, 0, ...other.subarray(from, from + 1 + rnd(32)));
        break;
      }
      default:
        // A varint of ten 0xff bytes (beyond 64 bits) or 2^64-1.
        a.splice(at, 0, ...(rnd(2) === 0 ? Array(10).fill(0xff) : [...Array(9).fill(0xff), 0x01]));
    }
  }
  return new Uint8Array(a);
}

/** A hand-built protobuf message with values the codec must refuse or accept by its rules. */
function edgeMessage(rnd: RandomSource): Uint8Array {
  const huge = [
    0n,
    1n,
    BigInt(Number.MAX_SAFE_INTEGER),
    BigInt(Number.MAX_SAFE_INTEGER) + 1n,
    2n ** 64n - 1n,
  ];
  const pick = (): bigint => huge[rnd(huge.length)]!;
  const types = [
    ...WIRE_TYPES,
    "hup",
    "beat",
    "unreachable",
    "snap-status",
    "check-quorum",
    "",
    "APP",
    "x".repeat(100),
  ];
  const ids = ["", "a", "x".repeat(64), "x".repeat(65), "é", "a b", "\u0000", bytesHex(rnd, 8)];
  const m = create(MessageSchema, {
    type: types[rnd(types.length)]!,
    to: ids[rnd(ids.length)]!,
    from: ids[rnd(ids.length)]!,
    term: pick(),
    logTerm: pick(),
    index: rnd(2) === 0 ? pick() : BigInt(rnd(5)),
    commit: pick(),
    rejectHint: pick(),
    entries: Array.from({ length: rnd(4) }, (_, i) => ({
      term: pick(),
      index: rnd(2) === 0 ? BigInt(i + 1) : pick(),
      type: rnd(4) === 0 ? rnd(10) : rnd(2),
      data: bytes(rnd, rnd(8)),
    })),
    ...(rnd(2) === 0
      ? {
          snapshot: {
            ...(rnd(4) === 0
              ? {}
              : {
                  metadata: {
                    index: pick(),
                    term: pick(),
                    ...(rnd(4) === 0
                      ? {}
                      : { confState: { voters: [ids[rnd(ids.length)]!], learners: [] } }),
                  },
                }),
            data: bytes(rnd, rnd(8)),
          },
        }
      : {}),
  });
  return rnd(2) === 0
    ? toBinary(MessageSchema, m)
    : toBinary(MessageBatchSchema, create(MessageBatchSchema, { messages: [m] }));
}

/** Why a decoded message breaks a rule the codec promises, or "". */
function brokenRule(m: Message): string {
  if (!WIRE_TYPES.includes(m.type)) return `type ${m.type}`;
  if (!ID_RE.test(m.from) || !ID_RE.test(m.to)) return "an id";
  for (const [k, v] of [
    ["term", m.term],
    ["logTerm", m.logTerm],
    ["index", m.index],
    ["commit", m.commit],
    ["rejectHint", m.rejectHint],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) return `${k} ${v}`;
  }
  for (const e of m.entries) {
    if (
      !Number.isSafeInteger(e.term) ||
      !Number.isSafeInteger(e.index) ||
      e.term < 0 ||
      e.index < 0
    ) {
      return "an entry's term or index";
    }
    if (e.type !== "normal" && e.type !== "conf-change") return "an entry type";
  }
  if (m.entries.length > 0 && m.type !== "app" && m.type !== "prop")
    return "entries on a " + m.type;
  if (m.type === "prop" && m.entries.length === 0) return "an empty prop";
  if (m.type === "app" && m.entries.some((e, i) => e.index !== m.index + 1 + i))
    return "app entries";
  if ((m.snapshot !== undefined) !== (m.type === "snap")) return "a snapshot where none belongs";
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    if (!Number.isSafeInteger(md.index) || md.index < 1) return "snapshot index";
    if (!Number.isSafeInteger(md.term) || md.term < 1 || md.term > m.term) return "snapshot term";
    const cs = md.confState;
    for (const id of [...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]) {
      if (!ID_RE.test(id)) return "a configuration id";
    }
  }
  return "";
}

/** Decodes b as a batch or a message; "" when the outcome follows the rules, else the problem. */
function decodeChecked(b: Uint8Array, asBatch: boolean): { problem: string; accepted: boolean } {
  let msgs: Message[];
  try {
    msgs = asBatch ? decodeBatch(b) : [decodeMessage(b)];
  } catch (err) {
    if (
      isNexusError(err, "INVALID_ARGUMENT") &&
      err.message.startsWith("malformed raft message from peer: ")
    ) {
      return { problem: "", accepted: false };
    }
    return {
      problem: `unexpected ${(err as Error).name}: ${(err as Error).message}`,
      accepted: false,
    };
  }
  for (const m of msgs) {
    const broken = brokenRule(m);
    if (broken !== "")
      return { problem: `decoded a message breaking a rule: ${broken}`, accepted: true };
  }
  // What decodes re-encodes to messages that decode the same.
  try {
    const again = asBatch
      ? decodeBatch(encodeBatch(msgs))
      : [decodeMessage(encodeMessage(msgs[0]!))];
    if (JSON.stringify(again, replacer) !== JSON.stringify(msgs, replacer)) {
      return { problem: "re-encoding changed the messages", accepted: true };
    }
  } catch (err) {
    return { problem: `re-encoding failed: ${(err as Error).message}`, accepted: true };
  }
  return { problem: "", accepted: true };
}

/** Bytes as hex and object keys sorted, so that equal messages print the same. */
function replacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  return v;
}

function messageInput(rnd: RandomSource): {
  input: Uint8Array;
  problem: string;
  accepted: boolean;
} {
  const asBatch = rnd(2) === 0;
  const valid = (): Message[] =>
    Array.from({ length: asBatch ? rnd(4) + (rnd(3) === 0 ? 0 : 1) : 1 }, () => validMessage(rnd));
  const enc = (ms: Message[]): Uint8Array =>
    asBatch ? encodeBatch(ms) : encodeMessage(ms[0] ?? validMessage(rnd));
  switch (rnd(5)) {
    case 0: {
      const input = bytes(rnd, rnd(200));
      return { input, ...decodeChecked(input, asBatch) };
    }
    case 1:
    case 2: {
      const input = mutate(rnd, enc(valid()), enc(valid()));
      return { input, ...decodeChecked(input, asBatch) };
    }
    case 3: {
      const input = edgeMessage(rnd);
      return { input, ...decodeChecked(input, rnd(2) === 0) };
    }
    default: {
      const ms = valid();
      const input = enc(ms);
      let got: Message[];
      try {
        got = asBatch ? decodeBatch(input) : [decodeMessage(input)];
      } catch (err) {
        return {
          input,
          problem: `a valid message was refused: ${(err as Error).message}`,
          accepted: false,
        };
      }
      const want = asBatch ? ms : ms.slice(0, 1);
      if (JSON.stringify(got, replacer) !== JSON.stringify(want, replacer)) {
        return { input, problem: "a valid message did not round-trip", accepted: true };
      }
      return { input, problem: "", accepted: true };
    }
  }
}

/** Fuzzes one target with `inputs` inputs from `seed` (or only input `only`). */
export function fuzz(
  target: "frames" | "messages",
  seed: number,
  inputs: number,
  only?: number,
): Promise<FuzzReport> {
  return runInputs({ target, seed, inputs, only, slowMs: SLOW_MS }, (rnd) => {
    if (target === "frames") {
      const r = frameInput(rnd);
      const accepted = r.outcome === "ok";
      const refused = r.outcome === "refused";
      return { input: r.input, problem: accepted || refused ? "" : r.outcome, accepted, refused };
    }
    const r = messageInput(rnd);
    const ok = r.problem === "";
    return { ...r, accepted: ok && r.accepted, refused: ok && !r.accepted };
  });
}

export { fuzzSeed };

if (import.meta.url === `file://${process.argv[1]}`) {
  await fuzzMain(process.argv.slice(2), { targets: ["frames", "messages"] as const, run: fuzz });
}
