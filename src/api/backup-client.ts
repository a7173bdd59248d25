/**
 * The client side of NexusBackup: a node's backup stream as header, data and trailer events, with
 * failures as NexusErrors decided as the other calls' are (src/api/errors.ts).
 */
import { ConnectError, createClient } from "@connectrpc/connect";
import { NexusError } from "../errors/index.js";
import { grpcTransportOf, parseServiceAddress } from "./client.js";
import type { ClientOptions } from "./client.js";
import { callFailureOf } from "./errors.js";
import { NexusBackup } from "./gen/nexus_backup_pb.js";
import type { RestoreResult } from "../node/cluster-restore.js";

/** The header of a backup stream, as numbers. */
export interface StreamedBackupHeader {
  readonly storeKind: string;
  readonly clusterName: string;
  readonly index: number;
  readonly term: number;
  readonly members: readonly { id: string; url: string; role: "voter" | "learner" }[];
  readonly nexusVersion: string;
}

export type BackupEvent =
  | { readonly kind: "header"; readonly header: StreamedBackupHeader }
  | { readonly kind: "data"; readonly data: Uint8Array }
  | { readonly kind: "trailer"; readonly dataBytes: number; readonly sha256: Uint8Array };

function safe(v: bigint, what: string): number {
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NexusError("INTERNAL", `the node sent an invalid ${what} (${v})`);
  }
  return Number(v);
}

/**
 * Streams a backup from the node at `address` (host:port). `local` skips the read barrier.
 * Rejects with UNREACHABLE when nothing answers there, or the node's own error (NOT_SERVING,
 * NO_LEADER, TIMEOUT...), or INTERNAL for a malformed stream.
 */
export async function* streamBackup(
  address: string,
  opts: { local?: boolean; signal?: AbortSignal } & Pick<ClientOptions, "tls" | "token"> = {},
): AsyncGenerator<BackupEvent> {
  const baseUrl = parseServiceAddress(address, opts.tls !== undefined);
  const { transport } = grpcTransportOf(baseUrl, opts);
  const client = createClient(NexusBackup, transport);
  const where = baseUrl.replace(/^https?:\/\//, "");
  let sawHeader = false;
  try {
    for await (const c of client.backup(
      { local: opts.local ?? false },
      opts.signal === undefined ? {} : { signal: opts.signal },
    )) {
      const k = c.kind;
      if (k.case === "header") {
        sawHeader = true;
        const h = k.value;
        yield {
          kind: "header",
          header: {
            storeKind: h.storeKind,
            clusterName: h.clusterName,
            index: safe(h.index, "index"),
            term: safe(h.term, "term"),
            members: h.members.map((m) => ({
              id: m.id,
              url: m.url,
              role: m.role === "learner" ? "learner" : "voter",
            })),
            nexusVersion: h.nexusVersion,
          },
        };
      } else if (k.case === "data") {
        if (!sawHeader) throw new NexusError("INTERNAL", `${where} sent data before a header`);
        yield { kind: "data", data: k.value };
      } else if (k.case === "trailer") {
        yield {
          kind: "trailer",
          dataBytes: safe(k.value.dataBytes, "length"),
          sha256: k.value.sha256,
        };
      }
    }
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    const f = callFailureOf(err, "read");
    if (f.from === "not-connected") {
      throw new NexusError(
        "UNREACHABLE",
        `cannot reach the Nexus service at ${where} (${err.rawMessage}); is a node running there with -grpcPort ${baseUrl.split(":").pop()}?`,
        { cause: err },
      );
    }
    throw new NexusError(f.code, `backup from ${where} failed: ${err.rawMessage}`, { cause: err });
  }
}

/** A restore into the running cluster, as the node answered it: the library's RestoreResult. */
export type ClusterRestoreResult = RestoreResult;

/**
 * Streams a backup file's bytes to the node at `address` (host:port) to restore into the running
 * cluster. Rejects with UNREACHABLE when nothing answers there, or the node's own error
 * (INVALID_ARGUMENT, CORRUPTED, PROPOSAL_DROPPED, UNKNOWN_OUTCOME...), with nothing changed
 * except for UNKNOWN_OUTCOME.
 */
export async function restoreToCluster(
  address: string,
  data: AsyncIterable<Uint8Array>,
  opts: { signal?: AbortSignal; timeoutMs?: number } & Pick<ClientOptions, "tls" | "token"> = {},
): Promise<ClusterRestoreResult> {
  const baseUrl = parseServiceAddress(address, opts.tls !== undefined);
  const { transport } = grpcTransportOf(baseUrl, opts);
  const client = createClient(NexusBackup, transport);
  const where = baseUrl.replace(/^https?:\/\//, "");
  async function* chunks(): AsyncGenerator<{ data: Uint8Array }> {
    for await (const d of data) {
      for (let at = 0; at < d.byteLength; at += RESTORE_WIRE_CHUNK_BYTES) {
        yield { data: d.subarray(at, Math.min(d.byteLength, at + RESTORE_WIRE_CHUNK_BYTES)) };
      }
    }
  }
  try {
    const r = await client.restore(chunks(), {
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    });
    return {
      index: safe(r.index, "index"),
      bytes: safe(r.bytes, "length"),
      backupIndex: safe(r.backupIndex, "index"),
      backupTerm: safe(r.backupTerm, "term"),
      backupCluster: r.backupCluster,
      storeKind: r.storeKind,
    };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    const f = callFailureOf(err, "write");
    if (f.from === "not-connected") {
      throw new NexusError(
        "UNREACHABLE",
        `cannot reach the Nexus service at ${where} (${err.rawMessage}); is a node running there with -grpcPort ${baseUrl.split(":").pop()}?`,
        { cause: err },
      );
    }
    throw new NexusError(f.code, `restore through ${where}: ${err.rawMessage}`, { cause: err });
  }
}

/** Restore stream messages are cut to at most this size. */
const RESTORE_WIRE_CHUNK_BYTES = 1024 * 1024;
