/**
 * A statement refused before it reaches the server. Its message says why and what to do; for a
 * save it becomes the entry's error result (the same on every replica, since the refusal depends
 * only on the statement's text), for a load a StoreError.
 */
export class Refusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Refusal";
  }
}
