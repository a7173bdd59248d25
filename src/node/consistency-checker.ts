/**
 * The runtime side of consistency checks (see consistency.ts for the protocol and the verdicts):
 * the leader's periodic CHECK proposals, each replica's digest and REPORT when it applies a
 * CHECK, and what a replica does when the reports show that it diverged: it says so loudly,
 * answers NOT_SERVING, hands leadership away, remembers it across restarts (a DIVERGED file in
 * its snapshot folder), and with `onDivergence: "stop"` also stops applying.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { NodeId } from "../raft/types.js";
import type { Store } from "../store/store.js";
import type { CheckRound } from "./consistency.js";
import { ConsistencyTracker, decodeCheckReport, encodeCheckReport } from "./consistency.js";
import type { EntryPayload, PayloadKind } from "./entry-payload.js";
import { requestKey } from "./entry-payload.js";
import type { NexusLogger } from "./options.js";
import { Waiters } from "./waiters.js";

/** What a replica does once it knows it diverged. */
export type DivergenceAction = "report" | "stop";

/** A replica's own divergence, as it learned it from a check. */
export interface Divergence {
  /** The index of the check that found it. */
  readonly index: number;
  readonly reason: string;
}

/** What the checker needs from the node that owns it. */
export interface ConsistencyCheckerDeps {
  readonly id: NodeId;
  readonly store: Store;
  readonly logger: NexusLogger;
  /** The folder of the DIVERGED marker (the node's snapshot folder). */
  readonly markerDir: string;
  /** Milliseconds between the leader's checks; 0 for none. */
  readonly intervalMs: number;
  readonly onDivergence: DivergenceAction;
  /** Members (id to URL) as this node knows them now. */
  members(): ReadonlyMap<NodeId, string>;
  isLeader(): boolean;
  /** Proposes an internal entry; throws NexusError NO_LEADER / PROPOSAL_DROPPED when refused. */
  propose(kind: PayloadKind, data: Uint8Array, requestId: Uint8Array): void;
  /** Stops applying for good (stop mode). */
  halt(reason: string): void;
  /** Hands leadership to another voter if this node leads. */
  stepAside(): void;
  /** Told once when this replica learns it diverged (after the marker write is started). */
  onDiverged?(div: Divergence): void;
}

const MARKER = "DIVERGED";
const EMPTY = new Uint8Array(0);

export class ConsistencyChecker {
  private readonly tracker = new ConsistencyTracker();
  private readonly checks = new Waiters<number>();
  /** Resolvers of waitRound() calls, woken when a report arrives. */
  private roundWaiters: (() => void)[] = [];
  private diverged: Divergence | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Divergences of other members already logged, "index:id". */
  private readonly logged = new Set<string>();
  private stopped = false;

  constructor(private readonly d: ConsistencyCheckerDeps) {}

  /** Reads the DIVERGED marker of an earlier run: the replica stays diverged until repaired. */
  async open(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.d.markerDir, MARKER), "utf8");
    } catch {
      return;
    }
    let div: Divergence;
    try {
      const o = JSON.parse(text) as { index?: unknown; reason?: unknown };
      if (typeof o.index !== "number" || typeof o.reason !== "string") throw new Error("fields");
      div = { index: o.index, reason: o.reason };
    } catch {
      div = { index: 0, reason: `an unreadable ${MARKER} file says an earlier check found it` };
    }
    this.diverged = div;
    this.d.logger.error(
      {
        checkIndex: div.index,
        reason: div.reason,
        marker: join(this.d.markerDir, MARKER),
      },
      "this replica DIVERGED (found by an earlier consistency check)",
    );
    if (this.d.onDivergence === "stop") this.d.halt(this.describe(div));
  }

  /** Starts the leader's periodic checks. */
  start(): void {
    if (this.d.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      if (!this.d.isLeader()) return;
      this.proposeCheck(Math.min(this.d.intervalMs, 30_000)).catch((err: unknown) =>
        this.d.logger.warn({ error: (err as Error).message }, "consistency check not proposed"),
      );
    }, this.d.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.checks.rejectAll(() => new NexusError("STOPPED", "the node stopped"));
    for (const w of this.roundWaiters) w();
    this.roundWaiters = [];
  }

  /** This replica's divergence, if a check found one. */
  divergence(): Divergence | undefined {
    return this.diverged;
  }

  /** The judged round of the check at `index`, or the newest one. */
  round(index?: number): CheckRound | undefined {
    return index === undefined ? this.tracker.latest() : this.tracker.round(index);
  }

  /**
   * Proposes a CHECK entry and resolves with its index once it is applied here. Rejects with
   * NO_LEADER / PROPOSAL_DROPPED (nothing proposed) or TIMEOUT.
   */
  async proposeCheck(timeoutMs: number): Promise<number> {
    const requestId = new Uint8Array(randomBytes(16));
    const applied = this.checks.wait(
      requestKey(requestId),
      timeoutMs,
      () =>
        new NexusError(
          "TIMEOUT",
          `the consistency check was not applied on this node within ${timeoutMs} ms; retry`,
        ),
    );
    try {
      this.d.propose("check", EMPTY, requestId);
    } catch (err) {
      this.checks.reject(requestKey(requestId), err as Error);
    }
    return applied;
  }

  /** Resolves once the round at `index` has every member's report, or after timeoutMs. */
  async waitRound(index: number, timeoutMs: number): Promise<CheckRound | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.tracker.round(index);
      if ((r !== undefined && r.complete) || this.stopped || Date.now() >= deadline) return r;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.roundWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * The CHECK entry at `index` was applied: the store is at exactly `index` until this resolves.
   * Pins the store's state, then (while applying goes on) computes the digest and reports it.
   */
  async onCheck(payload: EntryPayload, index: number, outcomes: string | null): Promise<void> {
    this.tracker.recordCheck(index, this.d.members());
    this.checks.resolve(requestKey(payload.requestId), index);
    let pending;
    try {
      pending = await this.d.store.digest();
    } catch (err) {
      this.d.logger.warn(
        {
          checkIndex: index,
          error: (err as Error).message,
        },
        "consistency check skipped here: the store could not digest",
      );
      return;
    }
    const position = pending.position.index;
    pending.digest.then(
      (digest) =>
        this.report(
          encodeCheckReport({ node: this.d.id, check: index, position, digest, outcomes }),
        ),
      (err: unknown) =>
        this.d.logger.warn(
          {
            checkIndex: index,
            error: (err as Error).message,
          },
          "consistency check skipped here: the digest failed",
        ),
    );
  }

  /** Proposes this replica's REPORT, riding out a short election. */
  private report(data: Uint8Array): void {
    const attempt = (left: number): void => {
      if (this.stopped) return;
      try {
        this.d.propose("check-report", data, new Uint8Array(randomBytes(16)));
      } catch (err) {
        if (left <= 0) {
          this.d.logger.warn({ error: (err as Error).message }, "consistency report not proposed");
          return;
        }
        setTimeout(() => attempt(left - 1), 200).unref();
      }
    };
    attempt(25);
  }

  /** A REPORT entry was applied: judge its round. */
  onReport(payload: EntryPayload): void {
    let round: CheckRound | undefined;
    try {
      round = this.tracker.recordReport(decodeCheckReport(payload.data));
    } catch (err) {
      this.d.logger.warn(
        {
          error: (err as Error).message,
        },
        "ignored a malformed consistency report",
      );
      return;
    }
    const waiters = this.roundWaiters;
    this.roundWaiters = [];
    for (const w of waiters) w();
    if (round === undefined) return;
    for (const m of round.members) {
      if (m.id === this.d.id) {
        if (m.verdict === "diverged") this.markDiverged({ index: round.index, reason: m.reason });
        else if (m.verdict === "ok" && this.diverged !== undefined) this.clearDiverged(round.index);
        continue;
      }
      if (m.verdict !== "diverged" || this.logged.has(`${round.index}:${m.id}`)) continue;
      this.logged.add(`${round.index}:${m.id}`);
      this.d.logger.error(
        {
          replica: m.id,
          url: m.url,
          checkIndex: round.index,
          reason: m.reason,
        },
        "a replica DIVERGED from the majority",
      );
    }
  }

  private describe(div: Divergence): string {
    return `this replica diverged from the others at the consistency check of index ${div.index}: ${div.reason}`;
  }

  private markDiverged(div: Divergence): void {
    if (this.diverged !== undefined) return;
    this.diverged = div;
    const marker = join(this.d.markerDir, MARKER);
    this.d.logger.error(
      {
        checkIndex: div.index,
        reason: div.reason,
        action: this.d.onDivergence,
        marker,
      },
      "THIS REPLICA DIVERGED: its store no longer matches the majority's; it answers NOT_SERVING. " +
        "Rebuild it: stop it, delete its data (store, WAL, snapshots) and add it again",
    );
    writeFile(marker, JSON.stringify(div) + "\n").catch((err: unknown) =>
      this.d.logger.error(
        {
          error: (err as Error).message,
        },
        "could not write the DIVERGED marker",
      ),
    );
    this.d.onDiverged?.(div);
    // A replica that refuses requests should not lead the others.
    this.d.stepAside();
    if (this.d.onDivergence === "stop") this.d.halt(this.describe(div));
  }

  /** A later check found this replica in agreement again (report mode; it kept applying). */
  private clearDiverged(index: number): void {
    if (this.d.onDivergence === "stop") return;
    this.d.logger.warn({ checkIndex: index }, "this replica agrees with the majority again");
    this.diverged = undefined;
    rm(join(this.d.markerDir, MARKER), { force: true }).catch(() => undefined);
  }
}
