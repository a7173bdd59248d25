/** The embedded SQLite store (`nexus-raft/store/sqlite`). */
export { SqliteStore } from "./sqlite-store.js";
export type { SqliteStoreOptions } from "./sqlite-store.js";
export type { ApplySettings } from "./protocol.js";
