/** Errors shared by every room: one class with a fixed set of codes, and typed subclasses. */
export { NexusError, NEXUS_ERROR_CODES, isNexusError } from "./nexus-error.js";
export type { NexusErrorCode } from "./nexus-error.js";
export {
  NotLeaderError,
  TimeoutError,
  UnknownOutcomeError,
  StoppedError,
  StoreError,
  StoreUnavailableError,
} from "./typed-errors.js";
