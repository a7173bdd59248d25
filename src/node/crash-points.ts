/**
 * The runtime's crash points (src/storage/crash-points.ts explains the mechanism): instants in the
 * Ready loop, the apply pipeline and snapshot handling where a crash must leave a node that
 * restarts, catches up and applies every index once. `ALL_CRASH_POINTS` lists these with the
 * storage room's, for a program that reads `NEXUS_CRASH_POINT`.
 */
import type { CrashPoint } from "../storage/crash-points.js";
import { SNAPSHOT_CRASH_POINTS } from "../storage/snapshotter.js";
import { WAL_CRASH_POINTS } from "../storage/wal.js";

export const RUNTIME_CRASH_POINTS: readonly CrashPoint[] = [
  {
    name: "node.ready-after-wal-save",
    doc: "a Ready's entries and hard state are durable; its persisted messages (acknowledgements) are not sent",
  },
  {
    name: "node.receive-after-snapshot-file",
    doc: "a snapshot received from the leader is durable as a file; the core has not seen it and the WAL has no marker for it",
  },
  {
    name: "node.receive-after-snapshot-marker",
    doc: "a received snapshot's WAL marker (with the Ready's entries and hard state) is durable; the store is not restored from it",
  },
  {
    name: "node.apply-before-store",
    doc: "committed entries are about to be applied: the store's applied index is that of the previous batch",
  },
  {
    name: "node.apply-after-store",
    doc: "the store applied a batch and recorded its applied index (one transaction); no waiter was answered",
  },
  {
    name: "node.restore-after-store",
    doc: "the store was restored from a received snapshot and records its index; nothing applied after it",
  },
  {
    name: "node.snapshot-after-file",
    doc: "a local snapshot's file is durable; the WAL has no marker for it",
  },
  {
    name: "node.snapshot-after-marker",
    doc: "a local snapshot's WAL marker is durable; the log is not compacted",
  },
  {
    name: "node.snapshot-after-compact",
    doc: "the log view is compacted and the WAL released segments before the catch-up window",
  },
];

/** Every crash point a node process can reach: the WAL's, the snapshotter's and the runtime's. */
export const ALL_CRASH_POINTS: readonly CrashPoint[] = [
  ...WAL_CRASH_POINTS,
  ...SNAPSHOT_CRASH_POINTS,
  ...RUNTIME_CRASH_POINTS,
];
