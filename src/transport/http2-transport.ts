/**
 * Peer transport over HTTP/2 at the node URLs (`http://host:port`).
 *
 * Wire format:
 * - `POST /nexus/raft/v1/stream`: one long-lived stream per peer (client to server). The body is
 *   a sequence of frames `u32 BE length | MessageBatch (proto/raft.proto)`. Every message queued
 *   for a peer within one event-loop turn goes into one frame.
 * - `POST /nexus/raft/v1/snapshot`: one stream per snapshot: a frame holding the `snap` Message,
 *   then the snapshot data as the rest of the body. The receiver answers 200 once the handler
 *   has stored it, 500 otherwise. Snapshots never share a stream with heartbeats.
 * - `GET /nexus/raft/v1/progress`: the replication progress the answering node knows as leader
 *   (the handler's bytes, 200), or 503 when it is not the leader. Lets any node show what only
 *   the leader knows (listNodes on a follower).
 * - Headers `nexus-cluster` (cluster name) and `nexus-from` (sender id). Another cluster's
 *   traffic is refused with 403.
 *
 * Queues are bounded per peer (messages and bytes). When a peer is unreachable or its queue is
 * full, messages are dropped and the peer is reported unreachable (Raft retries). Connections are
 * re-established with capped exponential backoff and jitter.
 *
 * Dead connections are detected, not waited out: a connection attempt that has not succeeded
 * within `connectTimeoutMs`, or a connection whose HTTP/2 PING (sent every `pingIntervalMs`)
 * is not answered within `pingTimeoutMs`, is destroyed and made again. Without this a connection
 * through a partition that drops packets stays open, TCP retransmits with a doubling timeout,
 * and a follower takes about as long as the partition lasted to hear from its leader again.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { Message, NodeId } from "../raft/types.js";
import { NexusError } from "../errors/index.js";
import { decodeBatch, decodeMessage, encodeBatch, encodeMessage } from "./codec.js";

const STREAM_PATH = "/nexus/raft/v1/stream";
const SNAPSHOT_PATH = "/nexus/raft/v1/snapshot";
const PROGRESS_PATH = "/nexus/raft/v1/progress";
/** Largest progress answer read, bytes (a member list: far below this). */
const MAX_PROGRESS_BYTES = 4 * 1024 * 1024;

/** What the runtime does with what arrives. */
export interface TransportHandler {
  onMessages(msgs: Message[]): void;
  onUnreachable(peer: NodeId): void;
  /**
   * Messages that certainly never reached their peer: dropped before sending, or written to a
   * connection that failed before it was established. (Messages lost on an established
   * connection are not reported: they may have arrived.) Lets the runtime fail a forwarded
   * proposal at once as not written, instead of waiting for its timeout.
   */
  onDropped?(msgs: readonly Message[]): void;
  /** Stores a received snapshot's data; resolve once durable, reject to refuse it. */
  onSnapshot(msg: Message, body: Readable): Promise<void>;
  onSnapshotStatus(peer: NodeId, status: "finish" | "failure"): void;
  /** The progress this node knows as leader, encoded; undefined when it is not the leader. */
  onProgressRequest?(): Uint8Array | undefined;
}

export interface Http2TransportOptions {
  readonly id: NodeId;
  readonly clusterName: string;
  /** host and port to listen on. */
  readonly listenHost: string;
  readonly listenPort: number;
  readonly handler: TransportHandler;
  /** Opens the data of a snapshot the core wants to send (its message's snapshot.data names it). */
  readonly openSnapshot: (msg: Message) => AsyncIterable<Uint8Array>;
  /** Per-peer queue bounds. Defaults 4096 messages, 64 MiB. */
  readonly maxQueueMessages?: number;
  readonly maxQueueBytes?: number;
  /** Largest frame accepted, bytes. Default 128 MiB. */
  readonly maxFrameBytes?: number;
  /** A connection attempt that takes longer is abandoned and retried. Default 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Interval of the liveness PINGs on each outbound connection. Default 1000 ms. */
  readonly pingIntervalMs?: number;
  /** A PING unanswered this long marks the connection dead. Default 2000 ms. */
  readonly pingTimeoutMs?: number;
  /** Where warnings go, called as pino is: `(fields, msg)` (a NexusLogger fits). */
  readonly logger?: { warn(fields: Readonly<Record<string, unknown>>, msg: string): void };
}

/** Counters per peer. */
export interface PeerStats {
  framesSent: number;
  messagesSent: number;
  bytesSent: number;
  dropped: number;
  reconnects: number;
  /** Connections destroyed because they did not connect or answer a PING in time. */
  deadConnections: number;
}

interface Peer {
  readonly id: NodeId;
  url: string;
  session: http2.ClientHttp2Session | undefined;
  stream: http2.ClientHttp2Stream | undefined;
  queue: Message[];
  queuedBytes: number;
  /** Messages written to a session that has not connected yet (never delivered if it fails). */
  unconnected: Message[];
  flushScheduled: boolean;
  draining: boolean;
  backoffMs: number;
  retryAt: number;
  stats: PeerStats;
}

function approxSize(m: Message): number {
  let n = 64 + m.context.byteLength;
  for (const e of m.entries) n += 24 + e.data.byteLength;
  return n;
}

export class Http2Transport {
  private readonly opts: Http2TransportOptions;
  private readonly peers = new Map<NodeId, Peer>();
  private server: http2.Http2Server | undefined;
  private readonly inbound = new Set<http2.ServerHttp2Session>();
  private stopped = false;
  private readonly maxQueueMessages: number;
  private readonly maxQueueBytes: number;
  private readonly maxFrameBytes: number;
  private readonly connectTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;

  constructor(opts: Http2TransportOptions) {
    this.opts = opts;
    this.maxQueueMessages = opts.maxQueueMessages ?? 4096;
    this.maxQueueBytes = opts.maxQueueBytes ?? 64 * 1024 * 1024;
    this.maxFrameBytes = opts.maxFrameBytes ?? 128 * 1024 * 1024;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 1000;
    this.pingTimeoutMs = opts.pingTimeoutMs ?? 2000;
  }

  /** Listens for peers. Resolves with the bound port. */
  async start(): Promise<number> {
    const server = http2.createServer();
    this.server = server;
    server.on("session", (s) => {
      this.inbound.add(s);
      s.on("close", () => this.inbound.delete(s));
      s.on("error", () => undefined);
    });
    server.on("stream", (stream, headers) => this.onStream(stream, headers));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.listenPort, this.opts.listenHost, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  addPeer(id: NodeId, url: string): void {
    const p = this.peers.get(id);
    if (p !== undefined) {
      if (p.url !== url) {
        p.url = url;
        this.disconnect(p);
      }
      return;
    }
    this.peers.set(id, {
      id,
      url,
      session: undefined,
      stream: undefined,
      queue: [],
      queuedBytes: 0,
      unconnected: [],
      flushScheduled: false,
      draining: false,
      backoffMs: 0,
      retryAt: 0,
      stats: {
        framesSent: 0,
        messagesSent: 0,
        bytesSent: 0,
        dropped: 0,
        reconnects: 0,
        deadConnections: 0,
      },
    });
  }

  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    this.peers.delete(id);
    this.disconnect(p);
  }

  hasPeer(id: NodeId): boolean {
    return this.peers.has(id);
  }

  stats(): Record<NodeId, PeerStats> {
    const out: Record<NodeId, PeerStats> = {};
    for (const p of this.peers.values()) out[p.id] = { ...p.stats };
    return out;
  }

  /** Queues messages for their peers; never blocks. Snapshots go on their own stream. */
  send(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (p === undefined) {
        this.opts.handler.onUnreachable(m.to);
        this.opts.handler.onDropped?.([m]);
        continue;
      }
      if (m.type === "snap") {
        void this.sendSnapshot(p, m);
        continue;
      }
      const size = approxSize(m);
      if (p.queue.length >= this.maxQueueMessages || p.queuedBytes + size > this.maxQueueBytes) {
        p.stats.dropped++;
        this.opts.handler.onUnreachable(p.id);
        this.opts.handler.onDropped?.([m]);
        continue;
      }
      p.queue.push(m);
      p.queuedBytes += size;
      this.scheduleFlush(p);
    }
  }

  private scheduleFlush(p: Peer): void {
    if (p.flushScheduled || p.draining) return;
    p.flushScheduled = true;
    setImmediate(() => {
      p.flushScheduled = false;
      this.flush(p);
    });
  }

  private dropQueue(p: Peer): void {
    if (p.queue.length === 0) return;
    const dropped = p.queue;
    p.stats.dropped += dropped.length;
    p.queue = [];
    p.queuedBytes = 0;
    this.opts.handler.onUnreachable(p.id);
    this.opts.handler.onDropped?.(dropped);
  }

  private flush(p: Peer): void {
    if (this.stopped || p.queue.length === 0 || !this.peers.has(p.id)) return;
    const stream = this.streamFor(p);
    if (stream === undefined) {
      this.dropQueue(p);
      return;
    }
    const msgs = p.queue;
    p.queue = [];
    p.queuedBytes = 0;
    if (p.session?.connecting === true) p.unconnected.push(...msgs);
    const body = encodeBatch(msgs);
    const frame = Buffer.allocUnsafe(4 + body.byteLength);
    frame.writeUInt32BE(body.byteLength, 0);
    frame.set(body, 4);
    p.stats.framesSent++;
    p.stats.messagesSent += msgs.length;
    p.stats.bytesSent += frame.byteLength;
    if (!stream.write(frame)) {
      // HTTP/2 flow control: wait for the peer to read before writing more, or for the stream
      // to go (a dead connection is destroyed while full): either way, flushing resumes.
      p.draining = true;
      const resume = (): void => {
        stream.off("drain", resume);
        stream.off("close", resume);
        p.draining = false;
        this.scheduleFlush(p);
      };
      stream.once("drain", resume);
      stream.once("close", resume);
    }
  }

  private client(p: Peer): http2.ClientHttp2Session | undefined {
    if (p.session !== undefined && !p.session.closed && !p.session.destroyed) return p.session;
    if (Date.now() < p.retryAt) return undefined;
    const s = http2.connect(p.url);
    p.session = s;
    p.stats.reconnects++;
    const onFail = (): void => {
      if (p.session === s) {
        p.session = undefined;
        p.stream = undefined;
        p.backoffMs = Math.min(2000, Math.max(50, p.backoffMs * 2));
        p.retryAt = Date.now() + p.backoffMs * (0.5 + Math.random() / 2);
        const dropped = [...p.unconnected, ...p.queue];
        p.stats.dropped += p.queue.length;
        p.queue = [];
        p.queuedBytes = 0;
        p.unconnected = [];
        // Whatever was in flight on the connection is lost: let the core probe again.
        if (!this.stopped && this.peers.get(p.id) === p) {
          this.opts.handler.onUnreachable(p.id);
          if (dropped.length > 0) this.opts.handler.onDropped?.(dropped);
        }
      }
    };
    s.on("error", onFail);
    s.on("close", onFail);
    const dead = (why: string): void => {
      if (s.destroyed) return;
      p.stats.deadConnections++;
      this.opts.logger?.warn({ peer: p.id, why }, "peer connection is dead; reconnecting");
      s.destroy();
    };
    const connectTimer = setTimeout(
      () => dead(`not connected within ${this.connectTimeoutMs} ms`),
      this.connectTimeoutMs,
    );
    connectTimer.unref();
    let pingSentAt = 0;
    const pinger = setInterval(() => {
      if (s.destroyed || s.closed) {
        clearInterval(pinger);
        return;
      }
      if (s.connecting) return;
      const now = Date.now();
      if (pingSentAt !== 0) {
        if (now - pingSentAt > this.pingTimeoutMs) {
          dead(`PING unanswered for ${now - pingSentAt} ms`);
        }
        return;
      }
      pingSentAt = now;
      try {
        s.ping(() => (pingSentAt = 0));
      } catch {
        // Too many PINGs in flight or the session is closing: the next round decides.
      }
    }, this.pingIntervalMs);
    pinger.unref();
    s.once("close", () => {
      clearTimeout(connectTimer);
      clearInterval(pinger);
    });
    s.on("connect", () => {
      clearTimeout(connectTimer);
      p.backoffMs = 0;
      // Sent from now on; what was written before may have arrived.
      if (p.session === s) p.unconnected = [];
    });
    return s;
  }

  /** The headers of every request to a peer: method, path, our cluster name and id. */
  private headers(method: "GET" | "POST", path: string): http2.OutgoingHttpHeaders {
    return {
      ":method": method,
      ":path": path,
      "nexus-cluster": this.opts.clusterName,
      "nexus-from": this.opts.id,
    };
  }

  private streamFor(p: Peer): http2.ClientHttp2Stream | undefined {
    if (p.stream !== undefined && !p.stream.closed && !p.stream.destroyed) return p.stream;
    const s = this.client(p);
    if (s === undefined) return undefined;
    let st: http2.ClientHttp2Stream;
    try {
      st = s.request(this.headers("POST", STREAM_PATH));
    } catch {
      return undefined;
    }
    p.stream = st;
    st.on("response", (h) => {
      const status = Number(h[":status"]);
      if (status !== 200) {
        this.opts.logger?.warn({ peer: p.id, status }, "peer refused our stream");
        st.close();
      }
    });
    st.on("error", () => undefined);
    st.on("close", () => {
      if (p.stream === st) p.stream = undefined;
    });
    st.resume();
    return st;
  }

  private async sendSnapshot(p: Peer, m: Message): Promise<void> {
    const s = this.client(p);
    if (s === undefined) {
      this.opts.handler.onSnapshotStatus(p.id, "failure");
      return;
    }
    try {
      const st = s.request(this.headers("POST", SNAPSHOT_PATH));
      const done = new Promise<number>((resolve, reject) => {
        st.on("response", (h) => resolve(Number(h[":status"])));
        st.on("error", reject);
        st.on("close", () => reject(new Error("snapshot stream closed")));
      });
      done.catch(() => undefined);
      const head = encodeMessage(m);
      const frame = Buffer.allocUnsafe(4 + head.byteLength);
      frame.writeUInt32BE(head.byteLength, 0);
      frame.set(head, 4);
      const write = (b: Uint8Array): Promise<void> =>
        new Promise((resolve, reject) => {
          if (st.destroyed || st.closed) {
            reject(new Error("snapshot stream closed"));
            return;
          }
          if (st.write(b)) {
            resolve();
            return;
          }
          // Wait for the peer to read, or fail if the stream goes (a dead connection).
          const onDrain = (): void => {
            st.off("close", onClose);
            resolve();
          };
          const onClose = (): void => {
            st.off("drain", onDrain);
            reject(new Error("snapshot stream closed"));
          };
          st.once("drain", onDrain);
          st.once("close", onClose);
        });
      await write(frame);
      for await (const chunk of this.opts.openSnapshot(m)) await write(chunk);
      st.end();
      const status = await done;
      this.opts.handler.onSnapshotStatus(p.id, status === 200 ? "finish" : "failure");
    } catch (err) {
      this.opts.logger?.warn(
        {
          peer: p.id,
          error: (err as Error).message,
        },
        "sending a snapshot failed",
      );
      this.opts.handler.onSnapshotStatus(p.id, "failure");
    }
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => undefined);
    const path = headers[":path"];
    if (headers["nexus-cluster"] !== this.opts.clusterName) {
      stream.respond({ ":status": 403 });
      stream.end(`refused: this node belongs to cluster "${this.opts.clusterName}"`);
      return;
    }
    if (path === STREAM_PATH) {
      stream.respond({ ":status": 200 });
      this.readFrames(
        stream,
        (frame) => this.opts.handler.onMessages(decodeBatch(frame)),
        undefined,
      );
      return;
    }
    if (path === SNAPSHOT_PATH) {
      this.receiveSnapshot(stream);
      return;
    }
    if (path === PROGRESS_PATH) {
      let body: Uint8Array | undefined;
      try {
        body = this.opts.handler.onProgressRequest?.();
      } catch (err) {
        this.opts.logger?.warn(
          {
            error: (err as Error).message,
          },
          "could not answer a progress request",
        );
      }
      if (body === undefined) {
        stream.respond({ ":status": 503 });
        stream.end("not the leader");
        return;
      }
      stream.respond({ ":status": 200 });
      stream.end(body);
      return;
    }
    stream.respond({ ":status": 404 });
    stream.end();
  }

  /** Reads length-prefixed frames; a malformed or oversized frame closes the stream. */
  private readFrames(
    stream: http2.ServerHttp2Stream,
    onFrame: (b: Uint8Array) => void,
    onRest: ((rest: Buffer) => void) | undefined,
  ): void {
    let buf: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = buf.byteLength === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.byteLength >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > this.maxFrameBytes) {
          this.opts.logger?.warn({ bytes: len }, "peer sent an oversized frame");
          stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
          return;
        }
        if (buf.byteLength < 4 + len) return;
        const frame = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        try {
          onFrame(frame);
        } catch (err) {
          this.opts.logger?.warn(
            {
              error: (err as Error).message,
            },
            "dropped a malformed frame from a peer",
          );
          stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
          return;
        }
        if (onRest !== undefined) {
          stream.off("data", onData);
          onRest(buf);
          return;
        }
      }
    };
    stream.on("data", onData);
  }

  private receiveSnapshot(stream: http2.ServerHttp2Stream): void {
    let header: Message | undefined;
    this.readFrames(
      stream,
      (frame) => {
        header = decodeMessage(frame);
        if (header.type !== "snap")
          throw new NexusError("INVALID_ARGUMENT", "snapshot stream without a snap message");
      },
      (rest) => {
        const m = header!;
        const body = new Readable({ read: () => stream.resume() });
        if (rest.byteLength > 0) body.push(rest);
        stream.on("data", (c: Buffer) => {
          if (!body.push(c)) stream.pause();
        });
        stream.on("end", () => body.push(null));
        stream.on("error", (e) => body.destroy(e));
        this.opts.handler.onSnapshot(m, body).then(
          () => {
            stream.respond({ ":status": 200 });
            stream.end();
          },
          (err: unknown) => {
            body.destroy();
            stream.respond({ ":status": 500 });
            stream.end(String((err as Error).message));
          },
        );
      },
    );
  }

  /**
   * Asks a peer for the progress it knows as leader (its handler's onProgressRequest bytes), on
   * the peer's connection. Rejects with UNREACHABLE when the peer does not answer within
   * `timeoutMs`, and NOT_LEADER when it answers that it does not lead.
   */
  requestProgress(peer: NodeId, timeoutMs: number): Promise<Uint8Array> {
    const p = this.peers.get(peer);
    if (this.stopped || p === undefined) {
      return Promise.reject(new NexusError("UNREACHABLE", `${peer} is not a known peer`));
    }
    const s = this.client(p);
    if (s === undefined) {
      return Promise.reject(new NexusError("UNREACHABLE", `${p.url} is not connected now`));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let st: http2.ClientHttp2Stream;
      try {
        st = s.request(this.headers("GET", PROGRESS_PATH));
      } catch (err) {
        reject(new NexusError("UNREACHABLE", `${p.url}: ${(err as Error).message}`));
        return;
      }
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const timer = setTimeout(() => {
        settle(() =>
          reject(new NexusError("UNREACHABLE", `${p.url} did not answer in ${timeoutMs} ms`)),
        );
        st.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);

      let status = 0;
      const chunks: Buffer[] = [];
      let bytes = 0;
      st.on("response", (h) => (status = Number(h[":status"])));
      st.on("data", (c: Buffer) => {
        bytes += c.byteLength;
        if (bytes > MAX_PROGRESS_BYTES) {
          settle(() =>
            reject(
              new NexusError("UNREACHABLE", `${p.url} sent more than ${MAX_PROGRESS_BYTES} bytes`),
            ),
          );
          st.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(c);
      });
      st.on("end", () =>
        settle(() => {
          if (status === 200) resolve(Buffer.concat(chunks));
          else if (status === 503)
            reject(new NexusError("NOT_LEADER", `${p.url} is not the leader`));
          else reject(new NexusError("UNREACHABLE", `${p.url} answered HTTP ${status}`));
        }),
      );
      st.on("error", (err) =>
        settle(() => reject(new NexusError("UNREACHABLE", `${p.url}: ${err.message}`))),
      );
      st.on("close", () =>
        settle(() => reject(new NexusError("UNREACHABLE", `${p.url} closed the request`))),
      );
      st.end();
    });
  }

  private disconnect(p: Peer): void {
    p.stream?.close();
    p.stream = undefined;
    p.session?.destroy();
    p.session = undefined;
  }

  /** Closes every connection and the listener. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.peers.values()) this.disconnect(p);
    for (const s of this.inbound) s.destroy();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}
