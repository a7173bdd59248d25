/**
 * The runtime turns the core's refusals into Nexus codes by the core's code (src/node/raft-errors.ts),
 * never by the core's message.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RaftError } from "../../src/raft/raft.js";
import type { RaftErrorCode } from "../../src/raft/raft.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import { isNexusError } from "../../src/errors/index.js";
import { nexusCodeOfRaft, nexusErrorOfRaft } from "../../src/node/raft-errors.js";
import { walCluster } from "./helpers.js";

const enc = new TextEncoder();

describe("core refusals as Nexus errors", () => {
  for (const c of [
    { name: "no-leader is NO_LEADER", core: "no-leader", want: "NO_LEADER" },
    {
      name: "proposal-dropped is PROPOSAL_DROPPED",
      core: "proposal-dropped",
      want: "PROPOSAL_DROPPED",
    },
    {
      name: "conf-change-refused is MEMBERSHIP_REFUSED",
      core: "conf-change-refused",
      want: "MEMBERSHIP_REFUSED",
    },
    {
      name: "step-local-msg is INTERNAL (a runtime bug)",
      core: "step-local-msg",
      want: "INTERNAL",
    },
    {
      name: "step-peer-not-found is INTERNAL (a runtime bug)",
      core: "step-peer-not-found",
      want: "INTERNAL",
    },
  ] satisfies { name: string; core: RaftErrorCode; want: NexusErrorCode }[]) {
    it(c.name, () => {
      assert.equal(nexusCodeOfRaft(c.core), c.want);
      // The message is irrelevant to the code: one that says the opposite changes nothing.
      const misleading = c.core === "no-leader" ? "proposal dropped" : "no leader is known";
      const e = nexusErrorOfRaft(new RaftError(c.core, misleading));
      assert.equal(e.code, c.want);
    });
  }

  it("keeps the core's message after the caller's context, and the RaftError as cause", () => {
    const cause = new RaftError("proposal-dropped", "too many uncommitted entries; retry later");
    const e = nexusErrorOfRaft(cause, "the write was not accepted");
    assert.equal(
      e.message,
      "the write was not accepted: too many uncommitted entries; retry later",
    );
    assert.equal(e.cause, cause);
    assert.equal(nexusErrorOfRaft(cause).message, cause.message);
  });

  it("a write and a membership change on a node that knows no leader are refused with NO_LEADER", async () => {
    const c = await walCluster();
    try {
      // Every node cut off before any election: none can learn of a leader.
      for (const id of c.ids) c.net.down.add(id);
      const a = c.nodes.get("a")!;
      await assert.rejects(a.propose(enc.encode("set x 1")), (e: unknown) => {
        assert.ok(isNexusError(e, "NO_LEADER"), String(e));
        return true;
      });
      await assert.rejects(
        a.changeMember("remove-node", "c", "http://127.0.0.1:9102"),
        (e: unknown) => {
          assert.ok(isNexusError(e, "NO_LEADER"), String(e));
          return true;
        },
      );
      assert.equal(c.stores.get("a")!.data.size, 0);
    } finally {
      await c.stopAll();
    }
  });
});
