/** The Redis store (Lua snippets via EVAL). */
export { RedisStore, renderRedisReply } from "./redis-store.js";
export type { RedisStoreOptions } from "./redis-store.js";
