/**
 * Request waiters: a caller waiting for something identified by a key (a save's request id, a
 * read's context) with a deadline. Every waiter is settled exactly once: by its result, by its
 * timeout, or by rejectAll() when the node stops.
 */

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class Waiters<T> {
  private readonly waiters = new Map<string, Waiter<T>>();

  /**
   * Registers a waiter for key that rejects with onTimeout() after timeoutMs. Throws if the key
   * is already waited for (keys are random; a duplicate is a bug).
   */
  wait(key: string, timeoutMs: number, onTimeout: () => Error): Promise<T> {
    if (this.waiters.has(key)) throw new Error(`duplicate waiter ${key}`);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(onTimeout());
      }, timeoutMs);
      this.waiters.set(key, { resolve, reject, timer });
    });
  }

  /** Whether someone waits for key. */
  has(key: string): boolean {
    return this.waiters.has(key);
  }

  /** Settles the waiter for key with a value; returns whether there was one. */
  resolve(key: string, v: T): boolean {
    const w = this.waiters.get(key);
    if (w === undefined) return false;
    this.waiters.delete(key);
    clearTimeout(w.timer);
    w.resolve(v);
    return true;
  }

  /** Settles the waiter for key with an error; returns whether there was one. */
  reject(key: string, e: Error): boolean {
    const w = this.waiters.get(key);
    if (w === undefined) return false;
    this.waiters.delete(key);
    clearTimeout(w.timer);
    w.reject(e);
    return true;
  }

  /** Rejects every waiter (node stopping or failed). */
  rejectAll(make: () => Error): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(make());
    }
  }

  get size(): number {
    return this.waiters.size;
  }
}

interface IndexWaiter {
  readonly index: number;
  resolve(): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Waiters for a position to be reached (e.g. the store's applied index): every waiter at or below
 * the position is resolved when it is reached. Settled exactly once, like Waiters: by reaching the
 * index, by its timeout, or by rejectAll().
 */
export class IndexWaiters {
  private waiters: IndexWaiter[] = [];

  /** Resolves once reached(i) is called with i >= index; rejects with onTimeout() after timeoutMs. */
  wait(index: number, timeoutMs: number, onTimeout: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: IndexWaiter = {
        index,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(onTimeout());
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** The position reached `index`: resolves every waiter at or below it. */
  reached(index: number): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.index <= index);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.index > index);
    for (const w of ready) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  /** Rejects every waiter (node stopping or failed). */
  rejectAll(make: () => Error): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(make());
    }
  }

  get size(): number {
    return this.waiters.length;
  }
}
