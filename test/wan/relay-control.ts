/**
 * The control side of the WAN relay processes (relay-main.ts): the request shape, how a process
 * applies one, and the harness's client that sends them over the Unix socket.
 */
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { checkProfile } from "./link-relay.js";
import type { LinkProfile, LinkRelay } from "./link-relay.js";

/** A request on the control socket. */
export interface RelayControl {
  /** `host:port` a link listens on, or `*` for every link of the process. */
  readonly link: string;
  readonly out?: Partial<LinkProfile>;
  readonly back?: Partial<LinkProfile>;
  /** Hold every byte of the link(s) for this many ms from now. */
  readonly stall?: number;
}

/** Applies one control request to the matching links. Throws on a bad request. */
export function applyControl(links: ReadonlyMap<string, LinkRelay>, req: RelayControl): void {
  if (typeof req !== "object" || req === null || typeof req.link !== "string") {
    throw new Error('a request needs "link": "host:port" or "*"');
  }
  const targets = req.link === "*" ? [...links.values()] : [links.get(req.link)];
  if (targets[0] === undefined) throw new Error(`no link listens on ${req.link}`);
  if (req.out !== undefined) checkProfile(req.out, "out");
  if (req.back !== undefined) checkProfile(req.back, "back");
  for (const l of targets as LinkRelay[]) {
    if (req.out !== undefined) l.set("out", req.out);
    if (req.back !== undefined) l.set("back", req.back);
    if (req.stall !== undefined) l.stall(req.stall);
  }
}

/** Sends one request to a relay process's control socket; rejects with its error. */
export function sendControl(socketPath: string, req: RelayControl): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const lines = createInterface({ input: sock });
    sock.on("error", reject);
    // readline re-emits its input's errors; the socket's handler above already rejects.
    lines.on("error", () => undefined);
    lines.once("line", (line) => {
      sock.end();
      const answer = JSON.parse(line) as { ok?: boolean; error?: string };
      if (answer.ok === true) resolve();
      else reject(new Error(`relay ${socketPath}: ${answer.error ?? line}`));
    });
    sock.write(`${JSON.stringify(req)}\n`);
  });
}
