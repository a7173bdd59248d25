/**
 * Hooks that let a test stop the runtime at a chosen point (e.g. crash a leader in the middle of
 * a joint change). They are injected through createReplicator's second argument, never read from
 * the environment on the Ready path; a program that is driven by tests (the node CLI) reads the
 * environment once at start with testHooksFromEnv().
 */
import { setTimeout as sleep } from "node:timers/promises";
import { decodeConfChange } from "../raft/confchange/codec.js";
import type { Entry } from "../raft/types.js";
import type { NexusLogger } from "./options.js";

export interface TestHooks {
  /**
   * Milliseconds a leader freezes right after it appended the entry that leaves a joint
   * configuration, before it sends or persists it (0: no pause). Asked at each such entry.
   */
  pauseBeforeLeaveJointMs?(): number;
  /**
   * Milliseconds a leader waits before each 16 KiB piece of a snapshot it sends (0: none), so
   * that a test can watch a transfer in flight.
   */
  slowSnapshotSendMs?(): number;
}

/** The environment variable of pauseBeforeLeaveJointMs for the node program. */
export const PAUSE_BEFORE_LEAVE_JOINT_ENV = "NEXUS_TEST_PAUSE_BEFORE_LEAVE_JOINT_MS";

/** The environment variable of slowSnapshotSendMs for the node program. */
export const SLOW_SNAPSHOT_SEND_ENV = "NEXUS_TEST_SLOW_SNAPSHOT_SEND_MS";

/** The hooks a test asked for through the environment, read once (none when it asked none). */
export function testHooksFromEnv(env: Readonly<Record<string, string | undefined>>): TestHooks {
  const ms = Number(env[PAUSE_BEFORE_LEAVE_JOINT_ENV] ?? "0");
  const slow = Number(env[SLOW_SNAPSHOT_SEND_ENV] ?? "0");
  return {
    ...(ms > 0 ? { pauseBeforeLeaveJointMs: () => ms } : {}),
    ...(slow > 0 ? { slowSnapshotSendMs: () => slow } : {}),
  };
}

/** `body` in pieces of at most 16 KiB, each after `delayMs` (a test's slow snapshot stream). */
export async function* slowed(
  body: AsyncIterable<Uint8Array>,
  delayMs: number,
): AsyncIterable<Uint8Array> {
  const piece = 16 * 1024;
  for await (const chunk of body) {
    for (let at = 0; at < chunk.byteLength; at += piece) {
      await new Promise((r) => setTimeout(r, delayMs));
      yield chunk.subarray(at, Math.min(chunk.byteLength, at + piece));
    }
  }
}

/** Whether entries hold the (empty) conf change that leaves a joint configuration. */
export function leavesJoint(entries: readonly Entry[]): boolean {
  return entries.some(
    (e) => e.type === "conf-change" && decodeConfChange(e.data).changes.length === 0,
  );
}

/**
 * The leave-joint pause, for crashing a leader in the middle of a joint change: with
 * pauseBeforeLeaveJointMs above 0, a leader that has just appended the entry leaving a joint
 * configuration (leavesJoint) freezes for that long before it sends or persists it (it logs "test
 * hook: paused before leaving the joint configuration"), so a test can kill it there. Resolves
 * whether it paused; the pause ends early when `stopped` aborts.
 */
export async function pauseBeforeLeaveJoint(
  hooks: TestHooks | undefined,
  isLeader: boolean,
  logger: NexusLogger,
  stopped: AbortSignal,
): Promise<boolean> {
  const ms = hooks?.pauseBeforeLeaveJointMs?.() ?? 0;
  if (!(ms > 0) || !isLeader) return false;
  logger.warn({ ms }, "test hook: paused before leaving the joint configuration");
  await sleep(ms, undefined, { signal: stopped }).catch(() => undefined);
  return true;
}
