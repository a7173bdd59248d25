/**
 * nexus-raft: synchronous replication of arbitrary data onto pluggable stores with Raft.
 * The public entry: the library API and the stores. Lower layers have their own subpath exports
 * (`nexus-raft/raft`, `nexus-raft/store/memory`).
 */
export { createReplicator } from "./node/replicator.js";
export type {
  Replicator,
  ReplicatorStatus,
  NodeRole,
  MemberRole,
  MemberInfo,
  MemberSnapshotProgress,
  MembersWithProgress,
  MembershipChanges,
  AddMemberOptions,
  SaveOptions,
  SaveResult,
  Session,
  RequestOutcome,
  LoadOptions,
  ReadConsistency,
  StalenessBound,
  ConsistencyCheckResult,
  ReplicatedBackup,
  RestoreOptions,
  RestoreResult,
  MemberConsistency,
  MemberList,
  CallOptions,
  ListMembersOptions,
  CheckConsistencyOptions,
  PromoteLearnerOptions,
  ReplicatorEvents,
} from "./node/replicator.js";
export type { LeaderChange, MembershipChange, DivergenceEvent } from "./node/node-events.js";
export type { ReplicatorOptions, NodeState, NexusLogger, NexusLogFn } from "./node/options.js";
export type {
  NodeMetrics,
  NodeMetricsView,
  PeerCounters,
  SnapshotTransfer,
} from "./node/node-metrics.js";
export type { LongTask, LongTaskKind } from "./node/progress-board.js";
export type { CheckRound, MemberCheck, CheckReport, MemberVerdict } from "./node/consistency.js";
export { nodeIdOf } from "./node/node-id.js";
export type { NodeId } from "./raft/types.js";
export { MemoryStore } from "./store/memory/memory-store.js";
export { SqliteStore } from "./store/sqlite/sqlite-store.js";
export type { SqliteStoreOptions } from "./store/sqlite/sqlite-store.js";
export type { ApplySettings } from "./store/sqlite/protocol.js";
export type {
  Store,
  StoreCommand,
  ApplyEntry,
  ApplyResult,
  AppliedPosition,
  StoreBackup,
  PendingDigest,
} from "./store/store.js";
export { pendingDigest } from "./store/store.js";
export type { MemoryStoreOptions } from "./store/memory/memory-store.js";
export type { RequestKey, RequestRecord } from "./store/request-records.js";
export {
  DEFAULT_REQUEST_WINDOW_MS,
  decide as decideRequest,
  requestHash,
  requestKeyOf,
  recordOf as requestRecordOf,
} from "./store/request-records.js";
export {
  NexusError,
  isNexusError,
  NotLeaderError,
  TimeoutError,
  UnknownOutcomeError,
  StoppedError,
  StoreError,
  StoreUnavailableError,
} from "./errors/index.js";
export type { NexusErrorCode } from "./errors/index.js";
