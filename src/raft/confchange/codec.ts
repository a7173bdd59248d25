/**
 * The encoding of a ConfChange inside a `conf-change` log entry: UTF-8 JSON with the context in
 * hex. Stable across versions; decoding validates every field so that a corrupted entry is a
 * clear error, not a wrong configuration.
 */
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
} from "../types.js";

const TYPES: readonly ConfChangeType[] = ["add-node", "add-learner", "remove-node"];
const TRANSITIONS: readonly ConfChangeTransition[] = ["auto", "implicit", "explicit"];

function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new Error("bad hex context");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Encodes a ConfChange for a log entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      t: cc.transition,
      c: cc.changes.map((c) => [c.type, c.nodeId]),
      x: toHex(cc.context),
    }),
  );
}

/** Decodes a ConfChange from a log entry. Throws an Error naming what is malformed. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw new Error(`malformed conf change entry: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null) throw new Error("malformed conf change entry");
  const o = v as { t?: unknown; c?: unknown; x?: unknown };
  if (!TRANSITIONS.includes(o.t as ConfChangeTransition)) {
    throw new Error(`malformed conf change entry: bad transition ${String(o.t)}`);
  }
  if (!Array.isArray(o.c)) throw new Error("malformed conf change entry: changes not a list");
  const changes: ConfChangeSingle[] = o.c.map((c: unknown) => {
    if (
      !Array.isArray(c) ||
      c.length !== 2 ||
      !TYPES.includes(c[0] as ConfChangeType) ||
      typeof c[1] !== "string"
    ) {
      throw new Error(`malformed conf change entry: bad change ${JSON.stringify(c)}`);
    }
    return { type: c[0] as ConfChangeType, nodeId: c[1] };
  });
  if (typeof o.x !== "string") throw new Error("malformed conf change entry: bad context");
  return { transition: o.t as ConfChangeTransition, changes, context: fromHex(o.x) };
}

/** Whether the change uses joint consensus, and if so whether it leaves automatically. */
export function enterJointOf(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.transition !== "auto" || cc.changes.length > 1) {
    return { joint: true, autoLeave: cc.transition !== "explicit" };
  }
  return { joint: false, autoLeave: false };
}

/** Whether the change is the empty one that leaves a joint configuration. */
export function leaveJointOf(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}
