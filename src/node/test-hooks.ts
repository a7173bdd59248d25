/**
 * Hooks that let a test stop the runtime at a chosen point (e.g. crash a leader in the middle of
 * a joint change). They are injected through createReplicator's second argument, never read from
 * the environment on the Ready path; a program that is driven by tests (the node CLI) reads the
 * environment once at start with testHooksFromEnv().
 */

export interface TestHooks {
  /**
   * Milliseconds a leader freezes right after it appended the entry that leaves a joint
   * configuration, before it sends or persists it (0: no pause). Asked at each such entry.
   */
  pauseBeforeLeaveJointMs?(): number;
}

/** The environment variable of pauseBeforeLeaveJointMs for the node program. */
export const PAUSE_BEFORE_LEAVE_JOINT_ENV = "NEXUS_TEST_PAUSE_BEFORE_LEAVE_JOINT_MS";

/** The hooks a test asked for through the environment, read once (none when it asked none). */
export function testHooksFromEnv(env: Readonly<Record<string, string | undefined>>): TestHooks {
  const ms = Number(env[PAUSE_BEFORE_LEAVE_JOINT_ENV] ?? "0");
  return ms > 0 ? { pauseBeforeLeaveJointMs: () => ms } : {};
}
