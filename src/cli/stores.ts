/**
 * The stores a node program can serve, chosen with `-store`, with each store's own flags.
 *
 * A store's module, and with it its driver package, is imported only when a node opens that store:
 * a SQLite node never loads ioredis or mysql2. Those two are optional peer dependencies of
 * nexus-raft; when one is missing, create() says what to install.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { Store } from "../store/store.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, int, str } from "./flags.js";
import { MYSQL_SECRET_FLAGS, mysqlStoreOptions } from "./mysql-secret-flags.js";
import { requestWindowMsOf } from "./node-flags.js";
import {
  REDIS_GUARD_FLAGS,
  SQLITE_GUARD_FLAGS,
  redisGuardOptions,
  sqliteGuardOptions,
} from "./store-security-flags.js";

export interface StoreKind {
  readonly name: string;
  /** The name repl uses for this store's responses, e.g. "SQLite". */
  readonly display: string;
  readonly flags: readonly FlagSpec[];
  /**
   * Opens the store from its flags; `nodeDir` is `node_<decimal id>`, `dataDir` the node's data
   * folder (-data-dir), for default paths. Imports
   * the store's module (and its driver) now. FlagError for a bad flag; NexusError BAD_CONFIG when
   * the store's driver package is not installed (the message names the package to install).
   */
  create(
    f: ParsedFlags,
    nodeDir: string,
    dataDir: string,
  ): Promise<{ store: Store; describe: string }>;
}

/**
 * Imports a store module that needs the optional driver package `driver`. A module that cannot be
 * imported because `driver` does not resolve from here is a BAD_CONFIG error saying what to
 * install; any other failure is rethrown as it is.
 */
async function importWithDriver<T>(
  kind: string,
  driver: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if ((err as { code?: unknown }).code !== "ERR_MODULE_NOT_FOUND" || resolves(driver)) throw err;
    throw new NexusError(
      "BAD_CONFIG",
      `-store ${kind} needs the ${driver} package, which is not installed: run "npm install ${driver}" ` +
        `in the project where nexus-raft is installed (or "npm install -g ${driver}" beside a global ` +
        `nexus-raft); it is an optional peer dependency, left out for SQLite users`,
      { cause: err },
    );
  }
}

function resolves(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** The SQLite file: -sqlitePath, or store.db in the data folder. */
export function sqlitePathOf(f: ParsedFlags, dataDir: string): string {
  return str(f, "sqlitePath") ?? join(dataDir, "store.db");
}

export const SQLITE: StoreKind = {
  name: "sqlite",
  display: "SQLite",
  flags: [
    {
      name: "sqlitePath",
      kind: "string",
      help: "SQLite database file (default <data-dir>/store.db; the original's /tmp/sqlite/node_<id>.db)",
    },
    ...SQLITE_GUARD_FLAGS,
  ],
  async create(f, _nodeDir, dataDir) {
    const path = sqlitePathOf(f, dataDir);
    const { SqliteStore } = await import("../store/sqlite/index.js");
    return {
      store: new SqliteStore({
        path,
        ...sqliteGuardOptions(f),
        requestWindowMs: requestWindowMsOf(f),
      }),
      describe: `sqlite ${path}`,
    };
  },
};

export const MEMORY: StoreKind = {
  name: "memory",
  display: "memory",
  flags: [],
  async create(f) {
    const { MemoryStore } = await import("../store/memory/index.js");
    return {
      store: new MemoryStore({ requestWindowMs: requestWindowMsOf(f) }),
      describe: "memory (lost on restart; for tests)",
    };
  },
};

export const REDIS: StoreKind = {
  name: "redis",
  display: "Redis",
  flags: [
    { name: "redisHost", kind: "string", default: "127.0.0.1", help: "Redis host" },
    { name: "redisPort", kind: "int", min: 1, max: 65535, default: 6379, help: "Redis port" },
    {
      name: "metadataDB",
      kind: "int",
      min: 0,
      default: 13,
      help: "Redis database holding the applied index (not usable as db.index)",
    },
    ...REDIS_GUARD_FLAGS,
  ],
  async create(f) {
    const host = str(f, "redisHost")!;
    const port = int(f, "redisPort")!;
    const { RedisStore } = await importWithDriver(
      "redis",
      "ioredis",
      () => import("../store/redis/index.js"),
    );
    const guard = redisGuardOptions(f);
    return {
      store: new RedisStore({
        host,
        port,
        metadataDb: int(f, "metadataDB")!,
        ...guard,
        requestWindowMs: requestWindowMsOf(f),
      }),
      describe: `redis ${guard.tls === undefined ? "" : "tls "}${host}:${port}`,
    };
  },
};

export const MYSQL: StoreKind = {
  name: "mysql",
  display: "MySQL",
  flags: [
    {
      name: "mysqlConnUrl",
      kind: "string",
      help: 'MySQL/MariaDB to replicate onto: "user:pass@tcp(host:port)/db?autocommit=false" or mysql://user:pass@host:port/db (required; the password is better in NEXUS_MYSQL_PASSWORD or -mysqlPasswordFile)',
    },
    ...MYSQL_SECRET_FLAGS,
  ],
  async create(f) {
    const url = str(f, "mysqlConnUrl");
    if (url === undefined || url.trim() === "") {
      throw new FlagError(
        'flag -mysqlConnUrl is required, e.g. -mysqlConnUrl "root:root@tcp(127.0.0.1:3306)/nexus?autocommit=false"',
      );
    }
    const { MySqlStore } = await importWithDriver(
      "mysql",
      "mysql2",
      () => import("../store/mysql/index.js"),
    );
    const store = new MySqlStore({
      ...mysqlStoreOptions(url, f),
      requestWindowMs: requestWindowMsOf(f),
    });
    return { store, describe: `mysql ${store.dsn.host}:${store.dsn.port}/${store.dsn.database}` };
  },
};

/** Every store `nexus serve -store` accepts. */
export const STORE_KINDS: readonly StoreKind[] = [SQLITE, REDIS, MYSQL, MEMORY];
