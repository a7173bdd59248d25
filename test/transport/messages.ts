/**
 * Messages the transport tests send: a snapshot message as a leader's transport hands it over
 * (metadata and the snapshot's handle; the body comes from `openSnapshot`).
 */
import { createMessage } from "../../src/raft/types.js";
import type { Message } from "../../src/raft/types.js";

/** A snapshot message from `from` to `to` at `index` (term 1, voters a and b). */
export function snapMessage(from: string, to: string, index: number): Message {
  return createMessage({
    type: "snap",
    from,
    to,
    term: 1,
    snapshot: {
      metadata: {
        index,
        term: 1,
        confState: {
          voters: ["a", "b"],
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
      data: new TextEncoder().encode("handle"),
    },
  });
}
