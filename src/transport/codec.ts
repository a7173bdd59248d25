/**
 * Raft messages <-> protobuf (proto/raft.proto). Decoding validates everything a peer sends: a
 * known message type, safe-integer terms and indexes, a snapshot only where one belongs. A
 * malformed message is rejected with a clear error; it never reaches the core.
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

function num(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} ${v} is not a safe integer`);
  return Number(v);
}

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
  let snapshot: Snapshot | undefined;
  if (p.snapshot !== undefined) {
    if (p.type !== "snap") throw bad(`a ${p.type} message carries a snapshot`);
    const md = p.snapshot.metadata;
    const cs = md?.confState;
    if (md === undefined || cs === undefined) throw bad("snapshot without metadata");
    snapshot = {
      metadata: {
        index: num(md.index, "snapshot index"),
        term: num(md.term, "snapshot term"),
        confState: {
          voters: cs.voters,
          learners: cs.learners,
          votersOutgoing: cs.votersOutgoing,
          learnersNext: cs.learnersNext,
          autoLeave: cs.autoLeave,
        },
      },
      data: p.snapshot.data,
    };
  } else if (p.type === "snap") {
    throw bad("a snap message without a snapshot");
  }
  return {
    type: p.type as MessageType,
    to: p.to,
    from: p.from,
    term: num(p.term, "term"),
    logTerm: num(p.logTerm, "logTerm"),
    index: num(p.index, "index"),
    entries,
    commit: num(p.commit, "commit"),
    snapshot,
    reject: p.reject,
    rejectHint: num(p.rejectHint, "rejectHint"),
    context: p.context,
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
