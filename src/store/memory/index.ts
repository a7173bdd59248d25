/** The in-memory store (`nexus-raft/store/memory`). */
export { MemoryStore } from "./memory-store.js";
