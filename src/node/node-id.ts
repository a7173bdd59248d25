/**
 * Node ids and node URLs. A node's id is the first 8 bytes of the SHA-1 of its normalized URL
 * (`http://host:port`), printed as 16 lowercase hex digits. This reproduces the ids printed in the
 * original project's walkthrough (`a10202ab0eac4801 => http://127.0.0.1:9021`); see
 * docs/architecture.md for why this differs from "SHA-1 of host:port".
 */
import { createHash } from "node:crypto";
import { NexusError } from "../errors/index.js";

/** A node id: 16 lowercase hex digits. */
export type NodeIdHex = string;

/** A validated node URL. */
export interface NodeUrl {
  /** The normalized URL, `http://host:port` (no path, no trailing slash). */
  readonly url: string;
  readonly protocol: "http:" | "https:";
  readonly hostname: string;
  readonly port: number;
  /** `host:port` (IPv6 hosts in brackets), as in `url`; the id hashes the whole `url`. */
  readonly hostPort: string;
}

/**
 * Parses and validates a node URL such as `http://127.0.0.1:9021`. Throws BAD_CONFIG with a
 * message saying what is wrong and what a valid URL looks like.
 */
export function parseNodeUrl(raw: string): NodeUrl {
  const hint = `expected a node URL like http://127.0.0.1:9021`;
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new NexusError("BAD_CONFIG", `invalid node URL "${raw}": ${hint}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new NexusError(
      "BAD_CONFIG",
      `invalid node URL "${raw}": scheme must be http or https; ${hint}`,
    );
  }
  if (u.port === "") {
    throw new NexusError("BAD_CONFIG", `invalid node URL "${raw}": a port is required; ${hint}`);
  }
  if ((u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    throw new NexusError(
      "BAD_CONFIG",
      `invalid node URL "${raw}": no path or query allowed; ${hint}`,
    );
  }
  if (u.username !== "" || u.password !== "") {
    throw new NexusError("BAD_CONFIG", `invalid node URL "${raw}": credentials are not allowed`);
  }
  const port = Number(u.port);
  const hostPort = `${u.hostname}:${port}`;
  return {
    url: `${u.protocol}//${hostPort}`,
    protocol: u.protocol,
    hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
    port,
    hostPort,
  };
}

/** The id of a node URL: first 8 bytes of SHA-1 of the normalized URL, as 16 hex digits. */
export function nodeIdOf(url: string | NodeUrl): NodeIdHex {
  const u = typeof url === "string" ? parseNodeUrl(url) : url;
  return createHash("sha1").update(u.url).digest("hex").slice(0, 16);
}

/** Whether s is a well-formed node id. */
export function isNodeIdHex(s: string): boolean {
  return /^[0-9a-f]{16}$/.test(s);
}
