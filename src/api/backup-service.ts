/**
 * The NexusBackup service (proto/nexus_backup.proto): a consistent copy of the replicated state
 * at one log index, streamed as a header, the store's backup data in chunks, and a trailer with
 * the data's length and SHA-256. A stream that ends without the trailer is not a backup.
 * `Restore` takes a backup file, streamed, and restores it into the running cluster
 * (Replicator.restore): on every replica at one log index, or refused with nothing changed.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Replicator } from "../node/replicator.js";
import { NexusBackup } from "./gen/nexus_backup_pb.js";
import type { BackupChunk, RestoreChunk, RestoreResponse } from "./gen/nexus_backup_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv1";
import { toConnectError } from "./errors.js";

/** Data chunks are cut to at most this size on the wire. */
const MAX_CHUNK_BYTES = 1024 * 1024;

let version: string | undefined;

/** The version in the nearest package.json above this module (as src/cli/version.ts reads it). */
function nexusVersion(): string {
  if (version !== undefined) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const v = (JSON.parse(readFileSync(file, "utf8")) as { version?: unknown }).version;
      version = typeof v === "string" ? v : "unknown";
      return version;
    }
    const up = dirname(dir);
    if (up === dir) return (version = "unknown");
    dir = up;
  }
}

type Chunk = MessageInitShape<GenMessage<BackupChunk>>;

/** The data of a client's restore stream. */
async function* dataOf(chunks: AsyncIterable<RestoreChunk>): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) if (c.data.byteLength > 0) yield c.data;
}

/** Registers NexusBackup on a Connect router. */
export function backupRoutes(r: Replicator, router: ConnectRouter): ConnectRouter {
  return router.service(NexusBackup, {
    async restore(chunks, ctx): Promise<MessageInitShape<GenMessage<RestoreResponse>>> {
      try {
        const res = await r.restore(dataOf(chunks), { signal: ctx.signal });
        return {
          index: BigInt(res.index),
          bytes: BigInt(res.bytes),
          backupIndex: BigInt(res.backupIndex),
          backupTerm: BigInt(res.backupTerm),
          backupCluster: res.backupCluster,
          storeKind: res.storeKind,
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async *backup(req): AsyncGenerator<Chunk> {
      let b: Awaited<ReturnType<Replicator["backup"]>>;
      try {
        b = await r.backup({ consistency: req.local ? "local" : "linearizable" });
      } catch (err) {
        throw toConnectError(err);
      }
      const it = b.stream[Symbol.asyncIterator]();
      let finished = false;
      try {
        yield {
          kind: {
            case: "header",
            value: {
              storeKind: b.storeKind,
              clusterName: b.clusterName,
              index: BigInt(b.index),
              term: BigInt(b.term),
              members: b.members.map((m) => ({ ...m })),
              nexusVersion: nexusVersion(),
            },
          },
        };
        const hash = createHash("sha256");
        let bytes = 0;
        // Small chunks (a store streaming a key or a row at a time) are gathered into messages
        // of about MAX_CHUNK_BYTES: one message per key would cost more than the key.
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const gathered = (): Chunk => {
          const value = Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          return { kind: { case: "data", value } };
        };
        for (;;) {
          let next: IteratorResult<Uint8Array>;
          try {
            next = await it.next();
          } catch (err) {
            throw toConnectError(err);
          }
          if (next.done === true) break;
          const chunk = next.value;
          hash.update(chunk);
          bytes += chunk.length;
          if (pendingBytes > 0 && pendingBytes + chunk.length >= MAX_CHUNK_BYTES) {
            yield gathered();
          }
          if (chunk.length < MAX_CHUNK_BYTES) {
            pending.push(Buffer.from(chunk));
            pendingBytes += chunk.length;
            continue;
          }
          for (let at = 0; at < chunk.length; at += MAX_CHUNK_BYTES) {
            const part = chunk.subarray(at, Math.min(chunk.length, at + MAX_CHUNK_BYTES));
            yield { kind: { case: "data", value: part } };
          }
        }
        if (pendingBytes > 0) yield gathered();
        finished = true;
        yield {
          kind: {
            case: "trailer",
            value: { dataBytes: BigInt(bytes), sha256: new Uint8Array(hash.digest()) },
          },
        };
      } finally {
        // A client that went away: abandon the store's backup (its temporary copy is removed).
        if (!finished) await it.return?.();
      }
    },
  });
}
