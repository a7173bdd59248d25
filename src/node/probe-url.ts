/**
 * Checks that a node URL answers before it is added to the cluster (as the original does): a TCP
 * connection to its host and port must succeed within a short timeout.
 */
import { connect } from "node:net";
import { NexusError } from "../errors/index.js";
import { parseNodeUrl } from "./node-id.js";

/** Resolves if something listens at url; rejects with UNREACHABLE saying what to check. */
export async function probeUrl(url: string, timeoutMs = 2000): Promise<void> {
  const u = parseNodeUrl(url);
  await new Promise<void>((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: u.port });
    const fail = (why: string): void => {
      sock.destroy();
      reject(
        new NexusError(
          "UNREACHABLE",
          `${u.url} does not answer (${why}); start the new node first, then add it. Nothing changed.`,
        ),
      );
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.end();
      resolve();
    });
    sock.once("error", (e) => {
      clearTimeout(timer);
      fail(e.message);
    });
  });
}
