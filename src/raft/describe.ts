/**
 * Canonical text of the core's values, for golden interaction files, logs and test failures.
 * The formats are stable on purpose: a golden file changes only when behaviour changes.
 *
 * - entry: `5@2 normal "foo"` (index@term, type, data), conf changes decoded:
 *   `6@2 conf-change auto add-node 4`.
 * - message: `1->2 app term=2 log=5@2 commit=5 entries=[6@2 normal "x"]`; only fields that are
 *   set appear, always in the same order.
 * - bytes: quoted when printable ASCII (`"foo"`), otherwise `0x` and hex.
 */
import { decodeConfChange } from "./confchange/codec.js";
import type { Ready, Status } from "./raw-node.js";
import type { Progress } from "./tracker/progress.js";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadState,
  Snapshot,
  SoftState,
} from "./types.js";

/** Bytes as a quoted string when printable ASCII (no quote or backslash), else as hex. */
export function describeBytes(b: Uint8Array): string {
  let printable = true;
  for (const x of b) {
    if (x < 0x20 || x > 0x7e || x === 0x22 || x === 0x5c) {
      printable = false;
      break;
    }
  }
  if (printable) return `"${String.fromCharCode(...b)}"`;
  let s = "0x";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** A conf change: `auto add-node 4 remove-node 2`, or `auto leave-joint` when empty. */
export function describeConfChange(cc: ConfChange): string {
  const parts: string[] = [cc.transition];
  if (cc.changes.length === 0) parts.push("leave-joint");
  for (const c of cc.changes) parts.push(`${c.type} ${c.nodeId}`);
  if (cc.context.byteLength > 0) parts.push(`ctx=${describeBytes(cc.context)}`);
  return parts.join(" ");
}

/** One entry: `index@term type data`. A conf change's data is decoded. */
export function describeEntry(e: Entry): string {
  const head = `${e.index}@${e.term}`;
  if (e.type === "conf-change") {
    let body: string;
    try {
      body = describeConfChange(decodeConfChange(e.data));
    } catch {
      body = `malformed ${describeBytes(e.data)}`;
    }
    return `${head} conf-change ${body}`;
  }
  return `${head} normal ${describeBytes(e.data)}`;
}

/** Entries separated by ", ". */
export function describeEntries(ents: readonly Entry[]): string {
  return ents.map(describeEntry).join(", ");
}

/** `term=2 vote=1 commit=5` (vote omitted when none). */
export function describeHardState(hs: HardState): string {
  let s = `term=${hs.term}`;
  if (hs.vote !== "") s += ` vote=${hs.vote}`;
  return `${s} commit=${hs.commit}`;
}

/** `leader lead=1`, or `follower` when no leader is known. */
export function describeSoftState(ss: SoftState): string {
  return ss.lead === "" ? ss.raftState : `${ss.raftState} lead=${ss.lead}`;
}

function describeIds(ids: readonly NodeId[]): string {
  return `(${[...ids].sort().join(" ")})`;
}

/** `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3) autoleave`. */
export function describeConfState(cs: ConfState): string {
  let s = `voters=${describeIds(cs.voters)}`;
  if (cs.votersOutgoing.length > 0) s += `&&${describeIds(cs.votersOutgoing)}`;
  if (cs.learners.length > 0) s += ` learners=${describeIds(cs.learners)}`;
  if (cs.learnersNext.length > 0) s += ` learners_next=${describeIds(cs.learnersNext)}`;
  if (cs.autoLeave) s += " autoleave";
  return s;
}

/** `index=10 term=2 voters=(1 2 3) data="..."` (data omitted when empty). */
export function describeSnapshot(s: Snapshot): string {
  let out = `index=${s.metadata.index} term=${s.metadata.term} ${describeConfState(s.metadata.confState)}`;
  if (s.data.byteLength > 0) out += ` data=${describeBytes(s.data)}`;
  return out;
}

/** `index=5 ctx="a"`. */
export function describeReadState(rs: ReadState): string {
  return `index=${rs.index} ctx=${describeBytes(rs.requestCtx)}`;
}

/** One message on one line; only the fields that are set, in a fixed order. */
export function describeMessage(m: Message): string {
  const from = m.from === "" ? "_" : m.from;
  const to = m.to === "" ? "_" : m.to;
  let s = `${from}->${to} ${m.type}`;
  if (m.term !== 0) s += ` term=${m.term}`;
  if (m.type === "app" || m.type === "vote" || m.type === "pre-vote") {
    // An append's previous entry; a candidate's last entry.
    s += ` log=${m.index}@${m.logTerm}`;
  } else {
    if (m.index !== 0) s += ` index=${m.index}`;
    // A rejected append response carries the hint's term in logTerm (shown with the hint).
    if (m.logTerm !== 0 && !(m.type === "app-resp" && m.reject)) s += ` logTerm=${m.logTerm}`;
  }
  if (m.commit !== 0) s += ` commit=${m.commit}`;
  // The leader's own commit, when it differs from the (clamped) one a heartbeat carries.
  if (m.leaderCommit !== undefined && m.leaderCommit !== m.commit) {
    s += ` leaderCommit=${m.leaderCommit}`;
  }
  if (m.reject) {
    s += " rejected";
    if (m.type === "app-resp") s += ` hint=${m.rejectHint}@${m.logTerm}`;
    else if (m.rejectHint !== 0) s += ` hint=${m.rejectHint}`;
  } else if (m.rejectHint !== 0) {
    s += ` hint=${m.rejectHint}`;
  }
  if (m.context.byteLength > 0) s += ` ctx=${describeBytes(m.context)}`;
  if (m.entries.length > 0) s += ` entries=[${describeEntries(m.entries)}]`;
  if (m.snapshot !== undefined) s += ` snapshot=[${describeSnapshot(m.snapshot)}]`;
  return s;
}

/** A follower's progress: `replicate match=5 next=6 inflight=2`. */
export function describeProgress(pr: Readonly<Progress>): string {
  let s = `${pr.state} match=${pr.match} next=${pr.next}`;
  if (pr.isLearner) s += " learner";
  if (pr.state === "snapshot") s += ` pendingSnapshot=${pr.pendingSnapshot}`;
  if (pr.msgAppFlowPaused) s += " paused";
  if (!pr.recentActive) s += " inactive";
  const n = pr.inflights.count();
  if (n > 0) s += ` inflight=${n}${pr.inflights.full() ? "[full]" : ""}`;
  return s;
}

/** Every member's progress, one per line, sorted by id: `2: replicate match=5 next=6`. */
export function describeProgressMap(progress: ReadonlyMap<NodeId, Readonly<Progress>>): string[] {
  return [...progress.keys()].sort().map((id) => `${id}: ${describeProgress(progress.get(id)!)}`);
}

/**
 * A Ready as indented lines, one section per non-empty field, in the order the caller handles
 * them. An empty Ready gives no lines.
 */
export function describeReady(rd: Ready): string[] {
  const out: string[] = [];
  if (rd.softState !== undefined) out.push(`SoftState: ${describeSoftState(rd.softState)}`);
  if (rd.hardState !== undefined) out.push(`HardState: ${describeHardState(rd.hardState)}`);
  if (rd.entries.length > 0) {
    out.push("Entries:");
    for (const e of rd.entries) out.push(`  ${describeEntry(e)}`);
  }
  if (rd.snapshot !== undefined) out.push(`Snapshot: ${describeSnapshot(rd.snapshot)}`);
  if (rd.committedEntries.length > 0) {
    out.push("CommittedEntries:");
    for (const e of rd.committedEntries) out.push(`  ${describeEntry(e)}`);
  }
  if (rd.readStates.length > 0) {
    out.push("ReadStates:");
    for (const rs of rd.readStates) out.push(`  ${describeReadState(rs)}`);
  }
  if (rd.messages.length > 0) {
    out.push("Messages:");
    for (const m of rd.messages) out.push(`  ${describeMessage(m)}`);
  }
  if (rd.persistedMessages.length > 0) {
    out.push("PersistedMessages:");
    for (const m of rd.persistedMessages) out.push(`  ${describeMessage(m)}`);
  }
  if (rd.mustSync) out.push("MustSync");
  return out;
}

/**
 * A node's status: role and hard state, log positions, configuration, and on a leader every
 * member's progress.
 */
export function describeStatus(st: Status): string[] {
  const out = [
    `${st.id} ${describeSoftState(st.softState)} ${describeHardState(st.hardState)} ` +
      `applied=${st.applied} lastIndex=${st.lastIndex}`,
    `config: ${describeConfState(st.config)}`,
  ];
  if (st.leadTransferee !== "") out.push(`transferring leadership to ${st.leadTransferee}`);
  if (st.progress !== undefined) out.push(...describeProgressMap(st.progress));
  return out;
}
