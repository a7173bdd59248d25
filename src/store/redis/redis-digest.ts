/**
 * The digest of a Redis server's user databases, computed with SCAN in batches, in memory that
 * does not grow with the number of keys or the size of a value.
 *
 * Redis has no snapshots: the caller holds the store's lock (no entry applies meanwhile), and the
 * digest describes the state at the position read before it.
 *
 * What is hashed. Per key, sha256 of: its database, its name, its type, whether it has a TTL (not
 * the TTL itself, which differs between replicas by timing), and its logical value:
 * - string: its bytes (read with GETRANGE in 1 MiB pieces when large);
 * - list: its items in order (LRANGE in windows);
 * - set, hash, zset: their element count and the sum modulo 2^256 of a sha256 per element
 *   (member; field and value; member and score as an IEEE-754 double), so that the order Redis
 *   returns them in (which depends on the encoding and on history) does not matter;
 * - other types (streams, modules): their DUMP payload without its version and CRC trailer.
 * The digest is the sum modulo 2^256 of the per-key hashes, which likewise does not depend on the
 * order SCAN returns keys in. SCAN may return a key twice when the key table is resized during
 * the scan: a database (or a large collection) whose scan returned more keys (elements) than it
 * holds is scanned again, up to three times.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import type { Redis } from "ioredis";

/** Keys asked per SCAN, elements per collection read. */
const KEYS_PER_SCAN = 1000;
/** Values up to this size are read whole, in the batch; bigger ones piecewise, alone. */
const SMALL_STRING_BYTES = 64 * 1024;
const SMALL_COLLECTION = 512;
/** Bytes of strings one batch reply may carry. */
const BATCH_BUDGET_BYTES = 8 * 1024 * 1024;
const PIECE_BYTES = 1024 * 1024;
const ATTEMPTS = 3;

/**
 * A sum modulo 2^256 of 32-byte big-endian numbers, in eight 32-bit words (no allocation per
 * addition, unlike bigint arithmetic).
 */
class Sum256 {
  private readonly w = new Uint32Array(8);

  /** Adds a 32-byte digest. */
  add(d: Uint8Array): void {
    let carry = 0;
    for (let i = 7; i >= 0; i--) {
      const o = i * 4;
      const word = ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
      const x = this.w[i]! + word + carry;
      this.w[i] = x >>> 0;
      carry = x > 0xffffffff ? 1 : 0;
    }
  }

  addSum(other: Sum256): void {
    this.add(other.bytes());
  }

  bytes(): Buffer {
    const b = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) b.writeUInt32BE(this.w[i]!, i * 4);
    return b;
  }
}

/** Reused for length prefixes: hash updates copy their input at once. */
const scratch = Buffer.alloc(8);

function frame(h: Hash, b: Buffer | string): void {
  const buf = typeof b === "string" ? Buffer.from(b) : b;
  scratch.writeUInt32BE(buf.length, 0);
  h.update(scratch.subarray(0, 4));
  h.update(buf);
}

function count(h: Hash, n: number): void {
  scratch.writeUInt32BE(Math.floor(n / 0x100000000), 0);
  scratch.writeUInt32BE(n >>> 0, 4);
  h.update(scratch);
}

/** A zset score as Redis prints it ("1", "0.5", "inf", "-inf"), as a canonical double. */
function scoreBytes(s: Buffer): Buffer {
  const t = s.toString().toLowerCase();
  const x = t === "inf" || t === "+inf" ? Infinity : t === "-inf" ? -Infinity : Number(t);
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b;
}

type Kind = "set" | "hash" | "zset";

/** Adds the hash of each element of a flat reply (pairs for hash and zset); returns how many. */
function addElements(sum: Sum256, kind: Kind, flat: Buffer[]): number {
  const step = kind === "set" ? 1 : 2;
  let n = 0;
  for (let i = 0; i + step - 1 < flat.length; i += step) {
    const h = createHash("sha256");
    frame(h, flat[i]!);
    if (kind === "hash") frame(h, flat[i + 1]!);
    if (kind === "zset") h.update(scoreBytes(flat[i + 1]!));
    sum.add(h.digest());
    n++;
  }
  return n;
}

const SCAN_CMD: Record<Kind, string> = { set: "SSCAN", hash: "HSCAN", zset: "ZSCAN" };

/**
 * Per key of KEYS: {type, pttl, size, body}. `body` is the value (a string, or a collection's
 * flat contents) when it is small (ARGV[1] bytes, ARGV[2] elements) and the batch's byte budget
 * (ARGV[3]) allows, else nil: the caller then reads it piecewise. Strings, the common case, cost
 * two calls: PTTL and a GETRANGE of at most ARGV[1] + 1 bytes (which fails on other types).
 */
const BATCH_SCRIPT = `local maxBytes, maxItems, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i, k in ipairs(KEYS) do
  local ttl = redis.call('PTTL', k)
  if ttl == -2 then
    out[i] = {'none', ttl, 0, false}
  else
    local v = redis.pcall('GETRANGE', k, 0, math.min(maxBytes, budget))
    if type(v) == 'string' then
      if #v <= maxBytes and #v <= budget then
        budget = budget - #v
        out[i] = {'string', ttl, #v, v}
      else
        out[i] = {'string', ttl, redis.call('STRLEN', k), false}
      end
    else
      local t = redis.call('TYPE', k)['ok']
      local size, body = 0, false
      if t == 'list' then
        size = redis.call('LLEN', k)
        if size <= maxItems then body = redis.call('LRANGE', k, 0, -1) end
      elseif t == 'set' then
        size = redis.call('SCARD', k)
        if size <= maxItems then body = redis.call('SMEMBERS', k) end
      elseif t == 'hash' then
        size = redis.call('HLEN', k)
        if size <= maxItems then body = redis.call('HGETALL', k) end
      elseif t == 'zset' then
        size = redis.call('ZCARD', k)
        if size <= maxItems then body = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES') end
      end
      out[i] = {t, ttl, size, body}
    end
  end
end
return out
`;

/** A large set, hash or zset, scanned alone; rescanned if the scan returned duplicates. */
async function scanCollection(c: Redis, kind: Kind, key: Buffer, size: number): Promise<Sum256> {
  for (let attempt = 1; ; attempt++) {
    let cursor = "0";
    const sum = new Sum256();
    let n = 0;
    do {
      const [next, flat] = (await c.callBuffer(
        SCAN_CMD[kind],
        key,
        cursor,
        "COUNT",
        String(SMALL_COLLECTION),
      )) as [Buffer, Buffer[]];
      cursor = next.toString();
      n += addElements(sum, kind, flat);
    } while (cursor !== "0");
    if (n <= size) return sum;
    if (attempt >= ATTEMPTS) {
      throw new Error(
        `${SCAN_CMD[kind]} of a ${kind} returned ${n} elements for ${size}, ${ATTEMPTS} times (its table kept being resized)`,
      );
    }
  }
}

/** What one key contributes, given what the batch script read; undefined if it vanished. */
async function keyHash(
  c: Redis,
  dbTag: Buffer,
  key: Buffer,
  type: string,
  hasTtl: boolean,
  size: number,
  body: unknown,
): Promise<Buffer | undefined> {
  const h = createHash("sha256");
  h.update(dbTag);
  frame(h, key);
  frame(h, type);
  h.update(hasTtl ? "T" : "-");
  switch (type) {
    case "string": {
      if (Buffer.isBuffer(body)) {
        frame(h, body);
        break;
      }
      scratch.writeUInt32BE(size, 0);
      h.update(scratch.subarray(0, 4));
      for (let at = 0; at < size; at += PIECE_BYTES) {
        const end = Math.min(size, at + PIECE_BYTES) - 1;
        h.update((await c.getrangeBuffer(key, at, end)) ?? Buffer.alloc(0));
      }
      break;
    }
    case "list": {
      count(h, size);
      if (Array.isArray(body)) for (const x of body as Buffer[]) frame(h, x);
      else {
        for (let at = 0; at < size; at += SMALL_COLLECTION) {
          for (const x of await c.lrangeBuffer(key, at, at + SMALL_COLLECTION - 1)) frame(h, x);
        }
      }
      break;
    }
    case "set":
    case "hash":
    case "zset": {
      let sum: Sum256;
      if (Array.isArray(body)) {
        sum = new Sum256();
        addElements(sum, type, body as Buffer[]);
      } else sum = await scanCollection(c, type, key, size);
      count(h, size);
      h.update(sum.bytes());
      break;
    }
    default: {
      const dump = await c.dumpBuffer(key);
      if (dump === null) return undefined;
      frame(h, dump.subarray(0, Math.max(0, dump.length - 10)));
    }
  }
  return h.digest();
}

interface Batch {
  readonly cursor: string;
  readonly keys: Buffer[];
  readonly rows: [Buffer, number, number, unknown][];
}

/** The next SCAN batch of the selected database, with what the batch script read of each key. */
async function fetchBatch(c: Redis, cursor: string): Promise<Batch> {
  const [next, keys] = await c.scanBuffer(cursor, "COUNT", KEYS_PER_SCAN);
  const rows =
    keys.length === 0
      ? []
      : ((await c.callBuffer(
          "EVAL_RO",
          BATCH_SCRIPT,
          String(keys.length),
          ...keys,
          String(SMALL_STRING_BYTES),
          String(SMALL_COLLECTION),
          String(BATCH_BUDGET_BYTES),
        )) as [Buffer, number, number, unknown][]);
  return { cursor: next.toString(), keys, rows };
}

/** Adds the hashes of a batch of keys of database `db` (selected) to `sum`. */
async function hashBatch(c: Redis, db: number, b: Batch, sum: Sum256): Promise<void> {
  const dbTag = Buffer.from(`k${db}\0`);
  for (let i = 0; i < b.keys.length; i++) {
    const [typeBuf, pttl, size, body] = b.rows[i]!;
    const type = typeBuf.toString();
    if (type === "none") continue; // expired since SCAN
    if (type === "string" && Buffer.isBuffer(body)) {
      sum.add(smallStringHash(dbTag, b.keys[i]!, pttl >= 0, body));
      continue;
    }
    const h = await keyHash(c, dbTag, b.keys[i]!, type, pttl >= 0, size, body);
    if (h !== undefined) sum.add(h);
  }
}

let preimage = Buffer.alloc(64 * 1024);
const STRING_FRAME = Buffer.from("\0\0\0\x06string");

/**
 * keyHash() of a string read whole, in one hash update: the same bytes (db tag, framed key,
 * framed type, TTL flag, framed value), gathered in a reused buffer.
 */
function smallStringHash(dbTag: Buffer, key: Buffer, hasTtl: boolean, value: Buffer): Buffer {
  const need = dbTag.length + 4 + key.length + STRING_FRAME.length + 1 + 4 + value.length;
  if (preimage.length < need) preimage = Buffer.alloc(need * 2);
  let o = dbTag.copy(preimage, 0);
  o = preimage.writeUInt32BE(key.length, o);
  o += key.copy(preimage, o);
  o += STRING_FRAME.copy(preimage, o);
  preimage[o++] = hasTtl ? 0x54 : 0x2d; // "T" or "-"
  o = preimage.writeUInt32BE(value.length, o);
  o += value.copy(preimage, o);
  return createHash("sha256").update(preimage.subarray(0, o)).digest();
}

/**
 * The digest (64 lowercase hex digits) of databases `dbs` of the server `c` is connected to.
 * Leaves `c` on the last database it selected. Connection failures are thrown as they come.
 * The next batch is fetched while the current one is hashed.
 */
export async function digestRedis(c: Redis, dbs: readonly number[]): Promise<string> {
  const total = new Sum256();
  for (const db of dbs) {
    await c.select(db);
    for (let attempt = 1; ; attempt++) {
      const expected = await c.dbsize();
      const sum = new Sum256();
      let n = 0;
      let next: Promise<Batch> | undefined = fetchBatch(c, "0");
      while (next !== undefined) {
        const batch: Batch = await next;
        next = batch.cursor === "0" ? undefined : fetchBatch(c, batch.cursor);
        // A failure below leaves the prefetch unawaited: it is the same connection's failure.
        next?.catch(() => undefined);
        n += batch.keys.length;
        await hashBatch(c, db, batch, sum);
      }
      if (n <= expected) {
        total.addSum(sum);
        break;
      }
      if (attempt >= ATTEMPTS) {
        throw new Error(
          `SCAN of database ${db} returned ${n} keys for ${expected}, ${ATTEMPTS} times (its key table kept being resized)`,
        );
      }
    }
  }
  return total.bytes().toString("hex");
}
