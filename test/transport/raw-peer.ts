/**
 * A hand-made peer for attack tests: it speaks the peer protocol over raw HTTP/2 with whatever
 * headers and messages a test forges, and can cut a stream short.
 */
import http2 from "node:http2";
import { encodeBatch, encodeMessage } from "../../src/transport/codec.js";
import { frameOf } from "../../src/transport/frame-reader.js";
import { destroySoon } from "../../src/transport/http2-transport.js";
import type { Message } from "../../src/raft/types.js";

/** The peer headers: cluster name and claimed sender id (either may be left out). */
export function peerHeaders(from?: string, cluster?: string): http2.OutgoingHttpHeaders {
  return {
    ...(cluster === undefined ? {} : { "nexus-cluster": cluster }),
    ...(from === undefined ? {} : { "nexus-from": from }),
  };
}

/** What a request got back. */
export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One HTTP/2 connection to a node's peer URL. */
export class RawPeer {
  readonly session: http2.ClientHttp2Session;

  constructor(url: string) {
    this.session = http2.connect(url);
    this.session.on("error", () => undefined);
  }

  /** Sends one request with `body` pieces and reads the answer (status 0 if the stream was reset). */
  request(
    method: "GET" | "POST",
    path: string,
    headers: http2.OutgoingHttpHeaders,
    body: readonly Uint8Array[] = [],
  ): Promise<Answer> {
    const st = this.session.request({ ":method": method, ":path": path, ...headers });
    return new Promise<Answer>((resolve) => {
      let status = 0;
      let text = "";
      st.setEncoding("utf8");
      st.on("response", (h) => (status = Number(h[":status"])));
      st.on("data", (c: string) => (text += c));
      st.on("error", () => undefined);
      st.on("close", () => resolve({ status, body: text }));
      for (const b of body) st.write(b);
      st.end();
    });
  }

  /** Writes one frame of messages on a new raft stream and waits for the node's answer headers. */
  async sendMessages(headers: http2.OutgoingHttpHeaders, msgs: readonly Message[]): Promise<void> {
    const st = this.session.request({
      ":method": "POST",
      ":path": "/nexus/raft/v1/stream",
      ...headers,
    });
    st.on("error", () => undefined);
    await new Promise<void>((resolve) => {
      st.once("response", () => resolve());
      st.once("close", () => resolve());
      st.write(frameOf(encodeBatch(msgs)));
    });
  }

  /** Sends a snapshot stream: the header frame of `m`, then `bytes` of data; resolves with the answer. */
  snapshot(headers: http2.OutgoingHttpHeaders, m: Message, bytes: number): Promise<Answer> {
    const pieces: Uint8Array[] = [frameOf(encodeMessage(m))];
    for (let sent = 0; sent < bytes; sent += 64 * 1024) {
      pieces.push(new Uint8Array(Math.min(64 * 1024, bytes - sent)).fill(7));
    }
    return this.request("POST", "/nexus/raft/v1/snapshot", headers, pieces);
  }

  /**
   * Starts a snapshot stream (the header frame of `m` and `bytes` of data) and leaves it open:
   * the caller cuts it with `cut()`.
   */
  openSnapshot(
    headers: http2.OutgoingHttpHeaders,
    m: Message,
    bytes: number,
  ): http2.ClientHttp2Stream {
    const st = this.session.request({
      ":method": "POST",
      ":path": "/nexus/raft/v1/snapshot",
      ...headers,
    });
    st.on("error", () => undefined);
    st.write(frameOf(encodeMessage(m)));
    if (bytes > 0) st.write(new Uint8Array(bytes).fill(7));
    return st;
  }

  /** Destroys the connection (on the next turn: see destroySoon in http2-transport.ts). */
  close(): void {
    destroySoon(this.session);
  }
}
