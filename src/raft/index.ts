/**
 * The Raft consensus core (`nexus-raft/raft`): a pure, deterministic state machine in the shape
 * of etcd/raft. See src/raft/DESIGN.md.
 */
export { RawNode } from "./raw-node.js";
export type { BasicStatus, Ready, Status, SnapshotStatus } from "./raw-node.js";
export { Raft, RaftError, CAMPAIGN_TRANSFER, SILENT_LOGGER, validateRaftConfig } from "./raft.js";
export type { NormalizedConfig, RaftConfig, RaftErrorCode, RaftLogger } from "./raft.js";
export type { ReadOnlyOption } from "./read-only.js";
export { MemoryStorage, StorageError, isStorageError, limitSize } from "./storage.js";
export type { Storage, StorageErrorCode } from "./storage.js";
export { createSeededRandom } from "./random.js";
export { bootstrapEntries } from "./bootstrap.js";
export type { BootstrapPeer } from "./bootstrap.js";
export type { RandomSource } from "./random.js";
export { encodeConfChange, decodeConfChange } from "./confchange/codec.js";
export { ConfChangeError } from "./confchange/changer.js";
export { InvariantError } from "./invariant.js";
export type { ProgressState } from "./tracker/progress.js";
export {
  NONE,
  EMPTY_BYTES,
  EMPTY_HARD_STATE,
  EMPTY_CONF_STATE,
  createMessage,
  isEmptySnapshot,
  isEmptyHardState,
  isHardStateEqual,
  entriesSize,
} from "./types.js";
export type {
  NodeId,
  Entry,
  EntryType,
  HardState,
  LeaderCommitHeard,
  ConfState,
  ConfChange,
  ConfChangeSingle,
  ConfChangeType,
  ConfChangeTransition,
  Snapshot,
  SnapshotMetadata,
  Message,
  MessageType,
  SoftState,
  StateType,
  ReadState,
} from "./types.js";
