/**
 * Every type a public function returns or takes is exported from the package entry
 * (src/index.ts). This file type-checks only if they are (`npm run typecheck` covers test/); the
 * runtime part checks the values.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as nexus from "../../src/index.js";
import type {
  AddMemberOptions,
  CallOptions,
  CheckConsistencyOptions,
  ConsistencyCheckResult,
  DivergenceEvent,
  LeaderChange,
  ListMembersOptions,
  LoadOptions,
  MemberConsistency,
  MemberInfo,
  MemberList,
  MembersWithProgress,
  MembershipChange,
  MembershipChanges,
  NodeId,
  PromoteLearnerOptions,
  Replicator,
  ReplicatorEvents,
  ReplicatorStatus,
  SaveOptions,
} from "../../src/index.js";

/** Each public method's return and parameter types, named by the exported types. */
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [
  Exact<ReturnType<Replicator["status"]>, ReplicatorStatus>,
  Exact<ReturnType<Replicator["listMembers"]>, MemberList>,
  Exact<ReturnType<Replicator["listMembersWithProgress"]>, Promise<MembersWithProgress>>,
  Exact<ReturnType<Replicator["checkConsistency"]>, Promise<ConsistencyCheckResult>>,
  Exact<ReturnType<Replicator["transferLeadership"]>, Promise<NodeId>>,
  Exact<Parameters<Replicator["save"]>[1], SaveOptions | undefined>,
  Exact<Parameters<Replicator["load"]>[1], LoadOptions | undefined>,
  Exact<Parameters<Replicator["addMember"]>[1], AddMemberOptions | undefined>,
  Exact<Parameters<Replicator["removeMember"]>[1], CallOptions | undefined>,
  Exact<Parameters<Replicator["promoteLearner"]>[1], PromoteLearnerOptions | undefined>,
  Exact<Parameters<Replicator["changeMembers"]>[0], MembershipChanges>,
  Exact<Parameters<Replicator["checkConsistency"]>[0], CheckConsistencyOptions | undefined>,
  Exact<Parameters<Replicator["listMembersWithProgress"]>[0], ListMembersOptions | undefined>,
  Exact<ConsistencyCheckResult["members"][number], MemberConsistency>,
  Exact<MemberList["members"][number], MemberInfo>,
  Exact<ReplicatorEvents["leader-change"], LeaderChange>,
  Exact<ReplicatorEvents["membership-change"], MembershipChange>,
  Exact<ReplicatorEvents["divergence"], DivergenceEvent>,
] = [
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
  true,
];

describe("the package entry", () => {
  it("names every public type (type-checked) and exports the functions and error classes", () => {
    assert.ok(checks.every((c) => c));
    for (const name of [
      "createReplicator",
      "nodeIdOf",
      "MemoryStore",
      "SqliteStore",
      "pendingDigest",
      "NexusError",
      "isNexusError",
      "NotLeaderError",
      "TimeoutError",
      "UnknownOutcomeError",
      "StoppedError",
      "StoreError",
      "StoreUnavailableError",
    ]) {
      assert.equal(typeof (nexus as Record<string, unknown>)[name], "function", name);
    }
  });
});
