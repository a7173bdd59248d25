/**
 * What makes a statement compute the same on every replica, as MySQL's statement-based
 * replication does it.
 *
 * - Every connection pins its session (sessionSql): `sql_mode`, `time_zone` (UTC),
 *   auto-increment steps, the default engine, `div_precision_increment`, `group_concat_max_len`
 *   and the key checks, so that the server's own defaults (which may differ between replicas) do
 *   not matter.
 * - Before each entry (entrySql): `SET TIMESTAMP` = the leader's time for the entry, which
 *   NOW(), CURRENT_TIMESTAMP defaults and UNIX_TIMESTAMP() read, and `@@rand_seed1/2` from the
 *   entry's seed, which RAND() reads. Both come from the log entry, so every replica sets the same.
 * - What cannot be pinned is refused before it runs (statement-classifier.ts).
 */
import type { ApplyEntry } from "../store.js";

/** The sql_mode of every connection that applies or reads. */
export const SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";
/** The sql_mode of a restore: values are loaded exactly as the backup has them (0 ids too). */
export const RESTORE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";
/** RAND()'s seeds are taken modulo this by the server. */
const RAND_MAX_SEED = 1073741823;

/** The SET statement every connection runs first. */
export function sessionSql(lockWaitTimeoutSec: number, sqlMode = SQL_MODE): string {
  return (
    `SET SESSION sql_mode = '${sqlMode}', time_zone = '+00:00', auto_increment_increment = 1, ` +
    `auto_increment_offset = 1, default_storage_engine = InnoDB, div_precision_increment = 4, ` +
    `group_concat_max_len = 1048576, foreign_key_checks = 1, unique_checks = 1, ` +
    `lock_wait_timeout = ${Math.max(1, Math.trunc(lockWaitTimeoutSec))}`
  );
}

/** `SET TIMESTAMP`'s value for a time in milliseconds: seconds with six decimals. */
export function timestampOf(ms: number): string {
  // SET TIMESTAMP = 0 would mean "the server's clock": the smallest step above it instead.
  const t = Math.max(0, Math.trunc(ms));
  if (t === 0) return "0.000001";
  return `${Math.floor(t / 1000)}.${String(t % 1000).padStart(3, "0")}000`;
}

/** The SET statement run before an entry: the leader's time and the entry's RAND() seeds. */
export function entrySql(e: Pick<ApplyEntry, "timestampMs" | "seed">): string {
  const seed = Math.max(0, Math.trunc(e.seed));
  return (
    `SET TIMESTAMP = ${timestampOf(e.timestampMs)}, ` +
    `@@rand_seed1 = ${seed % RAND_MAX_SEED}, ` +
    `@@rand_seed2 = ${Math.floor(seed / RAND_MAX_SEED) % RAND_MAX_SEED}`
  );
}
