/**
 * Consistency checks across replicas (the original listed them as TODO).
 *
 * The leader proposes a CHECK entry every `consistencyCheckIntervalMs`. Every replica, when it
 * applies that entry, pins its store's state at exactly that index, computes its digest (off the
 * apply path when the store can pin a snapshot), and proposes a REPORT entry with the digest and
 * the hash of the outcomes (ok or error, and the result bytes) of every entry it applied since
 * the previous check. Reports are log entries, so every node learns every report in the same
 * order and reaches the same verdict:
 *
 * - For one check, a value (store digest, or outcome hash) reported by more than half of the
 *   check's members is the majority value. A member that reported another value is DIVERGED.
 * - Without such a majority nothing is decided (e.g. 1 against 1 of a 3-node cluster while the
 *   third has not reported).
 * - An outcome hash is only compared when the replica applied every entry since the previous
 *   check itself (not after a restart or a snapshot restore in between): otherwise it reports none.
 *
 * This module is pure: the tracker of reports and verdicts, the report codec, and the running
 * hash of outcomes. RaftNode wires it to the log and the store.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { NexusError } from "../errors/index.js";
import type { NodeId } from "../raft/types.js";
import type { ApplyResult } from "../store/store.js";

/** What one replica reports for one check. */
export interface CheckReport {
  /** The reporting replica. */
  readonly node: NodeId;
  /** The index of the CHECK entry. */
  readonly check: number;
  /** The store's applied index the digest was computed at (must equal `check`). */
  readonly position: number;
  /** The store digest (lowercase hex). */
  readonly digest: string;
  /** Hash of the outcomes of the entries applied since the previous check, or null if this
   * replica did not apply all of them itself. */
  readonly outcomes: string | null;
}

/** A member's standing in one check. */
export type MemberVerdict = "ok" | "diverged" | "pending" | "undecided";

export interface MemberCheck {
  readonly id: NodeId;
  readonly url: string;
  readonly verdict: MemberVerdict;
  readonly report: CheckReport | undefined;
  /** Why it is diverged (which value differs from the majority's). */
  readonly reason: string;
}

/** The state of one check round. */
export interface CheckRound {
  readonly index: number;
  readonly members: readonly MemberCheck[];
  /** Every member reported. */
  readonly complete: boolean;
  /** The majority store digest, when there is one. */
  readonly majorityDigest: string | undefined;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
const HEX64 = /^[0-9a-f]{64}$/;

/** Encodes a report as the data of a REPORT entry. */
export function encodeCheckReport(r: CheckReport): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, ...r }));
}

/** Decodes a REPORT entry's data. Throws CORRUPTED on anything malformed. */
export function decodeCheckReport(b: Uint8Array): CheckReport {
  let o: unknown;
  try {
    o = JSON.parse(dec.decode(b));
  } catch {
    throw new NexusError("CORRUPTED", "malformed consistency report: not JSON");
  }
  const r = o as Record<string, unknown>;
  const ok =
    typeof o === "object" &&
    o !== null &&
    r["v"] === 1 &&
    typeof r["node"] === "string" &&
    Number.isSafeInteger(r["check"]) &&
    Number.isSafeInteger(r["position"]) &&
    typeof r["digest"] === "string" &&
    HEX64.test(r["digest"]) &&
    (r["outcomes"] === null || (typeof r["outcomes"] === "string" && HEX64.test(r["outcomes"])));
  if (!ok) throw new NexusError("CORRUPTED", "malformed consistency report");
  return {
    node: r["node"] as string,
    check: r["check"] as number,
    position: r["position"] as number,
    digest: r["digest"] as string,
    outcomes: r["outcomes"] as string | null,
  };
}

/**
 * The running hash of applied outcomes between two checks.
 * Invariant: `complete` iff every entry applied since the last take() was hashed here.
 */
export class OutcomeHash {
  private hash: Hash = createHash("sha256");
  /** A store opened empty sees every entry from the first; otherwise the first run is partial. */
  constructor(private complete: boolean) {}

  /** Hashes the outcome of entry `index`. */
  add(index: number, r: ApplyResult): void {
    const head = Buffer.alloc(9);
    head.writeDoubleLE(index, 0);
    head[8] = r.ok ? 1 : 0;
    this.hash.update(head);
    const body = r.ok ? r.data : enc.encode(r.error);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.byteLength, 0);
    this.hash.update(len);
    this.hash.update(body);
  }

  /** Entries were applied without passing here (a snapshot restore): the current run is void. */
  invalidate(): void {
    this.complete = false;
  }

  /** The hash of the run since the last take() (null if incomplete), and starts a new run. */
  take(): string | null {
    const out = this.hash.digest("hex");
    const was = this.complete;
    this.hash = createHash("sha256");
    this.complete = true;
    return was ? out : null;
  }
}

/** Rounds kept for status and for late reports. */
const KEPT_ROUNDS = 16;

interface Round {
  readonly index: number;
  readonly members: ReadonlyMap<NodeId, string>;
  readonly reports: Map<NodeId, CheckReport>;
}

/** Counts values and returns the one held by more than half of `of`, if any. */
function majority(values: readonly string[], of: number): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  for (const [v, n] of counts) if (n * 2 > of) return v;
  return undefined;
}

/** Collects check rounds and reports and judges them. */
export class ConsistencyTracker {
  private readonly rounds = new Map<number, Round>();

  /** A CHECK entry was applied at `index`; `members` are the members (id to URL) then. */
  recordCheck(index: number, members: ReadonlyMap<NodeId, string>): void {
    if (this.rounds.has(index)) return;
    this.rounds.set(index, { index, members: new Map(members), reports: new Map() });
    while (this.rounds.size > KEPT_ROUNDS) {
      const oldest = Math.min(...this.rounds.keys());
      this.rounds.delete(oldest);
    }
  }

  /**
   * A REPORT entry was applied. Returns the round it belongs to, judged, or undefined when the
   * round is unknown here (older than what is kept, or before this node's snapshot).
   */
  recordReport(r: CheckReport): CheckRound | undefined {
    const round = this.rounds.get(r.check);
    if (round === undefined || !round.members.has(r.node)) return undefined;
    if (!round.reports.has(r.node)) round.reports.set(r.node, r);
    return this.judge(round);
  }

  /** The judged round at `index`, if known. */
  round(index: number): CheckRound | undefined {
    const r = this.rounds.get(index);
    return r === undefined ? undefined : this.judge(r);
  }

  /** The newest round, if any. */
  latest(): CheckRound | undefined {
    if (this.rounds.size === 0) return undefined;
    return this.round(Math.max(...this.rounds.keys()));
  }

  private judge(round: Round): CheckRound {
    const n = round.members.size;
    const reports = [...round.reports.values()];
    // A digest not taken at the check's index is itself a divergence of the replica.
    const valid = reports.filter((r) => r.position === round.index);
    const majorityDigest = majority(
      valid.map((r) => r.digest),
      n,
    );
    const withOutcomes = valid.filter((r) => r.outcomes !== null);
    const majorityOutcomes = majority(
      withOutcomes.map((r) => r.outcomes!),
      n,
    );
    const members: MemberCheck[] = [...round.members]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, url]) => {
        const report = round.reports.get(id);
        if (report === undefined) return { id, url, verdict: "pending", report, reason: "" };
        if (report.position !== round.index) {
          return {
            id,
            url,
            verdict: "diverged",
            report,
            reason: `its digest was taken at index ${report.position}, not ${round.index}`,
          };
        }
        if (majorityDigest !== undefined && report.digest !== majorityDigest) {
          return {
            id,
            url,
            verdict: "diverged",
            report,
            reason: `its store digest ${report.digest.slice(0, 16)} differs from the majority's ${majorityDigest.slice(0, 16)}`,
          };
        }
        if (
          majorityOutcomes !== undefined &&
          report.outcomes !== null &&
          report.outcomes !== majorityOutcomes
        ) {
          return {
            id,
            url,
            verdict: "diverged",
            report,
            reason:
              "the outcomes of the entries it applied since the previous check differ from the majority's",
          };
        }
        const verdict: MemberVerdict = majorityDigest === undefined ? "undecided" : "ok";
        return { id, url, verdict, report, reason: "" };
      });
    return {
      index: round.index,
      members,
      complete: members.every((m) => m.verdict !== "pending"),
      majorityDigest,
    };
  }
}
