/**
 * Raft messages <-> protobuf (proto/raft.proto). Decoding validates everything a peer sends that
 * can be checked without the receiver's state: a known wire message type (local ones never cross
 * the network), node ids of 1 to 64 printable ASCII characters, safe-integer terms and indexes, a
 * snapshot exactly where one belongs (a `snap` message, with a non-zero index and a term not above
 * the message's), a `prop` with entries, an `app` whose entries follow its index one by one. A
 * malformed message is rejected with a clear error (INVALID_ARGUMENT); it never reaches the core.
 * `leaderCommit` (the leader's unclamped commit index) and `leaderQuorumAgeMs` (how long ago the
 * leader heard from a majority) travel on `app` and `heartbeat` only: on
 * any other type it is dropped (a later version may carry it elsewhere), and absent stays absent
 * (unknown, as from a peer that predates it). Its value is checked against the receiver's own
 * commit index by the core (Raft.noteLeaderCommit), which the codec cannot see.
 * Who may send (membership, identity) is checked by the transport and the runtime, not here.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Entry, Message, MessageType, Snapshot } from "../raft/types.js";
import { NexusError } from "../errors/index.js";
import { MessageBatchSchema, MessageSchema } from "./gen/raft_pb.js";
import type { Message as PbMessage } from "./gen/raft_pb.js";

const TYPES: ReadonlySet<string> = new Set<MessageType>([
  "hup",
  "beat",
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
  "unreachable",
  "snap-status",
  "check-quorum",
  "transfer-leader",
  "timeout-now",
  "read-index",
  "read-index-resp",
]);

/** Message types a peer may send (local ones never cross the network). */
const WIRE_TYPES: ReadonlySet<string> = new Set(
  [...TYPES].filter(
    (t) => !["hup", "beat", "unreachable", "snap-status", "check-quorum"].includes(t),
  ),
);

function bad(what: string): NexusError {
  return new NexusError("INVALID_ARGUMENT", `malformed raft message from peer: ${what}`);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The largest `leaderQuorumAgeMs` on the wire (uint32): a leader that never heard a majority. */
export const MAX_QUORUM_AGE_MS = 0xffffffff;

function num(v: bigint, what: string): number {
  if (v > MAX_SAFE || v < 0n) throw bad(`${what} ${v} is not a safe integer`);
  return Number(v);
}

/** A node id as it may appear on the wire: 1 to 64 printable ASCII characters. */
const ID_RE = /^[\x21-\x7e]{1,64}$/;

/** Whether s is well-formed as a node id on the wire (1 to 64 printable ASCII characters). */
export function isWireNodeId(s: string): boolean {
  return ID_RE.test(s);
}

function id(s: string, what: string): string {
  if (!ID_RE.test(s)) {
    throw bad(`${what} ${JSON.stringify(s.slice(0, 80))} is not a node id (1-64 printable ASCII)`);
  }
  return s;
}

function ids(list: readonly string[], what: string): string[] {
  return list.map((s) => id(s, what));
}

/** The message types that carry the leader's unclamped commit index. */
const CARRIES_LEADER_COMMIT: ReadonlySet<string> = new Set<MessageType>(["app", "heartbeat"]);

function toPb(m: Message): PbMessage {
  return create(MessageSchema, {
    type: m.type,
    to: m.to,
    from: m.from,
    term: BigInt(m.term),
    logTerm: BigInt(m.logTerm),
    index: BigInt(m.index),
    entries: m.entries.map((e) => ({
      term: BigInt(e.term),
      index: BigInt(e.index),
      type: e.type === "conf-change" ? 1 : 0,
      data: e.data,
    })),
    commit: BigInt(m.commit),
    ...(m.snapshot === undefined
      ? {}
      : {
          snapshot: {
            metadata: {
              index: BigInt(m.snapshot.metadata.index),
              term: BigInt(m.snapshot.metadata.term),
              confState: {
                voters: [...m.snapshot.metadata.confState.voters],
                learners: [...m.snapshot.metadata.confState.learners],
                votersOutgoing: [...m.snapshot.metadata.confState.votersOutgoing],
                learnersNext: [...m.snapshot.metadata.confState.learnersNext],
                autoLeave: m.snapshot.metadata.confState.autoLeave,
              },
            },
            data: m.snapshot.data,
          },
        }),
    reject: m.reject,
    rejectHint: BigInt(m.rejectHint),
    context: m.context,
    ...(m.leaderCommit === undefined || !CARRIES_LEADER_COMMIT.has(m.type)
      ? {}
      : { leaderCommit: BigInt(m.leaderCommit) }),
    ...(m.leaderQuorumAgeMs === undefined || !CARRIES_LEADER_COMMIT.has(m.type)
      ? {}
      : {
          leaderQuorumAgeMs: Math.min(
            MAX_QUORUM_AGE_MS,
            Math.max(0, Math.floor(m.leaderQuorumAgeMs)),
          ),
        }),
  });
}

function fromPb(p: PbMessage): Message {
  if (!WIRE_TYPES.has(p.type)) throw bad(`unknown or local message type "${p.type}"`);
  const entries: Entry[] = p.entries.map((e) => {
    if (e.type !== 0 && e.type !== 1) throw bad(`entry type ${e.type}`);
    return {
      term: num(e.term, "entry term"),
      index: num(e.index, "entry index"),
      type: e.type === 1 ? "conf-change" : "normal",
      data: e.data,
    };
  });
  const index = num(p.index, "index");
  const term = num(p.term, "term");
  if (entries.length > 0 && p.type !== "app" && p.type !== "prop") {
    throw bad(`a ${p.type} message carries entries`);
  }
  if (p.type === "prop" && entries.length === 0) throw bad("a prop message without entries");
  if (p.type === "app") {
    // The core appends them after `index` as they are: they must follow it one by one.
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.index !== index + 1 + i) {
        throw bad(
          `app entry ${i} has index ${entries[i]!.index}, expected ${index + 1 + i} (entries follow the message's index)`,
        );
      }
    }
  }
  let snapshot: Snapshot | undefined;
  if (p.snapshot !== undefined) {
    if (p.type !== "snap") throw bad(`a ${p.type} message carries a snapshot`);
    const md = p.snapshot.metadata;
    const cs = md?.confState;
    if (md === undefined || cs === undefined) throw bad("snapshot without metadata");
    const snapIndex = num(md.index, "snapshot index");
    const snapTerm = num(md.term, "snapshot term");
    if (snapIndex === 0 || snapTerm === 0) throw bad("a snapshot at index or term 0");
    if (snapTerm > term) throw bad(`a snapshot of term ${snapTerm} in a message of term ${term}`);
    snapshot = {
      metadata: {
        index: snapIndex,
        term: snapTerm,
        confState: {
          voters: ids(cs.voters, "voter"),
          learners: ids(cs.learners, "learner"),
          votersOutgoing: ids(cs.votersOutgoing, "outgoing voter"),
          learnersNext: ids(cs.learnersNext, "next learner"),
          autoLeave: cs.autoLeave,
        },
      },
      data: p.snapshot.data,
    };
  } else if (p.type === "snap") {
    throw bad("a snap message without a snapshot");
  }
  const leaderCommit =
    p.leaderCommit === undefined || !CARRIES_LEADER_COMMIT.has(p.type)
      ? undefined
      : num(p.leaderCommit, "leaderCommit");
  const leaderQuorumAgeMs =
    p.leaderQuorumAgeMs === undefined || !CARRIES_LEADER_COMMIT.has(p.type)
      ? undefined
      : p.leaderQuorumAgeMs;
  return {
    type: p.type as MessageType,
    to: id(p.to, "to"),
    from: id(p.from, "from"),
    term,
    logTerm: num(p.logTerm, "logTerm"),
    index,
    entries,
    commit: num(p.commit, "commit"),
    snapshot,
    reject: p.reject,
    rejectHint: num(p.rejectHint, "rejectHint"),
    context: p.context,
    ...(leaderCommit === undefined ? {} : { leaderCommit }),
    ...(leaderQuorumAgeMs === undefined ? {} : { leaderQuorumAgeMs }),
  };
}

/** Encodes a batch of messages for one frame. */
export function encodeBatch(msgs: readonly Message[]): Uint8Array {
  return toBinary(MessageBatchSchema, create(MessageBatchSchema, { messages: msgs.map(toPb) }));
}

/** Decodes a frame. Throws INVALID_ARGUMENT for anything malformed. */
export function decodeBatch(b: Uint8Array): Message[] {
  let batch;
  try {
    batch = fromBinary(MessageBatchSchema, b);
  } catch (err) {
    throw bad(`undecodable frame: ${(err as Error).message}`);
  }
  return batch.messages.map(fromPb);
}

/** Encodes one message (the header of a snapshot stream). */
export function encodeMessage(m: Message): Uint8Array {
  return toBinary(MessageSchema, toPb(m));
}

/** Decodes one message. Throws INVALID_ARGUMENT for anything malformed. */
export function decodeMessage(b: Uint8Array): Message {
  let p;
  try {
    p = fromBinary(MessageSchema, b);
  } catch (err) {
    throw bad(`undecodable message: ${(err as Error).message}`);
  }
  return fromPb(p);
}
