/**
 * A WAN link in user space (this kernel has no netem): a TCP relay that listens where a node
 * dials a peer and forwards to where the peer really listens, holding every chunk of bytes for
 * the link's one-way delay (plus jitter), pacing them at its bandwidth, and holding everything
 * during a stall (the TCP-level effect of a burst of loss: nothing arrives, then all of it).
 *
 * Each direction has its own profile: `out` for the bytes the dialer sends, `back` for the bytes
 * it receives. A relay serves one directed link (node A dialing node B), so a cluster of n nodes
 * uses n·(n-1) of them, and the node processes are unmodified: they advertise the relay addresses
 * (`-nexus-node-url`) and bind their real ones (`-nexus-listen-url`).
 *
 * Properties kept, as a real link keeps them: bytes of one connection arrive in order (jitter
 * never reorders within a stream, it only varies the gaps); a bandwidth cap serialises chunks one
 * after another; the bytes held on the "wire" are bounded (`maxQueuedBytes`), beyond which the
 * relay stops reading from the sender, so TCP back-pressure reaches it as it would on a full
 * link. Changes to a profile apply to bytes that arrive after the change; a stall also holds the
 * bytes already queued.
 */
import { createServer, connect } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";

export interface LinkProfile {
  /** One-way delay in milliseconds. */
  readonly delayMs: number;
  /** Each chunk's delay varies uniformly within ±jitterMs (never below 0, never reordering). */
  readonly jitterMs: number;
  /** Bytes per second; 0 means no cap. */
  readonly bandwidthBps: number;
}

export const NO_DELAY: LinkProfile = { delayMs: 0, jitterMs: 0, bandwidthBps: 0 };

export interface LinkRelayOptions {
  readonly listenHost: string;
  /** 0 picks a free port (see `port` after `start()`). */
  readonly listenPort: number;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly out?: LinkProfile;
  readonly back?: LinkProfile;
  /** Uniform random numbers in [0, 1) for jitter; seed it for reproducible runs. */
  readonly random?: () => number;
  /** Bytes held per direction of a connection before the relay stops reading. Default 8 MiB. */
  readonly maxQueuedBytes?: number;
}

export type Direction = "out" | "back";

/** Checks a profile read from flags or a control message; throws naming the bad field. */
export function checkProfile(p: Partial<LinkProfile>, what: string): void {
  for (const [k, v] of Object.entries(p)) {
    if (!["delayMs", "jitterMs", "bandwidthBps"].includes(k)) {
      throw new Error(`${what}: unknown field ${k} (delayMs, jitterMs, bandwidthBps)`);
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new Error(`${what}: ${k} must be a number >= 0, got ${String(v)}`);
    }
  }
}

/** One direction of one relayed connection: a paced, delayed, ordered queue of chunks. */
class Pipe {
  private readonly queue: { at: number; chunk: Buffer }[] = [];
  private queued = 0;
  /** When the previous chunk finished "transmitting" at the link's bandwidth. */
  private txEnd = 0;
  /** When the previous chunk is delivered: later chunks never arrive before it. */
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private waitingDrain = false;

  constructor(
    private readonly relay: LinkRelay,
    private readonly dir: Direction,
    private readonly src: Socket,
    private readonly dst: Socket,
  ) {
    src.on("data", (chunk: Buffer) => this.push(chunk));
    src.on("end", () => {
      this.ended = true;
      this.flush();
    });
    dst.on("drain", () => {
      this.waitingDrain = false;
      this.flush();
    });
  }

  private push(chunk: Buffer): void {
    const p = this.relay.profile(this.dir);
    const now = performance.now();
    const start = Math.max(now, this.txEnd);
    this.txEnd = p.bandwidthBps > 0 ? start + (chunk.length * 1000) / p.bandwidthBps : start;
    const jitter = p.jitterMs > 0 ? (this.relay.random() * 2 - 1) * p.jitterMs : 0;
    const at = Math.max(this.txEnd + Math.max(0, p.delayMs + jitter), this.lastAt);
    this.lastAt = at;
    this.queue.push({ at, chunk });
    this.queued += chunk.length;
    if (this.queued > this.relay.maxQueuedBytes) this.src.pause();
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.waitingDrain) return;
    const head = this.queue[0];
    if (head === undefined) return;
    const at = Math.max(head.at, this.relay.stalledUntil());
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.flush();
      },
      Math.max(0, at - performance.now()),
    );
  }

  /** Delivers every chunk that is due; ends the far side once the sender ended and all is out. */
  flush(): void {
    if (this.dst.destroyed) return;
    const now = performance.now();
    if (now >= this.relay.stalledUntil()) {
      while (this.queue.length > 0 && this.queue[0]!.at <= now && !this.waitingDrain) {
        const { chunk } = this.queue.shift()!;
        this.queued -= chunk.length;
        if (!this.dst.write(chunk)) this.waitingDrain = true;
      }
    }
    if (this.queued <= this.relay.maxQueuedBytes / 2 && this.src.isPaused()) this.src.resume();
    if (this.queue.length === 0 && this.ended) {
      this.dst.end();
      return;
    }
    this.schedule();
  }

  /** Re-plans the timer (after a stall was set or lifted). */
  replan(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule();
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/** One directed WAN link: listen, forward, delay. */
export class LinkRelay {
  private server: Server | undefined;
  private readonly profiles: Record<Direction, LinkProfile>;
  private readonly pipes = new Set<Pipe>();
  private readonly sockets = new Set<Socket>();
  private stallEnd = 0;
  private connections = 0;
  readonly random: () => number;
  readonly maxQueuedBytes: number;

  constructor(private readonly o: LinkRelayOptions) {
    checkProfile(o.out ?? NO_DELAY, "out");
    checkProfile(o.back ?? NO_DELAY, "back");
    this.profiles = { out: o.out ?? NO_DELAY, back: o.back ?? NO_DELAY };
    this.random = o.random ?? Math.random;
    this.maxQueuedBytes = o.maxQueuedBytes ?? 8 * 1024 * 1024;
  }

  /** The port it listens on (after `start()`). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.o.listenPort;
  }

  /** Connections accepted so far. */
  get accepted(): number {
    return this.connections;
  }

  profile(dir: Direction): LinkProfile {
    return this.profiles[dir];
  }

  /** Changes one direction's profile (fields left out keep their value). */
  set(dir: Direction, p: Partial<LinkProfile>): void {
    checkProfile(p, dir);
    this.profiles[dir] = { ...this.profiles[dir], ...p };
  }

  /** Holds every byte in both directions for `ms` from now (0 lifts a stall at once). */
  stall(ms: number): void {
    if (!(ms >= 0)) throw new Error(`stall must be >= 0 ms, got ${ms}`);
    this.stallEnd = performance.now() + ms;
    for (const p of this.pipes) p.replan();
  }

  stalledUntil(): number {
    return this.stallEnd;
  }

  start(): Promise<void> {
    const server = createServer({ noDelay: true }, (client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.listenPort, this.o.listenHost, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  private accept(client: Socket): void {
    this.connections++;
    // Bytes written before the target connects are buffered by the socket.
    const target = connect({ host: this.o.targetHost, port: this.o.targetPort, noDelay: true });
    const pipes = [new Pipe(this, "out", client, target), new Pipe(this, "back", target, client)];
    for (const p of pipes) this.pipes.add(p);
    this.sockets.add(client).add(target);
    const forget = (): void => {
      for (const p of pipes) {
        p.close();
        this.pipes.delete(p);
      }
      this.sockets.delete(client);
      this.sockets.delete(target);
    };
    // A reset or refusal on either side resets the other, as a cut connection would. A clean
    // close travels as an end through the pipe, after the bytes still on the wire.
    const reset = (): void => {
      client.destroy();
      target.destroy();
      forget();
    };
    client.on("error", reset);
    target.on("error", reset);
    let open = 2;
    const closed = (): void => {
      if (--open === 0) forget();
    };
    client.on("close", closed);
    target.on("close", closed);
  }

  /** Stops listening and cuts every relayed connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}
