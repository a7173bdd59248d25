/**
 * Peer transport over HTTP/2 at the node URLs: `http://host:port`, or `https://host:port` with
 * mutual TLS. src/transport/DESIGN.md specifies the wire format, the checks made on everything a
 * peer sends, and what they protect against.
 *
 * In short:
 * - `POST /nexus/raft/v1/stream`: one long-lived stream per peer (client to server) of frames
 *   `u32 BE length | MessageBatch (proto/raft.proto)`. Messages queued for a peer within one
 *   event-loop turn share a frame (up to a batch size).
 * - `POST /nexus/raft/v1/snapshot`: one stream per snapshot: a frame holding the `snap` Message,
 *   then the snapshot data as the rest of the body. Answered 200 once the handler has stored it.
 * - `GET /nexus/raft/v1/progress`: the replication progress the node knows as leader (200), or
 *   503 when it is not the leader. Served only to a member.
 * - Headers `nexus-cluster` (cluster name), `nexus-from` (sender id) and `nexus-from-url` (sender
 *   URL), `nexus-priority` (the sender's leader priority, 0-1000) when it has one, and
 *   `nexus-timing` (`<heartbeat ms>/<election ticks>`, what bounds a leader's lease) once it is
 *   known. With TLS the sender's certificate must name that URL and the URL must hash to that id;
 *   every message's `from` must be the sender, every `to` this node, and the sender a member
 *   (`admitsSender`), or the request is refused (403, no detail) or the frame dropped.
 *
 * Queues are bounded per peer (messages and bytes). When a peer is unreachable or its queue is
 * full, messages are dropped and the peer is reported unreachable (Raft retries). Connections are
 * re-established with capped exponential backoff and jitter. Dead connections are detected, not
 * waited out: a connection attempt that has not succeeded within `connectTimeoutMs`, or a
 * connection whose HTTP/2 PING (sent every `pingIntervalMs`) is not answered within
 * `pingTimeoutMs`, is destroyed and made again.
 *
 * Inbound, every stream event is handled (a stream cut short never throws), frames are assembled
 * in linear time and capped, snapshots are capped and checked before their data is read, idle
 * streams and sessions are closed, and sessions are limited in streams, headers and number.
 */
import http2 from "node:http2";
import { X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Message, MessageType, NodeId } from "../raft/types.js";
import { NexusError } from "../errors/index.js";
import { decodeBatch, decodeMessage, encodeBatch, encodeMessage, isWireNodeId } from "./codec.js";
import { FrameReader, frameOf } from "./frame-reader.js";
import { certificateNamesUrl, describeCertificateNames } from "./peer-identity.js";
import { isTlsFailure, type PeerTls, type PeerTlsMaterial } from "./peer-tls.js";
import { RefusalLog } from "./refusal-log.js";

const STREAM_PATH = "/nexus/raft/v1/stream";
const SNAPSHOT_PATH = "/nexus/raft/v1/snapshot";
const PROGRESS_PATH = "/nexus/raft/v1/progress";
/** Largest progress answer read, bytes (a member list: far below this). */
const MAX_PROGRESS_BYTES = 4 * 1024 * 1024;
/** Largest snapshot header frame (one `snap` message whose data is a file name). */
const MAX_SNAPSHOT_HEADER_BYTES = 1024 * 1024;
/** A frame is closed once its messages reach this size (approximate); one message may exceed it. */
const BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Messages that Raft relays with the `from` of another node: a follower forwards `transfer-leader`
 * with `from` naming the transferee, and passes on another node's `read-index` with `from` naming
 * the node that asked (the leader answers it directly).
 */
const RELAYED: ReadonlySet<MessageType> = new Set<MessageType>(["transfer-leader", "read-index"]);
/** A refused or idle session is given this long to close before it is destroyed. */
const CLOSE_GRACE_MS = 2000;

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
  /**
   * Stores a received snapshot's data; resolve once durable, reject to refuse it. Called only
   * after `checkSnapshot` accepted its message; `body` fails if the stream is cut short or
   * exceeds `maxSnapshotBytes`.
   */
  onSnapshot(msg: Message, body: Readable): Promise<void>;
  onSnapshotStatus(peer: NodeId, status: "finish" | "failure"): void;
  /** The progress this node knows as leader, encoded; undefined when it is not the leader. */
  onProgressRequest?(): Uint8Array | undefined;
  /**
   * Whether `from` (an authenticated sender with TLS, a claimed one without) may send to this
   * node now: a member of its configuration, or anyone while it has not joined a cluster yet.
   * Asked for every frame, snapshot and progress request; false drops the frame or refuses the
   * request. Must be cheap.
   */
  admitsSender(from: NodeId): boolean;
  /**
   * Checks a snapshot's `snap` message before any of its data is read or written (its term, that
   * its configuration includes this node, that it is newer than what this node has). Throws a
   * NexusError saying why to refuse it. Absent: every snapshot from an admitted sender is taken.
   */
  checkSnapshot?(msg: Message): void;
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
  /** This node's URL, sent as `nexus-from-url`: what a peer checks our certificate against. Required with `tls`. */
  readonly selfUrl?: string;
  /**
   * Mutual TLS between peers: listen with TLS, ask every peer for a certificate signed by the
   * trusted CA, present ours to peers. Needed to reach `https://` peers (and only those).
   */
  readonly tls?: PeerTls;
  /** The node id of a node URL: with `tls`, the id that a certificate naming the URL proves. Required with `tls`. */
  readonly idOfUrl?: (url: string) => NodeId;
  /** Per-peer queue bounds. Defaults 4096 messages, 64 MiB. */
  readonly maxQueueMessages?: number;
  readonly maxQueueBytes?: number;
  /** Largest frame accepted, bytes. Default 64 MiB. */
  readonly maxFrameBytes?: number;
  /** Largest snapshot accepted, bytes; a larger one is refused (and logged). Default 8 GiB. */
  readonly maxSnapshotBytes?: number;
  /** Snapshots received at once; more are answered 503 (the sender retries). Default 2. */
  readonly maxConcurrentSnapshots?: number;
  /** Streams a peer may open at once on one connection. Default 32. */
  readonly maxConcurrentStreams?: number;
  /**
   * HTTP/2 flow-control window of each stream, bytes: what a peer may send before this node
   * acknowledges. A stream moves at most one window per round trip, so across a WAN it must hold
   * the bandwidth-delay product (HTTP/2's default 64 KiB caps a stream at about 650 KB/s at
   * 100 ms). Default 16 MiB (100 Mbit/s at about 1.3 s of round trip).
   */
  readonly streamWindowBytes?: number;
  /** The connection's flow-control window, shared by its streams, bytes. Default 32 MiB. */
  readonly connectionWindowBytes?: number;
  /**
   * This node's leader priority, announced to peers in the `nexus-priority` header of every
   * request (src/node/leader-placement.ts). Default: not announced.
   */
  readonly leaderPriority?: number;
  /** Largest header block accepted, bytes. Default 16 KiB. */
  readonly maxHeaderListBytes?: number;
  /** Inbound connections at once; more are refused. Default 1024. */
  readonly maxInboundSessions?: number;
  /** An inbound stream or connection that carries no data this long is closed. Default 60,000 ms. */
  readonly idleTimeoutMs?: number;
  /** A TLS handshake that takes longer is abandoned. Default 10,000 ms. */
  readonly tlsHandshakeTimeoutMs?: number;
  /** A connection attempt that takes longer is abandoned and retried. Default 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Interval of the liveness PINGs on each outbound connection. Default 1000 ms. */
  readonly pingIntervalMs?: number;
  /** A PING unanswered this long marks the connection dead. Default 2000 ms. */
  readonly pingTimeoutMs?: number;
  /** Where warnings go, called as pino is: `(fields, msg)` or `(msg)` (a NexusLogger fits). */
  readonly logger?: {
    warn(fields: Readonly<Record<string, unknown>>, msg: string): void;
    info?(fields: Readonly<Record<string, unknown>>, msg?: string): void;
  };
}

/** A node's Raft timing as it announces it: heartbeat tick and election timeout in ticks. */
export interface PeerTiming {
  readonly heartbeatTickMs: number;
  readonly electionTick: number;
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
  /** Round-trip time of the last answered HTTP/2 PING, ms; -1 before one is answered. */
  rttMs: number;
}

/** Counters of what this node refused or dropped from others. */
export interface InboundStats {
  /** Requests answered 403/404/413/503 or refused before they were read. */
  refusedRequests: number;
  /** Frames dropped whole: malformed, oversized, a sender not admitted, a forged `from`. */
  droppedFrames: number;
  /** Snapshots refused (checkSnapshot, size cap, busy, cut short). */
  refusedSnapshots: number;
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

/** Who sent a request, once authenticated (TLS) or as claimed (plaintext). */
interface Sender {
  readonly id: NodeId;
  /** The remote address, for logs. */
  readonly address: string;
}

function approxSize(m: Message): number {
  let n = 64 + m.context.byteLength;
  for (const e of m.entries) n += 24 + e.data.byteLength;
  return n;
}

/**
 * Destroys a session on the next turn of the event loop, never in the current one: Node 20 can
 * spin forever (and grow until it aborts with bad_alloc) inside `session.destroy()` when it is
 * called in the same turn as the `close` of a stream the peer reset while another stream of the
 * session is open (test/transport/hostile-input.test.ts has the case).
 */
/** How long a removed peer's connection stays open for what was written to it. */
const REMOVED_PEER_GRACE_MS = 1000;

/**
 * A peer that answered a request with an HTTP status other than success or NOT_LEADER (another
 * cluster's name, an unknown sender, a TLS identity it refuses): code UNREACHABLE, as for a peer
 * that did not answer, but something runs there (`nexus recover` refuses on it).
 */
export class PeerRefusedError extends NexusError {
  constructor(
    readonly url: string,
    readonly httpStatus: number,
  ) {
    super("UNREACHABLE", `${url} answered HTTP ${httpStatus}`);
  }
}

export function destroySoon(s: http2.Http2Session): void {
  setImmediate(() => s.destroy());
}

/** A header's value as one string, or undefined (absent or repeated). */
function header(h: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return typeof v === "string" ? v : undefined;
}

/** Up to 80 characters of an untrusted string, quoted, for logs. */
function quote(s: string | undefined): string {
  return s === undefined ? "(none)" : JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
}

export class Http2Transport {
  private readonly opts: Http2TransportOptions;
  private readonly peers = new Map<NodeId, Peer>();
  private server: http2.Http2Server | http2.Http2SecureServer | undefined;
  private readonly inbound = new Set<http2.ServerHttp2Session>();
  private stopped = false;
  private readonly maxQueueMessages: number;
  private readonly maxQueueBytes: number;
  private readonly maxFrameBytes: number;
  private readonly maxSnapshotBytes: number;
  private readonly maxConcurrentSnapshots: number;
  private readonly maxConcurrentStreams: number;
  private readonly streamWindowBytes: number;
  /** Leader priorities announced by authenticated senders (bounded; placement reads only members). */
  private readonly priorities = new Map<NodeId, number>();
  /** Raft timings announced by authenticated senders (bounded like priorities). */
  private readonly timings = new Map<NodeId, PeerTiming>();
  /** This node's timing, announced in `nexus-timing` once set (announceTiming). */
  private ownTiming: PeerTiming | undefined;
  private readonly connectionWindowBytes: number;
  private readonly maxHeaderListBytes: number;
  private readonly maxInboundSessions: number;
  private readonly idleTimeoutMs: number;
  private readonly tlsHandshakeTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly refusals: RefusalLog;
  private snapshotsInFlight = 0;
  private readonly inboundStats: InboundStats = {
    refusedRequests: 0,
    droppedFrames: 0,
    refusedSnapshots: 0,
  };

  /** Throws BAD_CONFIG when `tls` is given without `selfUrl` and `idOfUrl`. */
  constructor(opts: Http2TransportOptions) {
    this.opts = opts;
    if (opts.tls !== undefined && (opts.selfUrl === undefined || opts.idOfUrl === undefined)) {
      throw new NexusError("BAD_CONFIG", "a TLS peer transport needs selfUrl and idOfUrl");
    }
    const positive = (name: string, v: number | undefined, def: number): number => {
      const x = v ?? def;
      if (!Number.isSafeInteger(x) || x < 1) {
        throw new NexusError(
          "BAD_CONFIG",
          `transport option ${name} must be an integer >= 1, got ${String(v)}`,
        );
      }
      return x;
    };
    this.maxQueueMessages = positive("maxQueueMessages", opts.maxQueueMessages, 4096);
    this.maxQueueBytes = positive("maxQueueBytes", opts.maxQueueBytes, 64 * 1024 * 1024);
    this.maxFrameBytes = Math.min(
      0xffff_ffff,
      positive("maxFrameBytes", opts.maxFrameBytes, 64 * 1024 * 1024),
    );
    this.maxSnapshotBytes = positive("maxSnapshotBytes", opts.maxSnapshotBytes, 8 * 1024 ** 3);
    this.maxConcurrentSnapshots = positive(
      "maxConcurrentSnapshots",
      opts.maxConcurrentSnapshots,
      2,
    );
    this.maxConcurrentStreams = positive("maxConcurrentStreams", opts.maxConcurrentStreams, 32);
    // HTTP/2 caps a window at 2^31 - 1 bytes.
    this.streamWindowBytes = Math.min(
      positive("streamWindowBytes", opts.streamWindowBytes, 16 * 1024 * 1024),
      2 ** 31 - 1,
    );
    this.connectionWindowBytes = Math.min(
      positive("connectionWindowBytes", opts.connectionWindowBytes, 32 * 1024 * 1024),
      2 ** 31 - 1,
    );
    this.maxHeaderListBytes = positive("maxHeaderListBytes", opts.maxHeaderListBytes, 16 * 1024);
    this.maxInboundSessions = positive("maxInboundSessions", opts.maxInboundSessions, 1024);
    this.idleTimeoutMs = positive("idleTimeoutMs", opts.idleTimeoutMs, 60_000);
    this.tlsHandshakeTimeoutMs = positive(
      "tlsHandshakeTimeoutMs",
      opts.tlsHandshakeTimeoutMs,
      10_000,
    );
    this.connectTimeoutMs = positive("connectTimeoutMs", opts.connectTimeoutMs, 2000);
    this.pingIntervalMs = positive("pingIntervalMs", opts.pingIntervalMs, 1000);
    this.pingTimeoutMs = positive("pingTimeoutMs", opts.pingTimeoutMs, 2000);
    this.refusals = new RefusalLog(opts.logger);
  }

  /** HTTP/2 settings and limits shared by the server and the client sessions. */
  private sessionOptions(): http2.SessionOptions {
    return {
      settings: {
        maxConcurrentStreams: this.maxConcurrentStreams,
        initialWindowSize: this.streamWindowBytes,
        maxHeaderListSize: this.maxHeaderListBytes,
        enablePush: false,
      },
      maxHeaderListPairs: 32,
      maxSendHeaderBlockLength: this.maxHeaderListBytes,
    };
  }

  /** Raises a session's connection window from HTTP/2's 64 KiB (a WINDOW_UPDATE to the peer). */
  private widenConnectionWindow(s: http2.Http2Session): void {
    try {
      s.setLocalWindowSize(this.connectionWindowBytes);
    } catch {
      // The session closed meanwhile: nothing to widen.
    }
  }

  /** Listens for peers. Resolves with the bound port. */
  async start(): Promise<number> {
    const tls = this.opts.tls;
    const server =
      tls === undefined
        ? http2.createServer(this.sessionOptions())
        : http2.createSecureServer({
            ...this.sessionOptions(),
            ...tls.material,
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: "TLSv1.2",
            allowHTTP1: false,
            handshakeTimeout: this.tlsHandshakeTimeoutMs,
          });
    this.server = server;
    server.maxConnections = this.maxInboundSessions;
    server.on("session", (s: http2.ServerHttp2Session) => {
      this.inbound.add(s);
      this.widenConnectionWindow(s);
      s.on("close", () => this.inbound.delete(s));
      s.on("error", () => undefined);
      s.on("frameError", () => undefined);
    });
    // A connection or stream that carries no data for idleTimeoutMs is closed (streams in
    // onStream). PINGs do not count: only stream data does.
    server.setTimeout(this.idleTimeoutMs);
    server.on("timeout", (s: http2.ServerHttp2Session) => this.closeSession(s));
    server.on("sessionError", () => undefined);
    if (tls !== undefined) {
      server.on("tlsClientError", (err: Error, socket: TLSSocket) => {
        this.refusals.warn("tls", "refused a peer connection: TLS handshake failed", {
          remote: socket.remoteAddress,
          error: err.message,
        });
      });
      tls.onChange((m) => this.useTls(m));
    }
    server.on("stream", (stream, headers) => this.onStream(stream, headers));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.listenPort, this.opts.listenHost, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) =>
      this.opts.logger?.warn({ error: err.message }, "peer listener error"),
    );
    tls?.watch(2000, {
      info: (f, msg) => this.opts.logger?.info?.(f, msg),
      warn: (f, msg) => this.opts.logger?.warn(f, msg),
    });
    return (server.address() as AddressInfo).port;
  }

  /**
   * New TLS material (a reload): new connections use it at once; established ones, authenticated
   * with the old material, are closed at once so that every peer is checked again (a peer whose
   * CA is no longer trusted is cut off now, not when its connection ends).
   */
  private useTls(m: PeerTlsMaterial): void {
    if (this.stopped) return;
    (this.server as http2.Http2SecureServer | undefined)?.setSecureContext({ ...m });
    for (const s of this.inbound) destroySoon(s);
    for (const p of this.peers.values()) this.disconnect(p);
    this.opts.logger?.info?.(
      {},
      "peer TLS material in use changed; peer connections re-established",
    );
  }

  /** Reads the TLS files again now (SIGHUP). Throws BAD_CONFIG, keeping the old material, when they are unusable. */
  reloadTls(): boolean {
    if (this.opts.tls === undefined) {
      throw new NexusError("BAD_CONFIG", "this node does not use TLS between peers");
    }
    return this.opts.tls.reload();
  }

  private closeSession(s: http2.ServerHttp2Session): void {
    if (s.destroyed) return;
    try {
      s.close();
    } catch {
      // Already closing.
    }
    setTimeout(() => destroySoon(s), CLOSE_GRACE_MS).unref();
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
        rttMs: -1,
      },
    });
  }

  /**
   * Forgets a peer. What is queued for it is written first and the connection closed gently,
   * after a grace period: a member being removed must still hear the commit that removes it (sent
   * in the same Ready whose conf change removes the peer), or it would campaign on without ever
   * learning it left.
   */
  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    if (p.queue.length > 0 && !p.draining) this.flush(p);
    this.peers.delete(id);
    const stream = p.stream;
    const session = p.session;
    p.stream = undefined;
    p.session = undefined;
    p.queue = [];
    p.queuedBytes = 0;
    stream?.end();
    if (session !== undefined) {
      setTimeout(() => session.destroy(), REMOVED_PEER_GRACE_MS).unref();
    }
  }

  hasPeer(id: NodeId): boolean {
    return this.peers.has(id);
  }

  /** Counters per peer, with the messages queued for it now. */
  stats(): Record<NodeId, PeerStats & { queued: number }> {
    const out: Record<NodeId, PeerStats & { queued: number }> = {};
    for (const p of this.peers.values()) out[p.id] = { ...p.stats, queued: p.queue.length };
    return out;
  }

  /** What this node refused or dropped from others so far. */
  refused(): InboundStats {
    return { ...this.inboundStats };
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
    while (!this.stopped && p.queue.length > 0 && !p.draining && this.peers.has(p.id)) {
      const stream = this.streamFor(p);
      if (stream === undefined) {
        this.dropQueue(p);
        return;
      }
      // One frame holds the queue up to about BATCH_BYTES (at least one message), so that no
      // frame nears a receiver's maxFrameBytes unless one message does.
      let n = 0;
      let bytes = 0;
      while (n < p.queue.length && (n === 0 || bytes + approxSize(p.queue[n]!) <= BATCH_BYTES)) {
        bytes += approxSize(p.queue[n]!);
        n++;
      }
      const msgs = p.queue.slice(0, n);
      p.queue = n === p.queue.length ? [] : p.queue.slice(n);
      p.queuedBytes = Math.max(0, p.queuedBytes - bytes);
      if (p.session?.connecting === true) p.unconnected.push(...msgs);
      const frame = frameOf(encodeBatch(msgs));
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
  }

  /** Client options for a peer URL, or a reason the URL cannot be reached. */
  private connectOptions(p: Peer): http2.SecureClientSessionOptions | string {
    const https = p.url.startsWith("https://");
    const tls = this.opts.tls;
    if (!https) {
      return tls === undefined
        ? this.sessionOptions()
        : `${p.url} is plaintext, and this node talks to peers only over TLS (https:// URLs)`;
    }
    if (tls === undefined) {
      return `${p.url} needs TLS, and this node has no peer certificate (-peer-cert-file, -peer-key-file, -peer-trusted-ca-file)`;
    }
    const url = p.url;
    return {
      ...this.sessionOptions(),
      ...tls.material,
      minVersion: "TLSv1.2",
      // The peer must be the node at this URL: its certificate must name the URL (or its host).
      checkServerIdentity: (_host, cert) => {
        let x: X509Certificate;
        try {
          x = new X509Certificate(cert.raw);
        } catch (err) {
          return err as Error;
        }
        if (certificateNamesUrl(x, url)) return undefined;
        // Node's code for a certificate not naming the host: isTlsFailure decides by it.
        return Object.assign(
          new Error(
            `the peer at ${url} presented a certificate that does not name it (${describeCertificateNames(x)})`,
          ),
          { code: "ERR_TLS_CERT_ALTNAME_INVALID" },
        );
      },
    };
  }

  private client(p: Peer): http2.ClientHttp2Session | undefined {
    if (p.session !== undefined && !p.session.closed && !p.session.destroyed) return p.session;
    if (Date.now() < p.retryAt) return undefined;
    const options = this.connectOptions(p);
    if (typeof options === "string") {
      this.refusals.warn(`scheme:${p.id}`, "cannot connect to a peer", {
        peer: p.id,
        why: options,
      });
      p.retryAt = Date.now() + 2000;
      return undefined;
    }
    const s = http2.connect(p.url, options);
    p.session = s;
    p.stats.reconnects++;
    /** The peer closed the connection on purpose (GOAWAY, no error): idle, reload, stopping. */
    let graceful = false;
    s.on("goaway", (code: number) => {
      if (code === http2.constants.NGHTTP2_NO_ERROR) graceful = true;
    });
    const onFail = (err?: Error): void => {
      if (p.session !== s) return;
      p.session = undefined;
      p.stream = undefined;
      const dropped = [...p.unconnected, ...p.queue];
      p.stats.dropped += p.queue.length;
      p.queue = [];
      p.queuedBytes = 0;
      p.unconnected = [];
      if (graceful && err === undefined && dropped.length === 0) {
        // Closed idle, or to re-authenticate: reconnect when there is something to send.
        return;
      }
      if (err !== undefined && isTlsFailure(err)) {
        this.refusals.warn(`tls-out:${p.id}`, "TLS with a peer failed", {
          peer: p.id,
          url: p.url,
          error: err.message,
        });
      }
      p.backoffMs = Math.min(2000, Math.max(50, p.backoffMs * 2));
      p.retryAt = Date.now() + p.backoffMs * (0.5 + Math.random() / 2);
      // Whatever was in flight on the connection is lost: let the core probe again.
      if (!this.stopped && this.peers.get(p.id) === p) {
        this.opts.handler.onUnreachable(p.id);
        if (dropped.length > 0) this.opts.handler.onDropped?.(dropped);
      }
    };
    s.on("error", (err: Error) => onFail(err));
    s.on("close", () => onFail());
    let declaredDead = false;
    const dead = (why: string): void => {
      if (s.destroyed || declaredDead) return;
      declaredDead = true;
      p.stats.deadConnections++;
      this.opts.logger?.warn({ peer: p.id, why }, "peer connection is dead; reconnecting");
      destroySoon(s);
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
        s.ping((err, ms) => {
          pingSentAt = 0;
          if (err === null) p.stats.rttMs = ms;
        });
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
      this.widenConnectionWindow(s);
      p.backoffMs = 0;
      // Sent from now on; what was written before may have arrived.
      if (p.session === s) p.unconnected = [];
    });
    return s;
  }

  /** The headers of every request to a peer: method, path, our cluster name, id and URL. */
  private headers(method: "GET" | "POST", path: string): http2.OutgoingHttpHeaders {
    return {
      ":method": method,
      ":path": path,
      "nexus-cluster": this.opts.clusterName,
      "nexus-from": this.opts.id,
      ...(this.opts.selfUrl === undefined ? {} : { "nexus-from-url": this.opts.selfUrl }),
      ...(this.opts.leaderPriority === undefined
        ? {}
        : { "nexus-priority": String(this.opts.leaderPriority) }),
      ...(this.ownTiming === undefined
        ? {}
        : {
            "nexus-timing": `${this.ownTiming.heartbeatTickMs}/${this.ownTiming.electionTick}`,
          }),
    };
  }

  /** Announces this node's Raft timing on every request from now on (streams opened after). */
  announceTiming(t: PeerTiming): void {
    this.ownTiming = t;
  }

  /** The Raft timing a peer announced on its last message stream, if it did. */
  timingOf(peer: NodeId): PeerTiming | undefined {
    return this.timings.get(peer);
  }

  /**
   * Times one round trip to a peer: an HTTP/2 PING on its connection (made first if need be),
   * ms. Undefined when the peer is unknown or does not answer within `timeoutMs`.
   */
  async measureRtt(peer: NodeId, timeoutMs: number): Promise<number | undefined> {
    const p = this.peers.get(peer);
    if (p === undefined || this.stopped) return undefined;
    const s = this.client(p);
    if (s === undefined) return undefined;
    return new Promise((resolve) => {
      let done = false;
      const finish = (ms: number | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.off("connect", ping);
        s.off("close", gone);
        resolve(ms);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const gone = (): void => finish(undefined);
      const ping = (): void => {
        try {
          s.ping((err, ms) => {
            if (err === null) p.stats.rttMs = ms;
            finish(err === null ? ms : undefined);
          });
        } catch {
          finish(undefined);
        }
      };
      s.once("close", gone);
      if (s.connecting) s.once("connect", ping);
      else ping();
    });
  }

  /** The leader priority a peer announced on its last message stream, if it did. */
  priorityOf(peer: NodeId): number | undefined {
    return this.priorities.get(peer);
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
        this.refusals.warn(`refused-us:${p.id}`, "peer refused our stream", {
          peer: p.id,
          status,
        });
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
      let status = 0;
      let answer = "";
      const done = new Promise<number>((resolve, reject) => {
        st.on("response", (h) => {
          status = Number(h[":status"]);
          if (status !== 200) resolve(status);
        });
        st.setEncoding("utf8");
        st.on("data", (c: string) => {
          if (answer.length < 1000) answer += c;
        });
        st.on("end", () => resolve(status));
        st.on("error", reject);
        st.on("close", () =>
          status === 0 ? reject(new Error("snapshot stream closed")) : resolve(status),
        );
      });
      done.catch(() => undefined);
      const write = (b: Uint8Array): Promise<void> =>
        new Promise((resolve, reject) => {
          if (status !== 0 && status !== 200) {
            reject(new Error(`the peer refused the snapshot (HTTP ${status})`));
            return;
          }
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
      const started = Date.now();
      let sent = 0;
      try {
        await write(frameOf(encodeMessage(m)));
        for await (const chunk of this.opts.openSnapshot(m)) {
          await write(chunk);
          sent += chunk.byteLength;
        }
        st.end();
      } catch (err) {
        // A refusal ends the stream early: report what the peer said, not the broken write.
        if (status === 0) throw err;
        st.close(http2.constants.NGHTTP2_CANCEL);
      }
      const got = await done;
      if (got !== 200) {
        this.opts.logger?.warn(
          {
            peer: p.id,
            status: got,
            answer: answer.trim(),
          },
          "a peer refused the snapshot we sent",
        );
      } else {
        this.opts.logger?.info?.(
          { peer: p.id, index: m.snapshot?.metadata.index, bytes: sent, ms: Date.now() - started },
          "snapshot sent",
        );
      }
      this.opts.handler.onSnapshotStatus(p.id, got === 200 ? "finish" : "failure");
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

  /**
   * Answers a request, once: nothing when it was answered already or its stream is gone (cut by
   * the peer). Never throws.
   */
  private answer(stream: http2.ServerHttp2Stream, status: number, body = ""): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    try {
      stream.respond({ ":status": status });
      stream.end(body);
    } catch {
      // The peer reset the stream meanwhile.
    }
  }

  /** Answers, then stops reading the request: what the peer still sends is not wanted. */
  private answerAndClose(stream: http2.ServerHttp2Stream, status: number, body = ""): void {
    this.answer(stream, status, body);
    setImmediate(() => {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
  }

  /** Refuses a request: a bare status for the peer (nothing that helps an attacker), a log line here. */
  private refuse(
    stream: http2.ServerHttp2Stream,
    status: number,
    kind: string,
    why: string,
    fields: Record<string, unknown>,
  ): void {
    this.inboundStats.refusedRequests++;
    this.refusals.warn(kind, `refused a peer request: ${why}`, fields);
    this.answerAndClose(stream, status);
  }

  /**
   * Who sent the request, checked: the cluster name, a well-formed id and, with TLS, a
   * certificate (verified against the trusted CA during the handshake) that names the claimed
   * URL, which must hash to the claimed id. A string says why not.
   */
  private authenticate(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): Sender | string {
    const from = header(headers, "nexus-from");
    if (header(headers, "nexus-cluster") !== this.opts.clusterName) {
      return `another cluster's name ${quote(header(headers, "nexus-cluster"))} (sender ${quote(from)})`;
    }
    if (from === undefined || !isWireNodeId(from)) return `a malformed sender id ${quote(from)}`;
    const tls = this.opts.tls;
    if (tls === undefined)
      return { id: from, address: stream.session?.socket?.remoteAddress ?? "" };
    const socket = stream.session?.socket as TLSSocket | undefined;
    const cert = socket?.authorized === true ? socket.getPeerX509Certificate() : undefined;
    if (cert === undefined) return `no verified client certificate (sender ${quote(from)})`;
    const url = header(headers, "nexus-from-url");
    if (url === undefined) return `no nexus-from-url header (sender ${quote(from)})`;
    let id: NodeId;
    try {
      id = this.opts.idOfUrl!(url);
    } catch {
      return `a malformed sender URL ${quote(url)}`;
    }
    if (id !== from) {
      return `sender id ${quote(from)} is not the id of its URL ${quote(url)} (${id})`;
    }
    if (!certificateNamesUrl(cert, url)) {
      return `the certificate (${describeCertificateNames(cert)}) does not name the sender's URL ${quote(url)}`;
    }
    return { id, address: socket?.remoteAddress ?? "" };
  }

  /** Remembers a sender's announced timing (`<ms>/<ticks>`); anything malformed is ignored. */
  private noteTiming(who: Sender, raw: string | undefined): void {
    if (raw === undefined) {
      this.timings.delete(who.id);
      return;
    }
    const m = /^(\d{1,7})\/(\d{1,4})$/.exec(raw);
    const t =
      m === null ? undefined : { heartbeatTickMs: Number(m[1]), electionTick: Number(m[2]) };
    if (t === undefined || t.heartbeatTickMs < 1 || t.electionTick < 2) {
      this.refusals.warn(`timing:${who.id}`, "ignored a malformed Raft timing", {
        from: who.id,
        timing: quote(raw),
      });
      return;
    }
    if (this.timings.size < 4096 || this.timings.has(who.id)) this.timings.set(who.id, t);
  }

  /** Remembers a sender's announced priority: a decimal integer 0-1000; anything else is ignored. */
  private notePriority(who: Sender, raw: string | undefined): void {
    if (raw === undefined) {
      this.priorities.delete(who.id);
      return;
    }
    const p = /^\d{1,4}$/.test(raw) ? Number(raw) : -1;
    if (p < 0 || p > 1000) {
      this.refusals.warn(`priority:${who.id}`, "ignored a malformed leader priority", {
        from: who.id,
        priority: quote(raw),
      });
      return;
    }
    if (this.priorities.size < 4096 || this.priorities.has(who.id)) this.priorities.set(who.id, p);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => undefined);
    try {
      this.route(stream, headers);
    } catch (err) {
      // A stream reset by the peer while it was being routed: nothing to answer.
      this.opts.logger?.warn({ error: (err as Error).message }, "a peer request failed");
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private route(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // A stream that carries nothing for idleTimeoutMs is closed; the peer opens a new one.
    stream.setTimeout(this.idleTimeoutMs, () => {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    const path = header(headers, ":path");
    const who = this.authenticate(stream, headers);
    if (typeof who === "string") {
      this.refuse(stream, 403, "unauthenticated", who, {
        remote: stream.session?.socket?.remoteAddress,
        path: quote(path),
      });
      return;
    }
    if (path === STREAM_PATH && header(headers, ":method") === "POST") {
      this.notePriority(who, header(headers, "nexus-priority"));
      this.noteTiming(who, header(headers, "nexus-timing"));
      stream.respond({ ":status": 200 });
      this.readFrames(stream, who);
      return;
    }
    if (path === SNAPSHOT_PATH && header(headers, ":method") === "POST") {
      this.receiveSnapshot(stream, who);
      return;
    }
    if (path === PROGRESS_PATH && header(headers, ":method") === "GET") {
      this.answerProgress(stream, who);
      return;
    }
    this.refuse(stream, 404, "unknown-path", "an unknown path", {
      from: who.id,
      remote: who.address,
      path: quote(path),
    });
  }

  private answerProgress(stream: http2.ServerHttp2Stream, who: Sender): void {
    if (!this.admits(who)) {
      this.refuse(
        stream,
        403,
        "not-member",
        "the progress asked by a sender that is not a member",
        {
          from: who.id,
          remote: who.address,
        },
      );
      return;
    }
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
      this.answer(stream, 503, "not the leader");
      return;
    }
    if (stream.destroyed || stream.closed) return;
    try {
      stream.respond({ ":status": 200 });
      stream.end(body);
    } catch {
      // Reset by the peer meanwhile.
    }
  }

  private admits(who: Sender): boolean {
    try {
      return this.opts.handler.admitsSender(who.id);
    } catch {
      return false;
    }
  }

  /**
   * The raft stream: frames of message batches. A frame is delivered only whole and only when
   * every message in it comes from the sender (or is relayed, naming a member: RELAYED) to this
   * node and the sender is admitted; a frame
   * from a sender not admitted is dropped (the stream stays: membership changes); a malformed,
   * oversized or forged one closes the stream.
   */
  private readFrames(stream: http2.ServerHttp2Stream, who: Sender): void {
    const reader = new FrameReader(this.maxFrameBytes);
    let closed = false;
    const close = (kind: string, why: string, fields: Record<string, unknown>): void => {
      closed = true;
      this.inboundStats.droppedFrames++;
      this.refusals.warn(kind, `closed a peer stream: ${why}`, {
        from: who.id,
        remote: who.address,
        ...fields,
      });
      stream.off("data", onData);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    };
    const onData = (chunk: Buffer): void => {
      if (closed) return;
      reader.push(chunk);
      for (;;) {
        let frame: Uint8Array | undefined;
        try {
          frame = reader.next();
        } catch (err) {
          close("oversized", "an oversized frame", { error: (err as Error).message });
          return;
        }
        if (frame === undefined) return;
        let msgs: Message[];
        try {
          msgs = decodeBatch(frame);
        } catch (err) {
          close("malformed", "a malformed frame", { error: (err as Error).message });
          return;
        }
        // Each message comes from the sender, or is one Raft relays and names a member.
        const forged = msgs.find(
          (m) =>
            m.to !== this.opts.id ||
            (m.from !== who.id &&
              !(RELAYED.has(m.type) && this.admits({ id: m.from, address: who.address }))),
        );
        if (forged !== undefined) {
          close("forged", "a message not from its sender or not to this node", {
            messageFrom: forged.from,
            messageTo: forged.to,
            type: forged.type,
          });
          return;
        }
        if (msgs.length === 0) continue;
        if (!this.admits(who)) {
          this.inboundStats.droppedFrames++;
          this.refusals.warn(
            "not-member",
            "dropped messages from a sender that is not a member this node knows " +
              "(if this node is behind a membership change, it catches up once a member it knows leads)",
            { from: who.id, remote: who.address, messages: msgs.length, type: msgs[0]!.type },
          );
          continue;
        }
        try {
          this.opts.handler.onMessages(msgs);
        } catch (err) {
          this.opts.logger?.warn(
            {
              from: who.id,
              error: (err as Error).message,
            },
            "the node could not take messages from a peer",
          );
        }
      }
    };
    stream.on("data", onData);
  }

  /**
   * A snapshot stream: its header frame is decoded and checked (sender, addressee, membership,
   * `checkSnapshot`) before any data is read; the data is then handed to the handler as a
   * stream that fails if the peer cuts it short or sends more than maxSnapshotBytes.
   */
  private receiveSnapshot(stream: http2.ServerHttp2Stream, who: Sender): void {
    const fields = { from: who.id, remote: who.address };
    if (this.snapshotsInFlight >= this.maxConcurrentSnapshots) {
      this.inboundStats.refusedSnapshots++;
      this.refuse(
        stream,
        503,
        "snapshot-busy",
        "a snapshot while others are being received",
        fields,
      );
      return;
    }
    this.snapshotsInFlight++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.snapshotsInFlight--;
    };
    stream.once("close", release);
    const refuseSnapshot = (status: number, kind: string, why: string, extra = {}): void => {
      this.inboundStats.refusedSnapshots++;
      this.refuse(stream, status, kind, why, { ...fields, ...extra });
      release();
    };
    const reader = new FrameReader(MAX_SNAPSHOT_HEADER_BYTES);
    const onHeader = (chunk: Buffer): void => {
      reader.push(chunk);
      let frame: Uint8Array | undefined;
      let m: Message;
      try {
        frame = reader.next();
        if (frame === undefined) return;
        m = decodeMessage(frame);
      } catch (err) {
        stream.off("data", onHeader);
        refuseSnapshot(400, "snapshot-malformed", "a malformed snapshot header", {
          error: (err as Error).message,
        });
        return;
      }
      stream.off("data", onHeader);
      stream.pause();
      if (m.type !== "snap" || m.from !== who.id || m.to !== this.opts.id) {
        refuseSnapshot(403, "forged", "a snapshot header not a snap from its sender to this node", {
          type: m.type,
          messageFrom: m.from,
          messageTo: m.to,
        });
        return;
      }
      if (!this.admits(who)) {
        refuseSnapshot(403, "not-member", "a snapshot from a sender that is not a member");
        return;
      }
      try {
        this.opts.handler.checkSnapshot?.(m);
      } catch (err) {
        this.inboundStats.refusedSnapshots++;
        this.opts.logger?.warn(
          {
            ...fields,
            term: m.term,
            index: m.snapshot?.metadata.index,
            why: (err as Error).message,
          },
          "refused a snapshot before writing it",
        );
        this.answerAndClose(stream, 409, (err as Error).message);
        release();
        return;
      }
      this.takeSnapshotBody(stream, who, m, reader.takeRest(), release);
    };
    stream.on("data", onHeader);
  }

  private takeSnapshotBody(
    stream: http2.ServerHttp2Stream,
    who: Sender,
    m: Message,
    rest: Uint8Array[],
    release: () => void,
  ): void {
    let received = 0;
    const started = Date.now();
    let ended = false;
    const body = new Readable({ read: () => stream.resume() });
    // A handler that has not started reading when the stream is cut must not crash the process
    // with an unhandled 'error': it sees the error when it reads.
    body.on("error", () => undefined);
    let refused = false;
    const take = (c: Uint8Array): boolean => {
      if (body.destroyed) return false;
      received += c.byteLength;
      if (received > this.maxSnapshotBytes) {
        refused = true;
        this.inboundStats.refusedSnapshots++;
        this.opts.logger?.warn(
          { from: who.id, index: m.snapshot?.metadata.index },
          `refused a snapshot larger than the limit of ${this.maxSnapshotBytes} bytes ` +
            "(maxSnapshotBytes; raise -nexus-max-snapshot-bytes on this node if the store is that large)",
        );
        body.destroy(
          new NexusError(
            "TOO_LARGE",
            `the snapshot exceeds the limit of ${this.maxSnapshotBytes} bytes`,
          ),
        );
        this.answerAndClose(stream, 413, "snapshot too large");
        return false;
      }
      return body.push(c);
    };
    for (const c of rest) take(c);
    stream.on("data", (c: Buffer) => {
      if (body.destroyed) return;
      if (!take(c)) stream.pause();
    });
    // A stream the peer reset before ending it is cut short, even when Node then ends it.
    const cutShort = (): void => {
      if (!body.destroyed) {
        body.destroy(new NexusError("UNREACHABLE", "the snapshot stream was cut short"));
      }
    };
    stream.on("aborted", () => {
      if (!ended) cutShort();
    });
    stream.on("end", () => {
      if (stream.aborted) {
        cutShort();
        return;
      }
      ended = true;
      if (!body.destroyed) body.push(null);
    });
    // Cut short (reset, connection lost, idle timeout): the data is incomplete.
    stream.on("close", () => {
      if (!ended && !body.destroyed) {
        body.destroy(new NexusError("UNREACHABLE", "the snapshot stream was cut short"));
      }
    });
    stream.resume();
    let handled: Promise<void>;
    try {
      handled = this.opts.handler.onSnapshot(m, body);
    } catch (err) {
      handled = Promise.reject(err as Error);
    }
    handled.then(
      () => {
        release();
        this.opts.logger?.info?.(
          {
            from: who.id,
            index: m.snapshot?.metadata.index,
            bytes: received,
            ms: Date.now() - started,
          },
          "snapshot received",
        );
        this.answer(stream, 200);
      },
      (err: unknown) => {
        release();
        body.destroy();
        if (!refused) this.inboundStats.refusedSnapshots++;
        if (stream.destroyed || stream.closed || stream.headersSent) return;
        this.opts.logger?.warn(
          {
            from: who.id,
            index: m.snapshot?.metadata.index,
            error: (err as Error).message,
          },
          "a received snapshot was not stored",
        );
        this.answerAndClose(stream, 500, (err as Error).message);
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
          else reject(new PeerRefusedError(p.url, status));
        }),
      );
      st.on("error", (err) =>
        settle(() => reject(new NexusError("UNREACHABLE", `${p.url}: ${err.message}`))),
      );
      st.on("close", () =>
        settle(() => {
          if (status !== 0 && status !== 200 && status !== 503) {
            reject(new PeerRefusedError(p.url, status));
          } else reject(new NexusError("UNREACHABLE", `${p.url} closed the request`));
        }),
      );
      st.end();
    });
  }

  private disconnect(p: Peer): void {
    p.stream?.close();
    p.stream = undefined;
    if (p.session !== undefined) destroySoon(p.session);
    p.session = undefined;
  }

  /** Closes every connection and the listener. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.opts.tls?.close();
    for (const p of this.peers.values()) this.disconnect(p);
    for (const s of this.inbound) destroySoon(s);
    const server = this.server;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}
