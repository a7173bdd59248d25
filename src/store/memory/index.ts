/** The in-memory store (`nexus-raft/store/memory`). */
export { MemoryStore } from "./memory-store.js";
export type { MemoryStoreOptions } from "./memory-store.js";
export type { RequestRecord } from "../request-records.js";
