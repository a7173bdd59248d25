/**
 * The one place where Nexus error codes and gRPC statuses meet, both ways (see src/api/DESIGN.md):
 *
 * - Server: a NexusError becomes a gRPC status whose code comes from one table, whose message is
 *   the error's human text, and whose details (grpc-status-details-bin) carry the Nexus code as a
 *   `google.rpc.ErrorInfo` (reason = the code, domain = "nexus") and the original's
 *   `nexus.api.Status` (code -1 and the message).
 * - Client: the Nexus code is read from that ErrorInfo, never from the message; a status without
 *   it (an older or foreign server) is mapped by its gRPC code alone.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { NEXUS_ERROR_CODES, NotLeaderError, isNexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import { isTlsFailure } from "../security/tls.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/nexus_pb.js";

/** The `domain` of the ErrorInfo detail whose `reason` is a Nexus error code. */
export const ERROR_DOMAIN = "nexus";

/** The ErrorInfo metadata key of the leader's URL, on NOT_LEADER when the node knows it. */
export const LEADER_URL_KEY = "leaderUrl";

/** Nexus code -> gRPC code. */
const GRPC_CODE_OF: Readonly<Record<NexusErrorCode, Code>> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  TOO_LARGE: Code.ResourceExhausted,
  NOT_LEADER: Code.FailedPrecondition,
  NO_LEADER: Code.Unavailable,
  TIMEOUT: Code.DeadlineExceeded,
  UNKNOWN_OUTCOME: Code.DeadlineExceeded,
  PROPOSAL_DROPPED: Code.Unavailable,
  MEMBERSHIP_REFUSED: Code.FailedPrecondition,
  STOPPED: Code.Unavailable,
  STORE_ERROR: Code.InvalidArgument,
  STORE_UNAVAILABLE: Code.Unavailable,
  NOT_SERVING: Code.Unavailable,
  TOO_STALE: Code.Unavailable,
  WAL_FAILED: Code.Internal,
  CORRUPTED: Code.DataLoss,
  BAD_CONFIG: Code.InvalidArgument,
  UNREACHABLE: Code.Unavailable,
  UNAUTHENTICATED: Code.Unauthenticated,
  PERMISSION_DENIED: Code.PermissionDenied,
  INTERNAL: Code.Internal,
};

/** The gRPC code for a Nexus error code. */
export function grpcCodeOf(code: NexusErrorCode): Code {
  return GRPC_CODE_OF[code];
}

/**
 * Any error as a ConnectError (a gRPC status): the Nexus code's gRPC code, the error's message as
 * is, and the details described at the top of this file. A foreign error is INTERNAL.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const code: NexusErrorCode = isNexusError(err) ? err.code : "INTERNAL";
  const message = isNexusError(err)
    ? err.message
    : String((err as Error | undefined)?.message ?? err);
  const metadata: Record<string, string> = {};
  if (err instanceof NotLeaderError && err.leaderUrl !== undefined && err.leaderUrl !== "") {
    metadata[LEADER_URL_KEY] = err.leaderUrl;
  }
  return new ConnectError(message, GRPC_CODE_OF[code], undefined, [
    { desc: ErrorInfoSchema, value: { reason: code, domain: ERROR_DOMAIN, metadata } },
    { desc: StatusSchema, value: { code: -1, message } },
  ]);
}

/** The Nexus code and facts a status carries in its ErrorInfo detail. */
export interface NexusStatusInfo {
  readonly code: NexusErrorCode;
  /** The leader's URL, for NOT_LEADER when the node knew it. */
  readonly leaderUrl: string | undefined;
}

const KNOWN_CODES: ReadonlySet<string> = new Set(NEXUS_ERROR_CODES);

/**
 * The Nexus code of a status from its `google.rpc.ErrorInfo` detail (domain "nexus", a known
 * reason), or undefined when it has none: an older or foreign server, or an error the client
 * library raised itself.
 */
export function nexusInfoOf(err: ConnectError): NexusStatusInfo | undefined {
  for (const info of err.findDetails(ErrorInfoSchema)) {
    if (info.domain !== ERROR_DOMAIN || !KNOWN_CODES.has(info.reason)) continue;
    const leaderUrl = info.metadata[LEADER_URL_KEY];
    return {
      code: info.reason as NexusErrorCode,
      leaderUrl: leaderUrl === undefined || leaderUrl === "" ? undefined : leaderUrl,
    };
  }
  return undefined;
}

/** What a call may do, which decides what a status without a Nexus code can prove. */
export type CallKind = "read" | "write" | "membership";

/**
 * The Nexus code of a status that a server sent without a Nexus ErrorInfo, by its gRPC code alone.
 * Codes that prove the request was refused before it did anything keep that meaning; any other
 * failure of a write or a membership change is UNKNOWN_OUTCOME (it may have been applied), of a
 * read INTERNAL (or TIMEOUT, NOT_SERVING).
 */
export function nexusCodeOfGrpc(code: Code, kind: CallKind): NexusErrorCode {
  const changes = kind !== "read";
  switch (code) {
    // Unimplemented: the server does not know this call (NexusAdmin on the original's server).
    case Code.InvalidArgument:
    case Code.OutOfRange:
    case Code.Unimplemented:
      return "INVALID_ARGUMENT";
    case Code.ResourceExhausted:
      return "TOO_LARGE";
    case Code.FailedPrecondition:
      return kind === "membership" ? "MEMBERSHIP_REFUSED" : "NOT_LEADER";
    case Code.DataLoss:
      return "CORRUPTED";
    // Refused before the call ran (the server checks credentials first).
    case Code.Unauthenticated:
      return "UNAUTHENTICATED";
    case Code.PermissionDenied:
      return "PERMISSION_DENIED";
    case Code.DeadlineExceeded:
      return changes ? "UNKNOWN_OUTCOME" : "TIMEOUT";
    case Code.Unavailable:
      // Not always safe to retry a non-idempotent call (gRPC's status code guide).
      return changes ? "UNKNOWN_OUTCOME" : "NOT_SERVING";
    default:
      return changes ? "UNKNOWN_OUTCOME" : "INTERNAL";
  }
}

/** Socket errors that mean the connection was never opened: nothing was sent. */
const UNREACHABLE_CAUSES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);

/** How a failed call reads: its Nexus code, and where the code came from. */
export interface CallFailure {
  readonly code: NexusErrorCode;
  /**
   * `detail`: the server's ErrorInfo; `status`: a status the server sent without it, mapped by
   * its gRPC code; `not-connected`: the connection was never opened (UNREACHABLE, nothing was
   * sent); `client`: no status came back for another reason (the client library's own error).
   */
  readonly from: "detail" | "status" | "not-connected" | "client";
  /** The leader's URL, for NOT_LEADER when the server knew it. */
  readonly leaderUrl: string | undefined;
}

/**
 * The Nexus code of a failed call. A status the server sent (it has a `grpc-status` header or
 * trailer) reads by its ErrorInfo, else by nexusCodeOfGrpc. Without one, the client library
 * failed on its own: UNREACHABLE when the connection was never opened, UNKNOWN_OUTCOME for a call
 * that changes state (it may have arrived), TIMEOUT for a read past its deadline, otherwise
 * UNREACHABLE.
 */
export function callFailureOf(err: ConnectError, kind: CallKind): CallFailure {
  const info = nexusInfoOf(err);
  if (info !== undefined) return { ...info, from: "detail" };
  if (err.metadata.has("grpc-status")) {
    return { code: nexusCodeOfGrpc(err.code, kind), from: "status", leaderUrl: undefined };
  }
  const cause = (err.cause as { code?: unknown } | undefined)?.code;
  // A failed TLS handshake: the call was never sent.
  if ((typeof cause === "string" && UNREACHABLE_CAUSES.has(cause)) || isTlsFailure(err.cause)) {
    return { code: "UNREACHABLE", from: "not-connected", leaderUrl: undefined };
  }
  const code: NexusErrorCode =
    kind !== "read"
      ? "UNKNOWN_OUTCOME"
      : err.code === Code.DeadlineExceeded
        ? "TIMEOUT"
        : "UNREACHABLE";
  return { code, from: "client", leaderUrl: undefined };
}
