/**
 * `repl <nexus_url> outcome <request-id>`: whether a save with that request id committed, and
 * with what result (NexusChecks.RequestOutcome: the store's request records, read after a read
 * barrier). `repl` prints a save's id when its outcome stays unknown, for exactly this.
 */
import type { NexusClient } from "../api/client.js";
import { EXIT } from "./exit-codes.js";
import type { Io } from "./serve.js";

const dec = new TextDecoder();

/**
 * Prints the outcome of `requestId`; exit 0 when it committed with a result, 1 when it committed
 * with the store's error or did not commit. `json`: one document for scripts.
 */
export async function printRequestOutcome(
  client: Pick<NexusClient, "requestOutcome">,
  requestId: string,
  json: boolean,
  io: Io,
): Promise<number> {
  const o = await client.requestOutcome(requestId);
  if (json) {
    const doc = !o.committed
      ? { requestId, committed: false, appliedIndex: o.appliedIndex }
      : {
          requestId,
          committed: true,
          index: o.index,
          ok: o.result.ok,
          ...(o.result.ok ? { result: dec.decode(o.result.data) } : { error: o.result.error }),
          appliedIndex: o.appliedIndex,
        };
    io.out(`${JSON.stringify(doc)}\n`);
  } else if (!o.committed) {
    io.out(
      `Request ${requestId} did not commit (no record up to index ${o.appliedIndex}): ` +
        "it was never applied, or its record outlived the request window\n",
    );
  } else if (o.result.ok) {
    io.out(
      `Request ${requestId} committed at index ${o.index}, ok (without quotes): ` +
        `'${dec.decode(o.result.data)}'\n`,
    );
  } else {
    io.out(
      `Request ${requestId} committed at index ${o.index} with an error from the store: ` +
        `${o.result.error}\n`,
    );
  }
  return o.committed && o.result.ok ? EXIT.OK : EXIT.FAILED;
}
