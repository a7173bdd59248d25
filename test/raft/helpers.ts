/**
 * Helpers for the core's unit and scenario tests: entries and logs with given terms, a single
 * RawNode driven by hand (Solo), and message builders.
 */
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import type { Ready } from "../../src/raft/raw-node.js";
import type { RawNode } from "../../src/raft/raw-node.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { EMPTY_BYTES, createMessage } from "../../src/raft/types.js";
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
} from "../../src/raft/types.js";
import { newNode } from "./network.js";
import type { TestNodeOptions } from "./network.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function enc(s: string): Uint8Array {
  return encoder.encode(s);
}

/** The string of UTF-8 bytes. */
export function dec(b: Uint8Array): string {
  return decoder.decode(b);
}

/** One normal entry. */
export function entry(index: number, term: number, data = ""): Entry {
  return { index, term, type: "normal", data: enc(data) };
}

/** Normal entries with the given terms, the first at index `first`. */
export function entriesWithTerms(terms: readonly number[], first = 1): Entry[] {
  return terms.map((t, i) => entry(first + i, t));
}

/** The terms of a list of entries (for compact assertions). */
export function termsOf(ents: readonly Entry[]): number[] {
  return ents.map((e) => e.term);
}

/** A ConfState with the given voters and learners. */
export function confState(voters: readonly NodeId[], learners: readonly NodeId[] = []): ConfState {
  return { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/**
 * A storage holding a log whose entries have the given terms (index 1, 2, ...) and a hard state
 * (by default: the last entry's term, no vote, commit 0).
 */
export function storageWithLog(
  voters: readonly NodeId[],
  terms: readonly number[],
  hs: Partial<HardState> = {},
  learners: readonly NodeId[] = [],
): MemoryStorage {
  const st = MemoryStorage.withConfState(confState(voters, learners));
  st.append(entriesWithTerms(terms));
  st.setHardState({
    term: hs.term ?? terms[terms.length - 1] ?? 0,
    vote: hs.vote ?? "",
    commit: hs.commit ?? 0,
  });
  return st;
}

/** Parses "v1 v2 l3 r4" into single changes: v adds a voter, l a learner, r removes. */
export function changes(spec: string): ConfChangeSingle[] {
  return spec
    .split(" ")
    .filter((s) => s !== "")
    .map((s): ConfChangeSingle => {
      const nodeId = s.slice(1);
      switch (s[0]) {
        case "v":
          return { type: "add-node", nodeId };
        case "l":
          return { type: "add-learner", nodeId };
        case "r":
          return { type: "remove-node", nodeId };
        default:
          throw new Error(`bad change ${s}: use v<id>, l<id> or r<id>`);
      }
    });
}

/** A ConfChange from a spec like "v4 r3" (empty: leave the joint configuration). */
export function confChange(spec: string, transition: ConfChangeTransition = "auto"): ConfChange {
  return { transition, changes: changes(spec), context: EMPTY_BYTES };
}

/** Builds a message (zero values for what is not given). */
export function msg(fields: Partial<Message> & Pick<Message, "type">): Message {
  return createMessage(fields);
}

/** What one Solo.drain() produced. */
export interface Drained {
  /** Every Ready handled, in order. */
  readonly readies: Ready[];
  /** Messages of those Readies (`messages` then `persistedMessages` of each). */
  readonly msgs: Message[];
}

/**
 * A single RawNode whose Readies a test handles by hand: persist to its MemoryStorage, apply
 * (conf changes too), advance. Messages are returned to the test, never delivered.
 */
export class Solo {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  readonly applied: Entry[] = [];

  constructor(id: NodeId, storage: MemoryStorage, opts: TestNodeOptions = {}) {
    this.storage = storage;
    this.node = newNode(id, storage, opts);
  }

  /** A Solo with an empty log and the given voters. */
  static of(id: NodeId, voters: readonly NodeId[], opts: TestNodeOptions = {}): Solo {
    return new Solo(id, MemoryStorage.withConfState(confState(voters)), opts);
  }

  get raft(): RawNode["raft"] {
    return this.node.raft;
  }

  /** Persists, applies and advances one Ready (which the test took with ready()). */
  handle(rd: Ready): void {
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
    if (rd.snapshot !== undefined) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    for (const e of rd.committedEntries) {
      this.applied.push(e);
      if (e.type === "conf-change") this.node.applyConfChange(decodeConfChange(e.data));
    }
    this.node.advance(rd);
  }

  /** Handles Readies until there are none; returns them and their messages. */
  drain(): Drained {
    const readies: Ready[] = [];
    const msgs: Message[] = [];
    while (this.node.hasReady()) {
      const rd = this.node.ready();
      readies.push(rd);
      msgs.push(...rd.messages, ...rd.persistedMessages);
      this.handle(rd);
    }
    return { readies, msgs };
  }

  /** Steps each message, then drains. */
  stepAll(...ms: Message[]): Drained {
    for (const m of ms) this.node.step(m);
    return this.drain();
  }

  /** Ticks n times, draining after each tick; returns all messages. */
  tick(n = 1): Message[] {
    const out: Message[] = [];
    for (let i = 0; i < n; i++) {
      this.node.tick();
      out.push(...this.drain().msgs);
    }
    return out;
  }

  /**
   * Campaigns and grants every (pre-)vote request from every peer until this node leads.
   * Returns the messages of the final drain (the new leader's first appends).
   */
  elect(): Message[] {
    this.node.campaign();
    let out = this.drain().msgs;
    for (let round = 0; round < 4 && this.raft.state !== "leader"; round++) {
      const grants: Message[] = [];
      for (const m of out) {
        if (m.type !== "vote" && m.type !== "pre-vote") continue;
        grants.push(
          msg({
            type: m.type === "vote" ? "vote-resp" : "pre-vote-resp",
            from: m.to,
            to: m.from,
            term: m.term,
          }),
        );
      }
      out = this.stepAll(...grants).msgs;
    }
    if (this.raft.state !== "leader") throw new Error("Solo.elect: did not become leader");
    return out;
  }

  /** Normal-entry payloads applied so far (empty no-ops omitted). */
  appliedData(): string[] {
    return this.applied
      .filter((e) => e.type === "normal" && e.data.byteLength > 0)
      .map((e) => dec(e.data));
  }
}

/** Messages of a type (optionally to one node). */
export function ofType(ms: readonly Message[], type: Message["type"], to?: NodeId): Message[] {
  return ms.filter((m) => m.type === type && (to === undefined || m.to === to));
}

/** The accepting append response a follower would send for an append `m`. */
export function ackOf(m: Message): Message {
  const last = m.entries.length > 0 ? m.entries[m.entries.length - 1]!.index : m.index;
  return msg({ type: "app-resp", from: m.to, to: m.from, term: m.term, index: last });
}
