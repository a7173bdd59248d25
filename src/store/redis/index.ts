/** The Redis store (Lua snippets via EVAL). */
export { RedisStore, renderRedisReply } from "./redis-store.js";
export type { RedisStoreOptions, RedisTlsOptions } from "./redis-store.js";
