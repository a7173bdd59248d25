/**
 * The WAL's batch writer thread: a dedicated worker (node:worker_threads) that writes a batch to
 * the current segment's descriptor and fdatasyncs it with synchronous calls, in one hop from the
 * main thread, instead of two libuv thread-pool hops (an asynchronous write, then an asynchronous
 * fdatasync) and their promises.
 *
 * The hand-off is shared memory, no message per batch:
 *
 * - `control` (Int32Array over a SharedArrayBuffer): the request sequence number, the completed
 *   one, the operation, the descriptor, the length, the status; a Float64 slot for the position.
 * - `data` (a SharedArrayBuffer): the batch's bytes. The WAL encodes its batch straight into it
 *   (`buffer(size)`), so nothing is copied. A batch larger than it gets a new, larger buffer,
 *   handed to the worker over a MessagePort before the request.
 *
 * The worker sleeps in `Atomics.wait` on the request number; the main thread waits for the
 * completed number with `Atomics.waitAsync` (no event-loop message on either side). An error
 * (EIO, ENOSPC, ...) is posted back as a plain object and rebuilt as an Error with the same
 * `code`, `errno`, `syscall` and message as node:fs gives, so the WAL fails exactly as with the
 * thread-pool path.
 *
 * One request at a time: the WAL's flusher awaits each batch before encoding the next one (group
 * commit: saves made meanwhile go into the next batch), so the data buffer is never written
 * while the worker reads it.
 *
 * Lifecycle: started by `Wal.open()`, stopped by `Wal.close()`. The worker is unreferenced while
 * idle (it never keeps the process alive) and referenced while a request or the stop is in
 * flight (a pending `Atomics.waitAsync` alone does not keep Node's event loop alive).
 */
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";

/** Control slots (Int32 indexes). */
/** The largest request number before it wraps to 1 (the control slots are Int32). */
export const MAX_SEQ = 0x3fffffff;

/** The request number after `seq`: 1 to MAX_SEQ, round and round (never 0 nor -1). */
export function nextSeq(seq: number): number {
  return seq >= MAX_SEQ ? 1 : seq + 1;
}

const REQ = 0;
const DONE = 1;
const OP = 2;
const FD = 3;
const LEN = 4;
const STATUS = 5;
/** Float64 index of the position (byte offset 32). */
const POS_F64 = 4;
const CONTROL_BYTES = 48;

const OP_WRITE = 1;
const OP_SYNC = 2;
const OP_STOP = 4;

/** `Atomics.waitAsync` (ES2024, in Node 20's V8; not in this project's TypeScript lib). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** Initial size of the shared data buffer; it grows to the next power of two when needed. */
const INITIAL_DATA_BYTES = 1024 * 1024;

/**
 * The worker's code, run with `eval` (CommonJS, no loader: the same text works under tsx, in
 * tests and from the compiled package). It must stay self-contained.
 */
const WORKER_SOURCE = `
"use strict";
const { workerData } = require("node:worker_threads");
const { receiveMessageOnPort } = require("node:worker_threads");
const fs = require("node:fs");
const c = new Int32Array(workerData.control);
const pos = new Float64Array(workerData.control);
const port = workerData.port;
let data = new Uint8Array(workerData.data);
let seen = 0;
for (;;) {
  Atomics.wait(c, ${REQ}, seen);
  const req = Atomics.load(c, ${REQ});
  if (req === seen) continue;
  seen = req;
  const op = c[${OP}];
  if (op === ${OP_STOP}) {
    Atomics.store(c, ${DONE}, req);
    Atomics.notify(c, ${DONE});
    break;
  }
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    data = new Uint8Array(m.message);
  }
  const fd = c[${FD}];
  let status = 0;
  try {
    if ((op & ${OP_WRITE}) !== 0) {
      const len = c[${LEN}];
      const at = pos[${POS_F64}];
      let off = 0;
      while (off < len) {
        const n = fs.writeSync(fd, data, off, len - off, at + off);
        if (n <= 0) throw new Error("short write (" + off + " of " + len + " bytes)");
        off += n;
      }
    }
    if ((op & ${OP_SYNC}) !== 0) fs.fdatasyncSync(fd);
  } catch (e) {
    status = 1;
    port.postMessage({ message: String(e && e.message), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall });
  }
  c[${STATUS}] = status;
  Atomics.store(c, ${DONE}, req);
  Atomics.notify(c, ${DONE});
}
port.close();
`;

/** An error from the worker, rebuilt: node:fs's message, `code`, `errno` and `syscall`. */
export interface WalWriterError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

/** A plain object describing an error, as the worker posts it. */
export interface PostedError {
  readonly message: string;
  readonly code?: string | undefined;
  readonly errno?: number | undefined;
  readonly syscall?: string | undefined;
}

/** Rebuilds a posted error as node:fs would have thrown it. */
export function rebuildError(p: PostedError): WalWriterError {
  const e: WalWriterError = new Error(p.message);
  if (typeof p.code === "string") e.code = p.code;
  if (typeof p.errno === "number") e.errno = p.errno;
  if (typeof p.syscall === "string") e.syscall = p.syscall;
  return e;
}

/** The batch writer thread of one WAL (see the module comment). */
export class WalWriter {
  private readonly worker: Worker;
  private readonly control: Int32Array;
  private readonly position: Float64Array;
  private readonly port: MessagePort;
  private data: Uint8Array;
  private seq = 0;
  private busy = false;
  private exited = false;
  private exitError: Error | undefined;
  private readonly exitPromise: Promise<void>;

  private constructor() {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const data = new SharedArrayBuffer(INITIAL_DATA_BYTES);
    this.control = new Int32Array(control);
    this.position = new Float64Array(control);
    this.data = new Uint8Array(data);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Not the parent's flags (a loader such as tsx, --test): the code is plain CommonJS.
      execArgv: [],
      workerData: { control, data, port: port2 },
      transferList: [port2],
      name: "nexus-wal-writer",
    });
    this.worker.unref();
    this.exitPromise = new Promise((resolve) => {
      this.worker.once("error", (err) => {
        this.exitError = err;
      });
      this.worker.once("exit", (code) => {
        this.exited = true;
        this.exitError ??= new Error(`the WAL writer thread exited (code ${code})`);
        // Wake a request waiting for an answer that will never come.
        Atomics.store(this.control, DONE, -1);
        Atomics.notify(this.control, DONE);
        resolve();
      });
    });
  }

  /** Starts a writer thread. It is ready to take requests at once (they wait for it to start). */
  static start(): WalWriter {
    return new WalWriter();
  }

  /**
   * A buffer of `size` bytes to encode a batch into, shared with the worker. Valid until the
   * next call; never call while a request is in flight.
   */
  buffer(size: number): Uint8Array {
    if (this.busy) throw new Error("WalWriter.buffer() while a request is in flight");
    if (size > this.data.byteLength) {
      let n = this.data.byteLength;
      while (n < size) n *= 2;
      const sab = new SharedArrayBuffer(n);
      this.data = new Uint8Array(sab);
      // Read by the worker before the next request (it drains the port first).
      this.port.postMessage(sab);
    }
    return this.data.subarray(0, size);
  }

  /**
   * Writes the first `length` bytes of the shared buffer at `position` of descriptor `fd`
   * (`write`), then fdatasyncs it (`sync`), in the worker. Rejects with the node:fs error.
   */
  async run(
    fd: number,
    length: number,
    position: number,
    write: boolean,
    sync: boolean,
  ): Promise<void> {
    const op = (write ? OP_WRITE : 0) | (sync ? OP_SYNC : 0);
    await this.request(op, fd, length, position);
  }

  private async request(op: number, fd: number, length: number, position: number): Promise<void> {
    if (this.exited) throw this.exitError ?? new Error("the WAL writer thread has stopped");
    if (this.busy) throw new Error("WalWriter: one request at a time");
    this.busy = true;
    const c = this.control;
    // Kept within Int32 (the control slots) and off -1 (the thread's death mark): it wraps.
    const prev = this.seq;
    const seq = nextSeq(prev);
    this.seq = seq;
    c[OP] = op;
    c[FD] = fd;
    c[LEN] = length;
    this.position[POS_F64] = position;
    this.worker.ref();
    try {
      Atomics.store(c, REQ, seq);
      Atomics.notify(c, REQ);
      while (Atomics.load(c, DONE) === prev) {
        const w = waitAsync(c, DONE, prev);
        if (w.async) await w.value;
      }
      if (Atomics.load(c, DONE) !== seq) {
        throw this.exitError ?? new Error("the WAL writer thread has stopped");
      }
      if (op !== OP_STOP && c[STATUS] !== 0) {
        const m = receiveMessageOnPort(this.port);
        throw rebuildError(
          (m?.message as PostedError | undefined) ?? { message: "the WAL writer failed" },
        );
      }
    } finally {
      this.busy = false;
      this.worker.unref();
    }
  }

  /** Stops the worker and waits for it to exit. Idempotent. */
  async stop(): Promise<void> {
    if (!this.exited) {
      // The WAL stops it only once no batch is in flight; otherwise end it the hard way.
      if (this.busy) await this.worker.terminate();
      else await this.request(OP_STOP, 0, 0, 0).catch(() => undefined);
      this.worker.ref();
      await this.exitPromise;
    }
    this.port.close();
  }
}
