/**
 * The store flags that bound what one request may do to a store (the apply step budget, the
 * load caps) and that secure the connection to a Redis server (password, TLS). stores.ts adds
 * them to the SQLite and Redis stores' flags and turns them into store options here.
 */
import { readFileSync } from "node:fs";
import type { RedisStoreOptions, RedisTlsOptions } from "../store/redis/redis-store.js";
import { DEFAULT_REDIS_STEP_BUDGET } from "../store/redis/lua-sandbox.js";
import type { SqliteStoreOptions } from "../store/sqlite/sqlite-store.js";
import {
  DEFAULT_LOAD_MAX_BYTES,
  DEFAULT_LOAD_MAX_ROWS,
  DEFAULT_LOAD_TIMEOUT_MS,
  DEFAULT_SQLITE_STEP_BUDGET,
} from "../store/sqlite/sqlite-store.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, bool, int, str } from "./flags.js";

/**
 * -apply-step-budget, shared by the SQLite and Redis stores (`nexus serve` lists a flag once), in
 * each store's own unit and with its own default.
 */
const APPLY_STEP_BUDGET: FlagSpec = {
  name: "apply-step-budget",
  kind: "int",
  min: 0,
  help:
    "how much work one save may do before it ends with an error, the same on every replica: " +
    `for SQLite, instructions of one statement (about 60 million a second; default ${DEFAULT_SQLITE_STEP_BUDGET}), ` +
    "rolled back; for Redis, steps of the Lua snippet (loop iterations, function calls, " +
    `redis.call; default ${DEFAULT_REDIS_STEP_BUDGET}), what it wrote before staying (loads ` +
    "have the same budget). Give every node the same: a node with another budget may end an " +
    "entry differently, and the consistency check then finds it diverged. 0: no limit, which is " +
    "unsafe: one save that never ends stops every replica",
};

/** -apply-step-budget, -load-max-rows, -load-max-bytes, -load-timeout-ms. */
export const SQLITE_GUARD_FLAGS: readonly FlagSpec[] = [
  APPLY_STEP_BUDGET,
  {
    name: "load-max-rows",
    kind: "int",
    min: 1,
    default: DEFAULT_LOAD_MAX_ROWS,
    help: "rows a load may return; more is refused (RESOURCE_EXHAUSTED)",
  },
  {
    name: "load-max-bytes",
    kind: "int",
    min: 2,
    default: DEFAULT_LOAD_MAX_BYTES,
    help: "bytes of JSON a load may return; more is refused (RESOURCE_EXHAUSTED)",
  },
  {
    name: "load-timeout-ms",
    kind: "int",
    min: 1,
    default: DEFAULT_LOAD_TIMEOUT_MS,
    help: "milliseconds a load may run before it is stopped (DEADLINE_EXCEEDED)",
  },
];

/** The SQLite store's options from SQLITE_GUARD_FLAGS. */
export function sqliteGuardOptions(f: ParsedFlags): Omit<SqliteStoreOptions, "path"> {
  return {
    applyStepBudget: int(f, "apply-step-budget") ?? DEFAULT_SQLITE_STEP_BUDGET,
    loadMaxRows: int(f, "load-max-rows")!,
    loadMaxBytes: int(f, "load-max-bytes")!,
    loadTimeoutMs: int(f, "load-timeout-ms")!,
  };
}

/** The Redis password's environment variable (keeps it out of `ps`). */
export const REDIS_PASSWORD_ENV = "NEXUS_REDIS_PASSWORD";

/** -apply-step-budget, -redisPassword(File), -redisUsername, -redisTls*. */
export const REDIS_GUARD_FLAGS: readonly FlagSpec[] = [
  APPLY_STEP_BUDGET,
  {
    name: "redisPassword",
    kind: "string",
    help:
      `the Redis password (requirepass or the ACL user's). Visible to anyone who can list processes: ` +
      `prefer ${REDIS_PASSWORD_ENV} or -redisPasswordFile`,
  },
  {
    name: "redisPasswordFile",
    kind: "string",
    help: "a file holding the Redis password (its first line)",
  },
  { name: "redisUsername", kind: "string", help: "the Redis ACL user (default: the default user)" },
  {
    name: "redisTls",
    kind: "bool",
    help: "connect to Redis with TLS, verifying its certificate (against the system's CAs unless -redisTlsCa)",
  },
  {
    name: "redisTlsCa",
    kind: "string",
    help: "PEM file of the CA certificates that Redis's certificate must come from (implies -redisTls)",
  },
  {
    name: "redisTlsCert",
    kind: "string",
    help: "PEM file of this node's client certificate, for a Redis that asks for one (implies -redisTls)",
  },
  { name: "redisTlsKey", kind: "string", help: "PEM file of the client certificate's key" },
];

/** A file's contents, or a FlagError naming the flag and the file (never the contents). */
function readFlagFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FlagError(`-${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
}

/** The Redis password from -redisPassword, -redisPasswordFile or the environment; at most one. */
function redisPassword(f: ParsedFlags, env: NodeJS.ProcessEnv): string | undefined {
  const flag = str(f, "redisPassword");
  const file = str(f, "redisPasswordFile");
  if (flag !== undefined && file !== undefined) {
    throw new FlagError("give the Redis password once: -redisPassword or -redisPasswordFile");
  }
  if (file !== undefined) {
    const first = readFlagFile("redisPasswordFile", file).toString("utf8").split(/\r?\n/)[0] ?? "";
    if (first === "")
      throw new FlagError(`-redisPasswordFile ${file}: the file's first line is empty`);
    return first;
  }
  if (flag !== undefined) return flag;
  const fromEnv = env[REDIS_PASSWORD_ENV];
  return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
}

/** The Redis store's options from REDIS_GUARD_FLAGS (and NEXUS_REDIS_PASSWORD). */
export function redisGuardOptions(
  f: ParsedFlags,
  env: NodeJS.ProcessEnv = process.env,
): Pick<RedisStoreOptions, "applyStepBudget" | "password" | "username" | "tls"> {
  const password = redisPassword(f, env);
  const username = str(f, "redisUsername");
  const caFile = str(f, "redisTlsCa");
  const certFile = str(f, "redisTlsCert");
  const keyFile = str(f, "redisTlsKey");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new FlagError("-redisTlsCert and -redisTlsKey go together");
  }
  const useTls = bool(f, "redisTls") || caFile !== undefined || certFile !== undefined;
  let tls: RedisTlsOptions | undefined;
  if (useTls) {
    tls = {
      ...(caFile === undefined ? {} : { ca: readFlagFile("redisTlsCa", caFile) }),
      ...(certFile === undefined ? {} : { cert: readFlagFile("redisTlsCert", certFile) }),
      ...(keyFile === undefined ? {} : { key: readFlagFile("redisTlsKey", keyFile) }),
    };
  }
  return {
    applyStepBudget: int(f, "apply-step-budget") ?? DEFAULT_REDIS_STEP_BUDGET,
    ...(password === undefined ? {} : { password }),
    ...(username === undefined ? {} : { username }),
    ...(tls === undefined ? {} : { tls }),
  };
}
