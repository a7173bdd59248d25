/**
 * RedisStore: replication onto a Redis server, as the original's redis_repl does. A save or load
 * is a Lua snippet run with EVAL in the database given by the request arg `db.index` (default 0).
 *
 * - Exactly once: each entry runs as one script that checks the applied index, runs the user's
 *   snippet, and records the new applied index and term in the metadata database (default 13),
 *   all in one atomic script. A restart never applies an entry twice or skips one.
 * - A Lua error (a bad call, a syntax error) is the entry's result, the same on every replica, and
 *   the applied index moves past it. Redis does not roll back: writes the snippet made before the
 *   error stay, identically everywhere.
 * - Results are rendered as the original renders them: strings as is, integers in decimal, arrays
 *   as `[a b c]`, nil as empty.
 * - Redis unreachable is not a result: the call throws StoreUnavailableError and the runtime
 *   retries; nothing beyond lastApplied() took effect.
 * - Determinism: calls whose results differ between servers (TIME, RANDOMKEY, SRANDMEMBER, SPOP,
 *   HRANDFIELD, ZRANDMEMBER) are refused in saves. Redis seeds Lua's math.random identically for
 *   every script.
 * - digest(): see redis-digest.ts; applies wait while it is computed (Redis has no snapshots).
 * - backup(): every key of every database except the metadata one, with its TTL (SCAN + DUMP +
 *   PTTL), streamed. Applying pauses while a backup is read, so the copy is exactly the state at
 *   its position. restore(): the stream is first written to a local temporary file and validated
 *   (nothing in Redis changes if it is bad); then the user databases are flushed and loaded with
 *   RESTORE ... REPLACE. A restore interrupted by a Redis failure leaves a marker, and the store
 *   then reports position 0 so the node restores again from its snapshot.
 */
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

export interface RedisStoreOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 6379. */
  readonly port?: number;
  /** The database holding the applied index and term. Default 13, as the original. */
  readonly metadataDb?: number;
  readonly password?: string;
  /** Milliseconds to wait for a connection or a reply before the store counts as unavailable. Default 5000. */
  readonly timeoutMs?: number;
}

const META_KEY = "nexus:applied";
const MAGIC = Buffer.from("NEXUS-REDIS-BACKUP-1\n");
const UNSAFE_CALLS =
  /redis\s*\.\s*p?call\s*\(\s*['"](time|randomkey|srandmember|spop|hrandfield|zrandmember)['"]/i;

/**
 * The per-entry script. ARGV: metadata db, user db, index, term. The user's snippet is spliced in
 * on the script's first line so that Lua error line numbers match the user's text.
 */
function entryScript(snippet: string): string {
  return (
    `local __nexus_f = function() ${snippet}\nend\n` +
    `local __m = tonumber(ARGV[1])
redis.call('SELECT', __m)
local __a = tonumber(redis.call('HGET', '${META_KEY}', 'index') or '0')
if __a >= tonumber(ARGV[3]) then return {'skip'} end
redis.call('SELECT', tonumber(ARGV[2]))
local __ok, __res = pcall(__nexus_f)
redis.call('SELECT', __m)
redis.call('HSET', '${META_KEY}', 'index', ARGV[3], 'term', ARGV[4])
if __ok then
  if __res == nil then return {'ok'} end
  return {'ok', __res}
end
if type(__res) == 'table' and __res.err then return {'err', __res.err} end
return {'err', tostring(__res)}
`
  );
}

/** Records only the applied index (an entry with no effect, or one whose script did not compile). */
const ADVANCE_SCRIPT = `redis.call('SELECT', tonumber(ARGV[1]))
local a = tonumber(redis.call('HGET', '${META_KEY}', 'index') or '0')
if a >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', '${META_KEY}', 'index', ARGV[2], 'term', ARGV[3])
return 1
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
  private client: Redis | undefined;
  private databases = 16;
  /** Serializes apply, backup reads and restore. */
  private lock: Promise<void> = Promise.resolve();

  constructor(opts: RedisStoreOptions = {}) {
    this.opts = opts;
    this.host = opts.host ?? "127.0.0.1";
    this.port = opts.port ?? 6379;
    this.metadataDb = opts.metadataDb ?? 13;
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

  private unavailable(err: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`${this.where()} is unavailable: ${(err as Error).message}`, {
      cause: err,
    });
  }

  private async redis(): Promise<Redis> {
    if (this.client !== undefined && this.client.status === "ready") return this.client;
    if (this.client !== undefined) {
      this.client.disconnect();
      this.client = undefined;
    }
    const c = new Redis({
      host: this.host,
      port: this.port,
      ...(this.opts.password === undefined ? {} : { password: this.opts.password }),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // The runtime retries with backoff; a dead connection is replaced on the next call.
      retryStrategy: () => null,
      connectTimeout: this.opts.timeoutMs ?? 5000,
      commandTimeout: this.opts.timeoutMs ?? 5000,
    });
    c.on("error", () => undefined);
    try {
      await c.connect();
    } catch (err) {
      c.disconnect();
      throw this.unavailable(err);
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

  /** Why a snippet cannot be applied deterministically, or undefined. */
  private refusal(snippet: string): string | undefined {
    if (snippet.trim() === "") return "the Lua snippet is empty";
    if (snippet.trimStart().startsWith("#!")) {
      return "script flags (#!lua ...) are not supported in a save; remove the first line";
    }
    const m = UNSAFE_CALLS.exec(snippet);
    if (m !== null) {
      return `${m[1]!.toUpperCase()} gives different results on different replicas; compute the value in the client and pass it in the script`;
    }
    return undefined;
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
        let snippet = "";
        if (e.command !== undefined) {
          snippet = new TextDecoder().decode(e.command.data);
          try {
            db = this.userDb(e.command.args);
            refusal = this.refusal(snippet);
          } catch (err) {
            refusal = (err as Error).message;
          }
        }
        if (e.command === undefined || refusal !== undefined) {
          await c.eval(ADVANCE_SCRIPT, 0, meta, idx, term);
          results.push(
            refusal === undefined
              ? { ok: true, data: new Uint8Array(0) }
              : { ok: false, error: refusal },
          );
          continue;
        }
        let reply: unknown;
        try {
          reply = await c.callBuffer(
            "EVAL",
            entryScript(snippet),
            "0",
            meta,
            String(db),
            idx,
            term,
          );
        } catch (err) {
          if (isConnectionError(err)) throw err;
          // The script did not compile (a syntax error): deterministic, the entry's result.
          await c.eval(ADVANCE_SCRIPT, 0, meta, idx, term);
          results.push({ ok: false, error: (err as Error).message });
          continue;
        }
        const r = reply as Buffer[];
        const status = r[0]?.toString();
        if (status === "skip") results.push({ ok: true, data: new Uint8Array(0) });
        else if (status === "ok") {
          results.push({ ok: true, data: new Uint8Array(Buffer.from(renderRedisReply(r[1]))) });
        } else results.push({ ok: false, error: renderRedisReply(r[1]) });
      }
      return results;
    });
  }

  async load(query: StoreCommand): Promise<Uint8Array> {
    const snippet = new TextDecoder().decode(query.data);
    const db = this.userDb(query.args);
    if (snippet.trim() === "") throw new StoreError("the Lua snippet is empty");
    const c = await this.redis().catch((err: unknown) => {
      throw err instanceof NexusError ? err : this.unavailable(err);
    });
    try {
      // EVAL_RO refuses writes: a load cannot change the data.
      const reply = await c.callBuffer(
        "EVAL_RO",
        `redis.call('SELECT', tonumber(ARGV[1]))\n${snippet}`,
        "0",
        String(db),
      );
      return new Uint8Array(Buffer.from(renderRedisReply(reply)));
    } catch (err) {
      if (isConnectionError(err)) throw this.unavailable(err);
      throw new StoreError((err as Error).message, { cause: err });
    }
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
    const unavailable = (err: unknown): StoreUnavailableError => this.unavailable(err);
    async function* stream(): AsyncGenerator<Uint8Array> {
      try {
        yield MAGIC;
        let count = 0;
        const hash = createHash("sha256");
        for (const db of dbs) {
          await c.select(db);
          let cursor = "0";
          do {
            const [next, keys] = await c.scanBuffer(cursor, "COUNT", 500);
            cursor = next.toString();
            for (const key of keys) {
              const dump = await c.dumpBuffer(key);
              if (dump === null) continue;
              const pttl = await c.pttl(key);
              const rec = encodeRecord(db, key, dump, pttl);
              hash.update(rec);
              count++;
              yield rec;
            }
          } while (cursor !== "0");
        }
        const end = Buffer.alloc(1 + 8 + 32);
        end.write("E", 0);
        end.writeBigUInt64BE(BigInt(count), 1);
        hash.digest().copy(end, 9);
        yield end;
      } catch (err) {
        throw isConnectionError(err) ? unavailable(err) : err;
      } finally {
        release();
      }
    }
    return { position, stream: stream() };
  }

  async restore(position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> {
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
        const loader = new BackupParser();
        let current = -1;
        const pending: Promise<unknown>[] = [];
        for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
          const recs: Rec[] = [];
          loader.push(chunk as Buffer, (r) => recs.push(r));
          for (const r of recs) {
            if (r.db !== current) {
              await Promise.all(pending.splice(0));
              await c.select(r.db);
              current = r.db;
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
