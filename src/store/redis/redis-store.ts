/**
 * RedisStore: replication onto a Redis server, as the original's redis_repl does. A save or load
 * is a Lua snippet run in the database given by the request arg `db.index` (default 0).
 *
 * - The snippet never runs as Redis's own script: it is parsed and rewritten (lua-instrument.ts)
 *   and run by one fixed wrapper script (lua-sandbox.ts) as a chunk of its own, in an
 *   environment whose redis.call cannot select, swap, move to or flush another database (the
 *   metadata database included) nor change the server. Saves run with EVAL, loads with EVAL_RO.
 * - Exactly once: each entry runs as one script that checks the applied index, runs the user's
 *   snippet, and records the new applied index and term in the metadata database (default 13),
 *   all in one atomic script. A restart never applies an entry twice or skips one.
 * - The step budget: each loop iteration, function call and redis.call is a step; a snippet
 *   past `applyStepBudget` steps ends with "apply budget exceeded" on every replica alike (what it
 *   wrote before stays, as for any Lua error), and the cluster goes on (src/store/DESIGN.md).
 * - A Lua error (a bad call, a syntax error) is the entry's result, the same on every replica, and
 *   the applied index moves past it. Redis does not roll back: writes the snippet made before the
 *   error stay, identically everywhere.
 * - Results are rendered as the original renders them: strings as is, integers in decimal, arrays
 *   as `[a b c]`, nil as empty.
 * - Redis unreachable is not a result: the call throws StoreUnavailableError and the runtime
 *   retries; nothing beyond lastApplied() took effect.
 * - Determinism: calls whose results differ between servers (TIME, RANDOMKEY, SRANDMEMBER, SPOP,
 *   HRANDFIELD, ZRANDMEMBER) are refused in saves; math.random is seeded by the entry (Redis 7
 *   does not reset its own generator between scripts).
 * - Secrets and TLS: `password` (and `username`, for an ACL user) authenticate the connection and
 *   never appear in an error or a log; `tls` encrypts it and verifies the server's certificate.
 * - digest(): see redis-digest.ts; applies wait while it is computed (Redis has no snapshots).
 * - backup(): every key of every database except the metadata one, with its TTL (SCAN + DUMP +
 *   PTTL), streamed. Read in batches of BACKUP_BATCH_KEYS keys, one pipelined round trip each
 *   (a script reading the batch's DUMPs and PTTLs, and the next SCAN), the next batch read while one is consumed:
 *   memory holds two batches. Applying pauses while a backup is read, so the copy is exactly the
 *   state at its position. restore(): the stream is first written to a local temporary file and validated
 *   (nothing in Redis changes if it is bad); then the user databases are flushed and loaded with
 *   RESTORE ... REPLACE. A restore interrupted by a Redis failure leaves a marker, and the store
 *   then reports position 0 so the node restores again from its snapshot.
 */
import type { RequestRecord } from "../request-records.js";
import {
  DEFAULT_REQUEST_WINDOW_MS,
  REQUEST_PURGE_BATCH,
  decide,
  purgeBefore,
  recordOf,
  validateRequestWindow,
} from "../request-records.js";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { Redis } from "ioredis";
import { NexusError, StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
} from "../store.js";
import { pendingDigest } from "../store.js";
import { digestRedis } from "./redis-digest.js";
import { LuaRefusal, instrumentLua } from "./lua-instrument.js";
import { DEFAULT_REDIS_STEP_BUDGET, SANDBOX_SCRIPT } from "./lua-sandbox.js";

export { DEFAULT_REDIS_STEP_BUDGET };

/** TLS for the connection to Redis: PEM contents, not paths. The server's certificate is verified. */
export interface RedisTlsOptions {
  /** CA certificates to trust instead of the system's. */
  readonly ca?: string | Buffer;
  /** A client certificate and its key, for servers that ask for one (tls-auth-clients). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** The name to verify the certificate against; default the host. */
  readonly servername?: string;
}

export interface RedisStoreOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 6379. */
  readonly port?: number;
  /** The database holding the applied index and term. Default 13, as the original. */
  readonly metadataDb?: number;
  /** The password (requirepass, or the ACL user's); never shown in errors or logs. */
  readonly password?: string;
  /** An ACL user name (Redis 6+); default the default user. */
  readonly username?: string;
  /** TLS for the connection; absent: plain TCP. */
  readonly tls?: RedisTlsOptions;
  /** Milliseconds to wait for a connection or a reply before the store counts as unavailable. Default 5000. */
  readonly timeoutMs?: number;
  /**
   * Steps (loop iterations, function calls, redis.call) one snippet may take; past them the entry
   * ends with "apply budget exceeded" on every replica. Loads have the same budget. The same on
   * every node (src/store/DESIGN.md). 0: no limit, which is unsafe: one snippet that never ends
   * blocks every replica's Redis for good. Default DEFAULT_REDIS_STEP_BUDGET.
   */
  readonly applyStepBudget?: number;
  /**
   * How long request ids are remembered, in ms of the entries' (leaders') timestamps
   * (src/store/request-records.ts). Must be the same on every node. Default 10 minutes.
   */
  readonly requestWindowMs?: number;
}

const META_KEY = "nexus:applied";
const MAGIC = Buffer.from("NEXUS-REDIS-BACKUP-1\n");
/** The hash of one request record in the metadata database: this prefix and the request id. */
const REQUEST_PREFIX = "nexus:request:";
/** The sorted set of request ids by keptFromMs in the metadata database (for purging). */
const REQUESTS_KEY = "nexus:requests";
/** The database number under which backups carry the metadata database's request records. */
const REQUESTS_BACKUP_DB = 0xffff;

/**
 * Records only the applied index (an entry with no effect, or one whose script did not compile),
 * and with ARGV 4..8 (request id, hash, ok "1"/"0", result text, keptFromMs) the request record
 * of a refused entry too, in the same script.
 */
const ADVANCE_SCRIPT = `redis.call('SELECT', tonumber(ARGV[1]))
local a = tonumber(redis.call('HGET', '${META_KEY}', 'index') or '0')
if a >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', '${META_KEY}', 'index', ARGV[2], 'term', ARGV[3])
if ARGV[4] ~= nil then
  redis.call('HSET', '${REQUEST_PREFIX}' .. ARGV[4], 'hash', ARGV[5], 'ok', ARGV[6], 'result', ARGV[7],
    'index', ARGV[2], 'kept', ARGV[8])
  redis.call('ZADD', '${REQUESTS_KEY}', ARGV[8], ARGV[4])
end
return 1
`;

/** Drops up to ARGV[3] request records kept from before ARGV[2] (ms) from database ARGV[1]. */
const PURGE_SCRIPT = `redis.call('SELECT', tonumber(ARGV[1]))
local ids = redis.call('ZRANGEBYSCORE', '${REQUESTS_KEY}', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('DEL', '${REQUEST_PREFIX}' .. id) end
if #ids > 0 then redis.call('ZREM', '${REQUESTS_KEY}', unpack(ids)) end
return #ids
`;

/** Renders a Redis reply as the original (Go's %s of the go-redis value) does. */
export function renderRedisReply(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (Array.isArray(v)) return `[${v.map(renderRedisReply).join(" ")}]`;
  return String(v);
}

function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string };
  if (e.name === "ReplyError") return false;
  return true;
}

export class RedisStore implements Store {
  readonly kind = "redis";
  readonly host: string;
  readonly port: number;
  private readonly metadataDb: number;
  private readonly opts: RedisStoreOptions;
  /** Lua steps a snippet may take (0: no limit). */
  readonly applyStepBudget: number;
  /** How long request ids are remembered, in ms. */
  readonly requestWindowMs: number;
  private client: Redis | undefined;
  private databases = 16;
  /** Serializes apply, backup reads and restore. */
  private lock: Promise<void> = Promise.resolve();

  constructor(opts: RedisStoreOptions = {}) {
    this.opts = opts;
    this.host = opts.host ?? "127.0.0.1";
    this.port = opts.port ?? 6379;
    this.metadataDb = opts.metadataDb ?? 13;
    this.requestWindowMs = validateRequestWindow(opts.requestWindowMs ?? DEFAULT_REQUEST_WINDOW_MS);
    this.applyStepBudget = opts.applyStepBudget ?? DEFAULT_REDIS_STEP_BUDGET;
    if (!Number.isSafeInteger(this.applyStepBudget) || this.applyStepBudget < 0) {
      throw new NexusError(
        "BAD_CONFIG",
        `applyStepBudget (-apply-step-budget) must be an integer >= 0, got ${String(opts.applyStepBudget)}`,
      );
    }
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) {
      throw new NexusError("BAD_CONFIG", `Redis port must be 1-65535, got ${String(opts.port)}`);
    }
    if (!Number.isInteger(this.metadataDb) || this.metadataDb < 0) {
      throw new NexusError(
        "BAD_CONFIG",
        `metadata database must be an integer >= 0, got ${String(opts.metadataDb)}`,
      );
    }
  }

  private where(): string {
    return `Redis at ${this.host}:${this.port}`;
  }

  /** An error's text with the password, should a driver or server ever echo it, masked. */
  private scrub(text: string): string {
    const p = this.opts.password;
    return p === undefined || p === "" ? text : text.split(p).join("***");
  }

  private unavailable(err: unknown): StoreUnavailableError {
    return new StoreUnavailableError(
      `${this.where()} is unavailable: ${this.scrub((err as Error).message)}`,
    );
  }

  private async redis(): Promise<Redis> {
    if (this.client !== undefined && this.client.status === "ready") return this.client;
    if (this.client !== undefined) {
      this.client.disconnect();
      this.client = undefined;
    }
    const tls = this.opts.tls;
    const c = new Redis({
      host: this.host,
      port: this.port,
      ...(this.opts.password === undefined ? {} : { password: this.opts.password }),
      ...(this.opts.username === undefined ? {} : { username: this.opts.username }),
      ...(tls === undefined
        ? {}
        : {
            tls: {
              rejectUnauthorized: true,
              servername: tls.servername ?? this.host,
              ...(tls.ca === undefined ? {} : { ca: tls.ca }),
              ...(tls.cert === undefined ? {} : { cert: tls.cert }),
              ...(tls.key === undefined ? {} : { key: tls.key }),
            },
          }),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // The runtime retries with backoff; a dead connection is replaced on the next call.
      retryStrategy: () => null,
      connectTimeout: this.opts.timeoutMs ?? 5000,
      commandTimeout: this.opts.timeoutMs ?? 5000,
    });
    // The driver reports why a connection failed (a refused password, a certificate it could
    // not verify) as an event, and then rejects connect() with only "Connection is closed".
    let why: unknown;
    c.on("error", (e: unknown) => (why ??= e));
    try {
      await c.connect();
    } catch (err) {
      c.disconnect();
      throw this.unavailable(why ?? err);
    }
    // A server with a password refuses the first command, not the connection, when none is given.
    try {
      await c.ping();
    } catch (err) {
      c.disconnect();
      throw this.unavailable(why ?? err);
    }
    this.client = c;
    return c;
  }

  /** Runs f under the store's lock; connection failures become StoreUnavailableError. */
  private exclusive<T>(f: (c: Redis) => Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      const c = await this.redis();
      try {
        return await f(c);
      } catch (err) {
        if (err instanceof NexusError) throw err;
        if (isConnectionError(err)) {
          c.disconnect();
          if (this.client === c) this.client = undefined;
          throw this.unavailable(err);
        }
        throw err;
      }
    });
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async open(): Promise<AppliedPosition> {
    return this.exclusive(async (c) => {
      const cfg = (await c.config("GET", "databases")) as string[];
      const n = Number(cfg[1]);
      if (Number.isInteger(n) && n > 0) this.databases = n;
      if (this.metadataDb >= this.databases) {
        throw new NexusError(
          "BAD_CONFIG",
          `metadata database ${this.metadataDb} does not exist: ${this.where()} has ${this.databases} databases`,
        );
      }
      return this.position(c);
    });
  }

  private async position(c: Redis): Promise<AppliedPosition> {
    await c.select(this.metadataDb);
    const [index, term, restoring] = await c.hmget(META_KEY, "index", "term", "restoring");
    // An interrupted restore: the data is partial; report nothing applied so the node restores
    // again from its snapshot.
    if (restoring !== null) return { index: 0, term: 0 };
    return { index: Number(index ?? 0), term: Number(term ?? 0) };
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c !== undefined) await c.quit().catch(() => c.disconnect());
  }

  lastApplied(): Promise<AppliedPosition> {
    return this.exclusive((c) => this.position(c));
  }

  private userDb(args: Readonly<Record<string, string>>): number {
    const raw = args["db.index"];
    if (raw === undefined || raw === "") return 0;
    const db = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || db >= this.databases) {
      throw new StoreError(
        `db.index must be a database from 0 to ${this.databases - 1}, got "${raw}"`,
      );
    }
    if (db === this.metadataDb) {
      throw new StoreError(
        `db.index ${db} is the metadata database (-metadataDB); use another one`,
      );
    }
    return db;
  }

  /** The snippet rewritten for the wrapper (lua-instrument.ts), or why it cannot run. */
  private prepare(code: Uint8Array): { chunk: string } | { refusal: string } {
    const text = new TextDecoder().decode(code);
    if (text.trim() === "") return { refusal: "the Lua snippet is empty" };
    if (text.trimStart().startsWith("#!")) {
      return {
        refusal: "script flags (#!lua ...) are not supported in a save; remove the first line",
      };
    }
    try {
      return { chunk: instrumentLua(code) };
    } catch (err) {
      if (err instanceof LuaRefusal) return { refusal: err.message };
      throw err;
    }
  }

  /**
   * Runs the wrapper script. Its answer is `{'skip'}`, `{'ok'[, value]}` or `{'err', message}`;
   * Redis refusing the script itself (BUSY, OOM, LOADING, a read-only replica...) depends on
   * the server's state, not on the entry, so it is a failure of the store, never a result.
   */
  private async sandbox(
    c: Redis,
    command: "EVAL" | "EVAL_RO",
    args: {
      mode: "save" | "load";
      db: number;
      index: string;
      term: string;
      chunk: string;
      seed: number;
      /** A save's request record: ARGV 9..11. */
      request?: { id: string; hash: string; keptFromMs: number };
    },
  ): Promise<Buffer[]> {
    try {
      return (await c.callBuffer(
        command,
        SANDBOX_SCRIPT,
        "0",
        args.mode,
        String(this.metadataDb),
        String(args.db),
        args.index,
        args.term,
        args.chunk,
        String(this.applyStepBudget),
        String(args.seed),
        ...(args.request === undefined
          ? []
          : [args.request.id, args.request.hash, String(args.request.keptFromMs)]),
      )) as Buffer[];
    } catch (err) {
      if (err instanceof NexusError) throw err;
      throw this.unavailable(err);
    }
  }

  apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    return this.exclusive(async (c) => {
      const results: ApplyResult[] = [];
      for (const e of entries) {
        const idx = String(e.index);
        const term = String(e.term);
        const meta = String(this.metadataDb);
        let refusal: string | undefined;
        let db = 0;
        let chunk = "";
        if (e.command !== undefined) {
          try {
            db = this.userDb(e.command.args);
            const prepared = this.prepare(e.command.data);
            if ("refusal" in prepared) refusal = prepared.refusal;
            else chunk = prepared.chunk;
          } catch (err) {
            refusal = (err as Error).message;
          }
        }
        const key = e.command === undefined ? undefined : e.request;
        let record: RequestRecord | undefined;
        if (key !== undefined) {
          // The lock is held: nothing else writes the metadata database meanwhile.
          await c.select(this.metadataDb);
          if (e.index <= Number((await c.hget(META_KEY, "index")) ?? 0)) {
            results.push({ ok: true, data: new Uint8Array(0) });
            continue;
          }
          const d = decide(e, key, await this.recordIn(c, key.id), this.requestWindowMs);
          if ("result" in d) {
            await c.eval(ADVANCE_SCRIPT, 0, meta, idx, term);
            results.push(d.result);
            continue;
          }
          record = recordOf(e, key, { ok: true, data: new Uint8Array(0) });
        }
        if (e.command === undefined || refusal !== undefined) {
          const result: ApplyResult =
            refusal === undefined
              ? { ok: true, data: new Uint8Array(0) }
              : { ok: false, error: refusal };
          const rec =
            record === undefined
              ? []
              : [
                  record.id,
                  record.hash,
                  result.ok ? "1" : "0",
                  result.ok ? "" : result.error,
                  String(record.keptFromMs),
                ];
          await c.eval(ADVANCE_SCRIPT, 0, meta, idx, term, ...rec);
          results.push(result);
          continue;
        }
        const r = await this.sandbox(c, "EVAL", {
          mode: "save",
          db,
          index: idx,
          term,
          chunk,
          seed: e.seed,
          ...(record === undefined ? {} : { request: record }),
        });
        const status = r[0]?.toString();
        if (status === "skip") results.push({ ok: true, data: new Uint8Array(0) });
        else if (status === "rec") {
          const text = r[2] ?? Buffer.alloc(0);
          results.push(
            r[1]?.toString() === "1"
              ? { ok: true, data: new Uint8Array(text) }
              : { ok: false, error: text.toString("utf8") },
          );
        } else if (status === "ok") {
          results.push({ ok: true, data: new Uint8Array(Buffer.from(renderRedisReply(r[1]))) });
        } else results.push({ ok: false, error: renderRedisReply(r[1]) });
      }
      const last = entries.at(-1);
      if (last !== undefined) {
        const before = purgeBefore(last.timestampMs, this.requestWindowMs);
        await c.eval(PURGE_SCRIPT, 0, String(this.metadataDb), String(before), REQUEST_PURGE_BATCH);
      }
      return results;
    });
  }

  /** The request record of `id`, if any (RequestRecordSource). */
  requestRecord(id: string): Promise<RequestRecord | undefined> {
    return this.exclusive(async (c) => {
      await c.select(this.metadataDb);
      return this.recordIn(c, id);
    });
  }

  /** The request record of `id` in the metadata database (selected on `c`), if any. */
  private async recordIn(c: Redis, id: string): Promise<RequestRecord | undefined> {
    const h = await c.hgetallBuffer(REQUEST_PREFIX + id);
    const hash = h["hash"];
    if (hash === undefined) return undefined;
    const text = h["result"] ?? Buffer.alloc(0);
    return {
      id,
      hash: hash.toString(),
      result:
        h["ok"]?.toString() === "1"
          ? { ok: true, data: new Uint8Array(text) }
          : { ok: false, error: text.toString("utf8") },
      index: Number(h["index"]?.toString() ?? 0),
      keptFromMs: Number(h["kept"]?.toString() ?? 0),
    };
  }

  /**
   * Runs a snippet with EVAL_RO (no writes), in the same sandbox as saves: it cannot reach the
   * metadata database or another one. Throws StoreError for a refused or failing snippet.
   */
  async load(query: StoreCommand): Promise<Uint8Array> {
    const db = this.userDb(query.args);
    const prepared = this.prepare(query.data);
    if ("refusal" in prepared) throw new StoreError(prepared.refusal);
    const c = await this.redis().catch((err: unknown) => {
      throw err instanceof NexusError ? err : this.unavailable(err);
    });
    const r = await this.sandbox(c, "EVAL_RO", {
      mode: "load",
      db,
      index: "0",
      term: "0",
      chunk: prepared.chunk,
      seed: 1,
    });
    if (r[0]?.toString() === "ok") return new Uint8Array(Buffer.from(renderRedisReply(r[1])));
    throw new StoreError(renderRedisReply(r[1]));
  }

  private userDbs(): number[] {
    return Array.from({ length: this.databases }, (_, i) => i).filter((d) => d !== this.metadataDb);
  }

  /** Holds the lock until the returned release is called. */
  private hold(): Promise<{ c: Redis; release: () => void }> {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    return new Promise((resolve, reject) => {
      void this.exclusive(async (c) => {
        resolve({ c, release });
        await held;
      }).catch(reject);
    });
  }

  async backup(): Promise<StoreBackup> {
    const { c, release } = await this.hold();
    let position: AppliedPosition;
    try {
      position = await this.position(c);
    } catch (err) {
      release();
      throw isConnectionError(err) ? this.unavailable(err) : err;
    }
    const dbs = this.userDbs();
    const metaDb = this.metadataDb;
    const unavailable = (err: unknown): StoreUnavailableError => this.unavailable(err);
    /** The batch being read from Redis, if any. */
    let reading: Promise<DumpedBatch> | undefined;
    async function* stream(): AsyncGenerator<Uint8Array> {
      try {
        yield MAGIC;
        let count = 0;
        const hash = createHash("sha256");
        /** The batch's records, hashed and counted, as one chunk (undefined: none). */
        const chunkOf = (db: number, dumped: readonly Dumped[]): Buffer | undefined => {
          const recs = dumped.map((d) => encodeRecord(db, d.key, d.dump, d.pttl));
          for (const r of recs) hash.update(r);
          count += recs.length;
          return recs.length === 0 ? undefined : Buffer.concat(recs);
        };
        for (const db of dbs) {
          await c.select(db);
          reading = dumpBatch(c, [], "0");
          for (;;) {
            const batch: DumpedBatch = await reading;
            // The next batch is read from Redis while this one is consumed (two in memory).
            const next = batch.next;
            reading = next === undefined ? undefined : dumpBatch(c, next.keys, next.cursor);
            reading?.catch(() => undefined);
            const chunk = chunkOf(db, batch.dumped);
            if (chunk !== undefined) yield chunk;
            if (reading === undefined) break;
          }
        }
        // The request records of the metadata database, under a database number of their own
        // (the restoring node's metadata database may have another number), without TTL.
        await c.select(metaDb);
        const ids = (await c.zrange(REQUESTS_KEY, 0, -1)).map((id) => REQUEST_PREFIX + id);
        const keys = [REQUESTS_KEY, ...ids].map((k) => Buffer.from(k));
        for (let i = 0; i < keys.length; i += BACKUP_BATCH_KEYS) {
          const { dumped } = await dumpBatch(c, keys.slice(i, i + BACKUP_BATCH_KEYS), undefined);
          const chunk = chunkOf(
            REQUESTS_BACKUP_DB,
            dumped.map((d) => ({ ...d, pttl: -1 })),
          );
          if (chunk !== undefined) yield chunk;
        }
        const end = Buffer.alloc(1 + 8 + 32);
        end.write("E", 0);
        end.writeBigUInt64BE(BigInt(count), 1);
        hash.digest().copy(end, 9);
        yield end;
      } catch (err) {
        throw isConnectionError(err) ? unavailable(err) : err;
      } finally {
        // A consumer that stopped early: the batch being read finishes before others use `c`.
        await reading?.catch(() => undefined);
        release();
      }
    }
    return { position, stream: stream() };
  }

  /** `from` is not checked: a Redis backup does not record its position. */
  async restore(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    _from?: AppliedPosition,
  ): Promise<void> {
    // 1. Copy to a local file while validating: a bad stream changes nothing in Redis.
    const dir = await mkdtemp(join(tmpdir(), "nexus-redis-restore-"));
    const file = join(dir, "backup");
    try {
      const out = createWriteStream(file);
      const parser = new BackupParser();
      try {
        for await (const chunk of stream) {
          parser.push(Buffer.from(chunk), () => undefined);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
        }
        parser.finish();
      } finally {
        out.end();
        await finished(out);
      }
      // 2. Load it.
      await this.exclusive(async (c) => {
        await c.select(this.metadataDb);
        await c.hset(META_KEY, "restoring", "1");
        for (const db of this.userDbs()) {
          await c.select(db);
          await c.flushdb();
        }
        await c.select(this.metadataDb);
        for (;;) {
          const ids = await c.zrange(REQUESTS_KEY, 0, 999);
          if (ids.length === 0) break;
          await c.del(...ids.map((id) => REQUEST_PREFIX + id));
          await c.zrem(REQUESTS_KEY, ...ids);
        }
        const loader = new BackupParser();
        let current = -1;
        const pending: Promise<unknown>[] = [];
        for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
          const recs: Rec[] = [];
          loader.push(chunk as Buffer, (r) => recs.push(r));
          for (const r of recs) {
            const db = r.db === REQUESTS_BACKUP_DB ? this.metadataDb : r.db;
            if (r.db === REQUESTS_BACKUP_DB) {
              const k = r.key.toString("latin1");
              if (k !== REQUESTS_KEY && !k.startsWith(REQUEST_PREFIX)) {
                throw new Error(`a metadata record of the backup is not a request record: ${k}`);
              }
            } else if (r.db === this.metadataDb) {
              throw new Error(
                `the backup has keys in database ${r.db}, this node's metadata database (-metadataDB)`,
              );
            }
            if (db !== current) {
              await Promise.all(pending.splice(0));
              await c.select(db);
              current = db;
            }
            pending.push(
              c.callBuffer("RESTORE", r.key, String(r.pttl > 0 ? r.pttl : 0), r.dump, "REPLACE"),
            );
            if (pending.length >= 256) await Promise.all(pending.splice(0));
          }
        }
        await Promise.all(pending.splice(0));
        loader.finish();
        await c.select(this.metadataDb);
        await c.hset(META_KEY, "index", String(position.index), "term", String(position.term));
        await c.hdel(META_KEY, "restoring");
      });
    } catch (err) {
      if (err instanceof NexusError) throw err;
      throw new NexusError("CORRUPTED", `the Redis backup is invalid: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * The digest of every user database (the metadata database excluded), computed in full before
   * this resolves: Redis has no snapshots, so the store's lock is held meanwhile and applies wait
   * for the digest (about 1-2 s per million small keys). What is hashed: see redis-digest.ts.
   * Failing to read the position rejects this; failing later rejects `digest`.
   */
  async digest(): Promise<PendingDigest> {
    const { c, release } = await this.hold();
    try {
      let position: AppliedPosition;
      try {
        position = await this.position(c);
      } catch (err) {
        throw isConnectionError(err) ? this.unavailable(err) : err;
      }
      let digest: Promise<string>;
      try {
        digest = Promise.resolve(await digestRedis(c, this.userDbs()));
      } catch (err) {
        if (isConnectionError(err)) {
          c.disconnect();
          if (this.client === c) this.client = undefined;
        }
        digest = Promise.reject(
          err instanceof StoreUnavailableError
            ? err
            : new StoreUnavailableError(
                `the digest of ${this.where()} failed: ${(err as Error).message}`,
                { cause: err },
              ),
        );
      }
      return pendingDigest(position, digest);
    } finally {
      release();
    }
  }
}

/**
 * Keys a backup reads per round trip to Redis (its SCAN COUNT): each batch's DUMP and PTTL
 * replies, and the batch's records, are in memory at once.
 */
const BACKUP_BATCH_KEYS = 1000;

/** A key read for a backup: its DUMP and its PTTL (ms; -1: none). */
interface Dumped {
  readonly key: Buffer;
  readonly dump: Buffer;
  readonly pttl: number;
}

/** A batch of keys read, and what to read next (see dumpBatch). */
interface DumpedBatch {
  readonly dumped: Dumped[];
  readonly next?: { readonly cursor: string | undefined; readonly keys: Buffer[] };
}

/**
 * DUMP and PTTL of every key of KEYS, flat (a key gone meanwhile: false, that is nil, and -2),
 * read together so that a key cannot expire between the two.
 */
const DUMP_SCRIPT = `local out = {}
for i, k in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('DUMP', k) or false
  out[2 * i] = redis.call('PTTL', k)
end
return out`;

/**
 * Reads `keys` (of the selected database) in one pipelined round trip: DUMP and PTTL of each
 * (DUMP_SCRIPT), and, when `cursor` is given, the SCAN from it that yields the next batch (`next`: its keys, and
 * the cursor to scan on from, undefined when that SCAN was the last; `next` undefined when there
 * is nothing more to read). A key gone meanwhile (expired) is left out.
 */
async function dumpBatch(
  c: Redis,
  keys: readonly Buffer[],
  cursor: string | undefined,
): Promise<DumpedBatch> {
  const p = c.pipeline();
  if (keys.length > 0) p.callBuffer("EVAL", DUMP_SCRIPT, String(keys.length), ...keys);
  if (cursor !== undefined) p.scanBuffer(cursor, "COUNT", BACKUP_BATCH_KEYS);
  const replies = (await p.exec()) ?? [];
  const reply = (i: number): unknown => {
    const r = replies[i];
    if (r === undefined) throw new Error("Redis answered fewer replies than commands sent");
    if (r[0] !== null) throw r[0];
    return r[1];
  };
  const dumped: Dumped[] = [];
  if (keys.length > 0) {
    const pairs = reply(0) as (Buffer | number | null)[];
    for (const [i, key] of keys.entries()) {
      const dump = pairs[2 * i] as Buffer | null;
      const pttl = pairs[2 * i + 1] as number;
      if (dump !== null) dumped.push({ key, dump, pttl });
    }
  }
  if (cursor === undefined) return { dumped };
  const [nextCursor, nextKeys] = reply(keys.length > 0 ? 1 : 0) as [Buffer, Buffer[]];
  // A SCAN returning cursor 0 is the last one: its keys are still read, with no SCAN after.
  const next = nextCursor.toString();
  if (next === "0" && nextKeys.length === 0) return { dumped };
  return { dumped, next: { cursor: next === "0" ? undefined : next, keys: nextKeys } };
}

interface Rec {
  readonly db: number;
  readonly key: Buffer;
  readonly dump: Buffer;
  readonly pttl: number;
}

/** 'K' | u16 db | u32 key length | key | u32 dump length | dump | i64 pttl (-1: none). */
function encodeRecord(db: number, key: Buffer, dump: Buffer, pttl: number): Buffer {
  const b = Buffer.alloc(1 + 2 + 4 + key.length + 4 + dump.length + 8);
  let o = 0;
  b.write("K", o);
  o += 1;
  b.writeUInt16BE(db, o);
  o += 2;
  b.writeUInt32BE(key.length, o);
  o += 4;
  key.copy(b, o);
  o += key.length;
  b.writeUInt32BE(dump.length, o);
  o += 4;
  dump.copy(b, o);
  o += dump.length;
  b.writeBigInt64BE(BigInt(pttl), o);
  return b;
}

/** Incremental parser of the backup format; finish() throws unless the trailer matched. */
class BackupParser {
  private buf: Buffer = Buffer.alloc(0);
  private magicSeen = false;
  private count = 0;
  private readonly hash = createHash("sha256");
  private ended = false;

  push(chunk: Buffer, onRecord: (r: Rec) => void): void {
    if (this.ended && chunk.length > 0) throw new Error("data after the end record");
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.magicSeen) {
      if (this.buf.length < MAGIC.length) return;
      if (!this.buf.subarray(0, MAGIC.length).equals(MAGIC))
        throw new Error("not a Nexus Redis backup");
      this.buf = this.buf.subarray(MAGIC.length);
      this.magicSeen = true;
    }
    for (;;) {
      if (this.buf.length < 1) return;
      const t = String.fromCharCode(this.buf[0]!);
      if (t === "E") {
        if (this.buf.length < 41) return;
        const count = Number(this.buf.readBigUInt64BE(1));
        const digest = this.buf.subarray(9, 41);
        if (count !== this.count)
          throw new Error(`the backup ends after ${this.count} keys, its trailer says ${count}`);
        if (!this.hash.copy().digest().equals(digest))
          throw new Error("the backup's checksum does not match");
        if (this.buf.length > 41) throw new Error("data after the end record");
        this.ended = true;
        this.buf = Buffer.alloc(0);
        return;
      }
      if (t !== "K") throw new Error(`unknown record type 0x${this.buf[0]!.toString(16)}`);
      if (this.buf.length < 7) return;
      const klen = this.buf.readUInt32BE(3);
      if (this.buf.length < 7 + klen + 4) return;
      const dlen = this.buf.readUInt32BE(7 + klen);
      const total = 7 + klen + 4 + dlen + 8;
      if (this.buf.length < total) return;
      const rec = this.buf.subarray(0, total);
      this.hash.update(rec);
      this.count++;
      onRecord({
        db: rec.readUInt16BE(1),
        key: Buffer.from(rec.subarray(7, 7 + klen)),
        dump: Buffer.from(rec.subarray(11 + klen, 11 + klen + dlen)),
        pttl: Number(rec.readBigInt64BE(11 + klen + dlen)),
      });
      this.buf = this.buf.subarray(total);
    }
  }

  finish(): void {
    if (!this.magicSeen) throw new Error("the backup is empty");
    if (!this.ended) throw new Error(`the backup is truncated after ${this.count} keys`);
  }
}
