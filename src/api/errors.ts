/**
 * The one place where Nexus error codes become gRPC status codes.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { isNexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import { StatusSchema } from "./gen/nexus_pb.js";

const TABLE: Record<NexusErrorCode, Code> = {
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
  WAL_FAILED: Code.Internal,
  CORRUPTED: Code.DataLoss,
  BAD_CONFIG: Code.InvalidArgument,
  UNREACHABLE: Code.Unavailable,
  INTERNAL: Code.Internal,
};

/** The gRPC code for a Nexus error code. */
export function grpcCodeOf(code: NexusErrorCode): Code {
  return TABLE[code];
}

/**
 * Any error as a ConnectError (a gRPC status) with a message that says what to do. The original's
 * response Status (code -1 and the message) rides along as an error detail of type
 * nexus.api.Status, for clients that read details.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const message = isNexusError(err)
    ? `${err.code}: ${err.message}`
    : `INTERNAL: ${String((err as Error).message ?? err)}`;
  const code = isNexusError(err) ? TABLE[err.code] : Code.Internal;
  return new ConnectError(message, code, undefined, [
    { desc: StatusSchema, value: { code: -1, message } },
  ]);
}
