/**
 * Checks that a node URL answers before it is added to the cluster (as the original does): a TCP
 * connection to its host and port must succeed within a short timeout. A node that is not running
 * yet can still be added without this check (AddMemberOptions.probe, `addNode --no-probe`).
 */
import { connect } from "node:net";
import { NexusError } from "../errors/index.js";
import { parseNodeUrl } from "./node-id.js";

/**
 * Resolves if something listens at url; rejects with MEMBERSHIP_REFUSED saying what to check
 * (the membership change it guards is then not made).
 */
export async function probeUrl(url: string, timeoutMs = 2000): Promise<void> {
  const u = parseNodeUrl(url);
  await new Promise<void>((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: u.port });
    const fail = (why: string): void => {
      sock.destroy();
      reject(
        new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} does not answer (${why}); start the new node first, then add it ` +
            "(or add it before it runs with --no-probe). Nothing changed",
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
