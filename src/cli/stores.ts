/**
 * The stores a node program can serve, chosen with `-store`, with each store's own flags.
 */
import { join } from "node:path";
import type { Store } from "../store/store.js";
import { MemoryStore } from "../store/memory/memory-store.js";
import { MySqlStore } from "../store/mysql/mysql-store.js";
import { RedisStore } from "../store/redis/redis-store.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, int, str } from "./flags.js";
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
  /** Opens the store from its flags; `nodeDir` is `node_<decimal id>` for default paths. */
  create(f: ParsedFlags, nodeDir: string): { store: Store; describe: string };
}

export const SQLITE: StoreKind = {
  name: "sqlite",
  display: "SQLite",
  flags: [
    {
      name: "sqlitePath",
      kind: "string",
      help: "SQLite database file (default /tmp/sqlite/node_<id>.db)",
    },
    ...SQLITE_GUARD_FLAGS,
  ],
  create(f, nodeDir) {
    const path = str(f, "sqlitePath") ?? join("/tmp/sqlite", `${nodeDir}.db`);
    return {
      store: new SqliteStore({ path, ...sqliteGuardOptions(f) }),
      describe: `sqlite ${path}`,
    };
  },
};

export const MEMORY: StoreKind = {
  name: "memory",
  display: "memory",
  flags: [],
  create() {
    return { store: new MemoryStore(), describe: "memory (lost on restart; for tests)" };
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
  create(f) {
    const host = str(f, "redisHost")!;
    const port = int(f, "redisPort")!;
    const guard = redisGuardOptions(f);
    return {
      store: new RedisStore({ host, port, metadataDb: int(f, "metadataDB")!, ...guard }),
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
      help: 'MySQL/MariaDB to replicate onto: "user:pass@tcp(host:port)/db?autocommit=false" or mysql://user:pass@host:port/db (required)',
    },
  ],
  create(f) {
    const url = str(f, "mysqlConnUrl");
    if (url === undefined || url.trim() === "") {
      throw new FlagError(
        'flag -mysqlConnUrl is required, e.g. -mysqlConnUrl "root:root@tcp(127.0.0.1:3306)/nexus?autocommit=false"',
      );
    }
    const store = new MySqlStore({ url });
    return { store, describe: `mysql ${store.dsn.host}:${store.dsn.port}/${store.dsn.database}` };
  },
};

/** Every store `nexus serve -store` accepts. */
export const STORE_KINDS: readonly StoreKind[] = [SQLITE, REDIS, MYSQL, MEMORY];
