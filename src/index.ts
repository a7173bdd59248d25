/**
 * nexus-raft: synchronous replication of arbitrary data onto pluggable stores with Raft.
 * The public entry. Lower layers have their own subpath exports (`nexus-raft/raft`).
 */
export { RawNode } from "./raft/raw-node.js";
export type { Ready } from "./raft/raw-node.js";
export { MemoryStorage } from "./raft/storage.js";
export type { Storage } from "./raft/storage.js";
