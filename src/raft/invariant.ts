/**
 * invariant(): the one way the core reports a bug. A broken invariant means the state can no
 * longer be trusted, so it throws an error that the runtime treats as fatal (stop the process).
 */

/** A broken invariant: a bug or corrupted state. Never caught to continue. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = "InvariantError";
  }
}

/** Throws InvariantError with the message if the condition is false. */
export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new InvariantError(message);
}
