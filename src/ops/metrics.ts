/**
 * The node's metrics: one prom-client Registry per node (never the global one), fed three ways:
 * events from the runtime through the NodeMetrics sink (WAL fsync, snapshot streams), events from
 * the measured Replicator and Store wrappers (saves, loads, applies, snapshots taken), and gauges
 * read at scrape time from the Replicator's status and the runtime's view (peers, checks).
 * Every event is also handed to the listeners (StatsD) and to the recent-rates window of the page.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { NodeMetrics, NodeMetricsView, SnapshotTransfer } from "../node/node-metrics.js";
import type { ReadConsistency, Replicator } from "../node/replicator.js";
import type { LongTask } from "../node/progress-board.js";
import { RecentRates } from "./recent-rates.js";

/** How a save ended, as a label: ok, or why not. */
export type SaveOutcome =
  "ok" | "store_error" | "dropped" | "no_leader" | "unknown_outcome" | "not_serving" | "error";

/** How a load ended. */
export type LoadOutcome =
  "ok" | "store_error" | "no_leader" | "timeout" | "not_serving" | "too_stale" | "error";

/** Something else that hears every event (StatsD). */
export interface MetricsListener {
  saved(ms: number, outcome: SaveOutcome): void;
  loaded(ms: number, outcome: LoadOutcome, mode: ReadConsistency): void;
  applied(ms: number, entries: number): void;
  walSynced(ms: number, bytes: number): void;
  snapshotTaken(ms: number, bytes: number): void;
  snapshotTransferred(t: SnapshotTransfer, ms: number, ok: boolean): void;
  leaderChanged(term: number, leader: string): void;
}

/** Latency buckets in seconds: 0.5 ms to 10 s. */
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Snapshots take longer: 10 ms to 10 minutes. */
const SNAPSHOT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600];

const ROLES = ["follower", "pre-candidate", "candidate", "leader"] as const;

/** A leader change as this node saw it. */
export interface LeaderChange {
  readonly at: string;
  readonly term: number;
  /** The new leader's id, "" when none is known. */
  readonly leader: string;
}

export class OpsMetrics implements NodeMetrics {
  readonly registry = new Registry();
  readonly rates = new RecentRates();
  private view: NodeMetricsView | undefined;
  private readonly listeners: MetricsListener[] = [];
  private lastLeader: string | undefined;
  private lastTerm = 0;
  private readonly changes: LeaderChange[] = [];
  private sampler: NodeJS.Timeout | undefined;

  private readonly leaderChanges: Counter;
  private readonly proposals: Counter<"outcome">;
  private readonly saveSeconds: Histogram<"outcome">;
  private readonly loadSeconds: Histogram<"outcome" | "mode">;
  private readonly applySeconds: Histogram;
  private readonly appliedEntries: Counter;
  private readonly walSyncSeconds: Histogram;
  private readonly walBytes: Counter;
  private readonly snapshotsTaken: Counter;
  private readonly snapshotTakeSeconds: Histogram;
  private readonly snapshotBytes: Counter<"direction">;
  private readonly snapshotTransfers: Counter<"direction" | "outcome">;
  private readonly snapshotTransferSeconds: Histogram<"direction">;
  private readonly checks: Counter<"result">;
  private readonly backups: Counter<"outcome">;
  private readonly backupSeconds: Histogram;
  private readonly backupLastSuccess: Gauge;
  private readonly backupLastBytes: Gauge;
  private readonly backupUploads: Counter<"outcome">;
  private lastCheckCounted = 0;

  /**
   * @param rep the replicator whose status the gauges read (it may be started later).
   * @param version the build's version, for nexus_build_info.
   */
  constructor(
    private readonly rep: () => Replicator | undefined,
    version: string,
  ) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    new Gauge({
      name: "nexus_build_info",
      help: "Always 1; the version of nexus-raft this node runs is the label",
      labelNames: ["version"],
      registers: [r],
    }).set({ version }, 1);
    const status = (): ReturnType<Replicator["status"]> | undefined => {
      try {
        return this.rep()?.status();
      } catch {
        return undefined; // not started or stopped
      }
    };
    const gauge = (name: string, help: string, f: () => number | undefined): void => {
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          const v = f();
          if (v !== undefined) this.set(v);
        },
      });
    };
    gauge("nexus_term", "The current Raft term", () => status()?.term);
    gauge("nexus_commit_index", "The highest log index known committed", () => status()?.commit);
    gauge("nexus_applied_index", "The highest log index applied to the store", () => {
      return status()?.applied;
    });
    gauge("nexus_last_index", "The last index in this node's log", () => status()?.lastIndex);
    gauge("nexus_apply_lag_entries", "Committed entries not yet applied here", () => {
      const s = status();
      return s === undefined ? undefined : Math.max(0, s.commit - s.applied);
    });
    gauge("nexus_has_leader", "1 when this node knows a leader", () => {
      const s = status();
      return s === undefined ? undefined : s.leader === "" ? 0 : 1;
    });
    gauge("nexus_serving", "1 when this node can serve requests", () => {
      const s = status();
      return s === undefined ? undefined : s.serving ? 1 : 0;
    });
    gauge("nexus_diverged", "1 when a consistency check found this replica diverged", () => {
      const s = status();
      return s === undefined ? undefined : s.diverged === undefined ? 0 : 1;
    });
    new Gauge({
      name: "nexus_role",
      help: "1 for this node's current Raft role",
      labelNames: ["role"],
      registers: [r],
      collect() {
        const s = status();
        if (s === undefined) return;
        for (const role of ROLES) this.set({ role }, s.role === role ? 1 : 0);
      },
    });
    this.leaderChanges = new Counter({
      name: "nexus_leader_changes_total",
      help: "Times the leader this node knows changed (including to none)",
      registers: [r],
    });
    this.proposals = new Counter({
      name: "nexus_proposals_total",
      help: "Saves proposed through this node, by outcome (dropped, no_leader: not written; unknown_outcome: may be written)",
      labelNames: ["outcome"],
      registers: [r],
    });
    this.saveSeconds = new Histogram({
      name: "nexus_save_duration_seconds",
      help: "Save latency at this node, by outcome",
      labelNames: ["outcome"],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.loadSeconds = new Histogram({
      name: "nexus_load_duration_seconds",
      help: "Load latency at this node, by outcome and read mode",
      labelNames: ["outcome", "mode"],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.applySeconds = new Histogram({
      name: "nexus_store_apply_duration_seconds",
      help: "Time the store took to apply one batch of committed entries",
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.appliedEntries = new Counter({
      name: "nexus_store_applied_entries_total",
      help: "Entries handed to the store's apply",
      registers: [r],
    });
    this.walSyncSeconds = new Histogram({
      name: "nexus_wal_fsync_duration_seconds",
      help: "Time of one WAL batch write and its fdatasync",
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.walBytes = new Counter({
      name: "nexus_wal_written_bytes_total",
      help: "Bytes written to the WAL",
      registers: [r],
    });
    this.snapshotsTaken = new Counter({
      name: "nexus_snapshots_taken_total",
      help: "Snapshots of the store taken by this node",
      registers: [r],
    });
    this.snapshotTakeSeconds = new Histogram({
      name: "nexus_snapshot_take_duration_seconds",
      help: "Time to read the store's backup for one snapshot",
      buckets: SNAPSHOT_BUCKETS,
      registers: [r],
    });
    this.snapshotBytes = new Counter({
      name: "nexus_snapshot_bytes_total",
      help: "Snapshot bytes taken, sent to peers and received from the leader",
      labelNames: ["direction"],
      registers: [r],
    });
    this.snapshotTransfers = new Counter({
      name: "nexus_snapshot_transfers_total",
      help: "Snapshot streams sent or received, by outcome (ok or cut)",
      labelNames: ["direction", "outcome"],
      registers: [r],
    });
    this.snapshotTransferSeconds = new Histogram({
      name: "nexus_snapshot_transfer_duration_seconds",
      help: "Time of one snapshot stream to or from a peer",
      labelNames: ["direction"],
      buckets: SNAPSHOT_BUCKETS,
      registers: [r],
    });
    const view = (): NodeMetricsView | undefined => this.view;
    gauge(
      "nexus_heartbeat_seconds",
      "The leader's heartbeat interval this node runs with (measured with -nexus-heartbeat-ms auto)",
      () => {
        const t = view()?.timing?.();
        return t === undefined ? undefined : t.heartbeatTickMs / 1000;
      },
    );
    gauge(
      "nexus_election_timeout_seconds",
      "The election timeout this node runs with (measured with -nexus-heartbeat-ms auto)",
      () => {
        const t = view()?.timing?.();
        return t === undefined ? undefined : t.electionTickMs / 1000;
      },
    );
    new Gauge({
      name: "nexus_snapshot_transfer_bytes",
      help: "Bytes so far of a snapshot stream in flight, by direction and peer",
      labelNames: ["direction", "peer"],
      registers: [r],
      collect() {
        this.reset();
        for (const t of view()?.transfers() ?? []) {
          this.set({ direction: t.direction, peer: t.peer }, t.bytes);
        }
      },
    });
    const perTask = (name: string, help: string, f: (t: LongTask) => number | undefined): void =>
      void new Gauge({
        name,
        help,
        labelNames: ["task"],
        registers: [r],
        collect() {
          this.reset();
          for (const t of view()?.longTasks() ?? []) {
            const v = f(t);
            if (v !== undefined) this.set({ task: t.kind }, v);
          }
        },
      });
    perTask(
      "nexus_task_seconds",
      "Seconds so far of long work running now: snapshot-restore, consistency-digest",
      (t) => (Date.now() - t.startedAt) / 1000,
    );
    perTask("nexus_task_bytes", "Bytes done so far of long work running now", (t) => t.bytes);
    perTask(
      "nexus_task_total_bytes",
      "Bytes in all of long work running now, when known",
      (t) => t.totalBytes,
    );
    const perPeer = (
      name: string,
      help: string,
      kind: "counter" | "gauge",
      f: (p: ReturnType<NodeMetricsView["peers"]>[string]) => number | undefined,
    ): void => {
      const collect = function (this: Counter<"peer"> | Gauge<"peer">): void {
        this.reset();
        for (const [peer, p] of Object.entries(view()?.peers() ?? {})) {
          const v = f(p);
          if (v !== undefined) this.inc({ peer }, v);
        }
      };
      if (kind === "counter")
        new Counter({ name, help, labelNames: ["peer"], registers: [r], collect });
      else new Gauge({ name, help, labelNames: ["peer"], registers: [r], collect });
    };
    perPeer(
      "nexus_peer_rtt_seconds",
      "Round-trip time of the last PING answered by the peer",
      "gauge",
      (p) => (p.rttMs < 0 ? undefined : p.rttMs / 1000),
    );
    perPeer(
      "nexus_peer_messages_sent_total",
      "Raft messages sent to the peer",
      "counter",
      (p) => p.messagesSent,
    );
    perPeer(
      "nexus_peer_sent_bytes_total",
      "Bytes of Raft messages sent to the peer",
      "counter",
      (p) => p.bytesSent,
    );
    perPeer(
      "nexus_peer_dropped_messages_total",
      "Messages to the peer dropped (queue full, connection lost)",
      "counter",
      (p) => p.dropped,
    );
    perPeer(
      "nexus_peer_reconnects_total",
      "Connections to the peer made again",
      "counter",
      (p) => p.reconnects,
    );
    perPeer(
      "nexus_peer_dead_connections_total",
      "Connections to the peer found dead (no PING answer)",
      "counter",
      (p) => p.deadConnections,
    );
    perPeer(
      "nexus_peer_queue_depth",
      "Messages waiting to be sent to the peer",
      "gauge",
      (p) => p.queued,
    );
    const members = (): ReturnType<Replicator["listMembers"]> | undefined => {
      try {
        return this.rep()?.listMembers();
      } catch {
        return undefined;
      }
    };
    new Gauge({
      name: "nexus_member_match_index",
      help: "The last index known replicated to each member (on the leader only)",
      labelNames: ["member"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of members()?.members ?? []) {
          if (m.progress !== undefined) this.set({ member: m.url }, m.progress.match);
        }
      },
    });
    new Gauge({
      name: "nexus_member_reachable",
      help: "1 when the member answered the leader within the election timeout (on the leader only)",
      labelNames: ["member"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of members()?.members ?? []) {
          if (m.progress !== undefined) this.set({ member: m.url }, m.progress.reachable ? 1 : 0);
        }
      },
    });
    this.checks = new Counter({
      name: "nexus_consistency_checks_total",
      help: "Consistency checks seen complete or judged here, by result (ok, diverged, undecided)",
      labelNames: ["result"],
      registers: [r],
    });
    this.backups = new Counter({
      name: "nexus_backups_total",
      help: "Periodic backups this node took as the leader, by outcome (ok or failed)",
      labelNames: ["outcome"],
      registers: [r],
    });
    this.backupSeconds = new Histogram({
      name: "nexus_backup_duration_seconds",
      help: "Time to take and write one periodic backup",
      buckets: SNAPSHOT_BUCKETS,
      registers: [r],
    });
    this.backupLastSuccess = new Gauge({
      name: "nexus_backup_last_success_timestamp_seconds",
      help: "When this node last wrote a periodic backup (Unix time; absent until it did)",
      registers: [r],
    });
    this.backupLastBytes = new Gauge({
      name: "nexus_backup_last_size_bytes",
      help: "Data bytes of the last periodic backup this node wrote",
      registers: [r],
    });
    this.backupUploads = new Counter({
      name: "nexus_backup_uploads_total",
      help: "Runs of -backup-upload-cmd, by outcome (ok: exit 0; failed: another exit, a signal, or it could not run)",
      labelNames: ["outcome"],
      registers: [r],
    });
    gauge("nexus_consistency_last_check_index", "Log index of the newest consistency check", () => {
      return this.view?.latestCheck()?.index;
    });
  }

  /** Adds a listener that hears every event from now on. */
  listen(l: MetricsListener): void {
    this.listeners.push(l);
  }

  /** Starts watching the leader (every `everyMs`); stop() ends it. */
  start(everyMs = 200): void {
    this.sampler ??= setInterval(() => this.sample(), everyMs);
    this.sampler.unref();
  }

  stop(): void {
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.sampler = undefined;
  }

  /** Leader changes seen, newest last (at most 20). */
  recentLeaderChanges(): readonly LeaderChange[] {
    return this.changes;
  }

  /** The runtime's view, once the node started. */
  nodeView(): NodeMetricsView | undefined {
    return this.view;
  }

  /** Reads the status once: counts a leader change and newly finished consistency checks. */
  sample(): void {
    let s: ReturnType<Replicator["status"]> | undefined;
    try {
      s = this.rep()?.status();
    } catch {
      return;
    }
    if (s === undefined) return;
    if (this.lastLeader !== s.leader) {
      if (this.lastLeader !== undefined) {
        this.leaderChanges.inc();
        for (const l of this.listeners) l.leaderChanged(s.term, s.leader);
      }
      this.lastLeader = s.leader;
      this.changes.push({ at: new Date().toISOString(), term: s.term, leader: s.leader });
      if (this.changes.length > 20) this.changes.shift();
    }
    this.lastTerm = s.term;
    const check = this.view?.latestCheck();
    if (check !== undefined && check.complete && check.index > this.lastCheckCounted) {
      this.lastCheckCounted = check.index;
      const verdicts = check.members.map((m) => m.verdict);
      const result = verdicts.includes("diverged")
        ? "diverged"
        : verdicts.every((v) => v === "ok")
          ? "ok"
          : "undecided";
      this.checks.inc({ result });
    }
  }

  /** The term seen by the last sample. */
  term(): number {
    return this.lastTerm;
  }

  // NodeMetrics, called by the runtime.

  attach(view: NodeMetricsView): void {
    this.view = view;
  }

  walSynced(ms: number, bytes: number): void {
    this.walSyncSeconds.observe(ms / 1000);
    this.walBytes.inc(bytes);
    for (const l of this.listeners) l.walSynced(ms, bytes);
  }

  snapshotTransferred(t: SnapshotTransfer, ms: number, ok: boolean): void {
    const direction = t.direction === "send" ? "sent" : "received";
    this.snapshotTransfers.inc({ direction, outcome: ok ? "ok" : "cut" });
    this.snapshotBytes.inc({ direction }, t.bytes);
    if (ok) this.snapshotTransferSeconds.observe({ direction }, ms / 1000);
    for (const l of this.listeners) l.snapshotTransferred(t, ms, ok);
  }

  // Called by the measured Replicator and Store.

  saved(ms: number, outcome: SaveOutcome): void {
    this.proposals.inc({ outcome });
    this.saveSeconds.observe({ outcome }, ms / 1000);
    this.rates.record("save", ms, outcome === "ok");
    for (const l of this.listeners) l.saved(ms, outcome);
  }

  loaded(ms: number, outcome: LoadOutcome, mode: ReadConsistency): void {
    this.loadSeconds.observe({ outcome, mode }, ms / 1000);
    this.rates.record("load", ms, outcome === "ok");
    for (const l of this.listeners) l.loaded(ms, outcome, mode);
  }

  applied(ms: number, entries: number): void {
    this.applySeconds.observe(ms / 1000);
    this.appliedEntries.inc(entries);
    for (const l of this.listeners) l.applied(ms, entries);
  }

  snapshotTaken(ms: number, bytes: number): void {
    this.snapshotsTaken.inc();
    this.snapshotTakeSeconds.observe(ms / 1000);
    this.snapshotBytes.inc({ direction: "taken" }, bytes);
    for (const l of this.listeners) l.snapshotTaken(ms, bytes);
  }

  // Called by the periodic backups of a node process (src/cli/periodic-backups.ts).

  backupTaken(ms: number, bytes: number): void {
    this.backups.inc({ outcome: "ok" });
    this.backupSeconds.observe(ms / 1000);
    this.backupLastSuccess.set(Date.now() / 1000);
    this.backupLastBytes.set(bytes);
  }

  backupFailed(): void {
    this.backups.inc({ outcome: "failed" });
  }

  backupUploaded(_ms: number, ok: boolean): void {
    this.backupUploads.inc({ outcome: ok ? "ok" : "failed" });
  }
}
