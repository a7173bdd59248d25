/**
 * Membership change arithmetic: from the current configuration and progress map to the next,
 * for simple changes (one voter at a time, Raft §6 / thesis §4.1) and joint consensus
 * (thesis §4.3). Pure: returns new values and never mutates its inputs. Every result is checked
 * against the configuration invariants.
 */
import type { ConfChangeSingle, ConfState, NodeId } from "../types.js";
import { NONE } from "../types.js";
import { JointConfig } from "../quorum/joint.js";
import { MajorityConfig } from "../quorum/majority.js";
import { Inflights } from "../tracker/inflights.js";
import { Progress } from "../tracker/progress.js";
import type { ProgressMap, TrackerConfig } from "../tracker/progress-tracker.js";

/** A configuration and progress map, as produced by a change. */
export interface ConfChangeResult {
  readonly config: TrackerConfig;
  readonly progress: ProgressMap;
}

/** A membership change that cannot be made; the message says why. */
export class ConfChangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfChangeError";
  }
}

interface Working {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
  progress: ProgressMap;
}

/** Computes configuration changes relative to a tracker's state. */
export class Changer {
  constructor(
    private readonly config: TrackerConfig,
    private readonly progress: ProgressMap,
    /** The leader's last log index: new members start probing from here. */
    private readonly lastIndex: number,
    private readonly maxInflight: number,
    private readonly maxInflightBytes: number,
  ) {}

  /**
   * Enters a joint configuration: the current voters become the outgoing half and the changes
   * are applied to the incoming half. Fails if already joint or if there are no voters.
   */
  enterJoint(autoLeave: boolean, ccs: readonly ConfChangeSingle[]): ConfChangeResult {
    const w = this.working();
    if (w.outgoing.size > 0) throw new ConfChangeError("configuration is already joint");
    if (w.incoming.size === 0) {
      throw new ConfChangeError("can't make a zero-voter configuration joint");
    }
    w.outgoing = new Set(w.incoming);
    this.apply(w, ccs);
    w.autoLeave = autoLeave;
    return this.finish(w);
  }

  /**
   * Leaves a joint configuration: the outgoing half is dropped, learnersNext become learners and
   * members that are in neither half nor learners lose their progress.
   */
  leaveJoint(): ConfChangeResult {
    const w = this.working();
    if (w.outgoing.size === 0) {
      throw new ConfChangeError("can't leave a non-joint configuration");
    }
    for (const id of w.learnersNext) {
      w.learners.add(id);
      const pr = w.progress.get(id);
      if (pr !== undefined) pr.isLearner = true;
    }
    w.learnersNext = new Set();
    for (const id of w.outgoing) {
      if (!w.incoming.has(id) && !w.learners.has(id)) w.progress.delete(id);
    }
    w.outgoing = new Set();
    w.autoLeave = false;
    return this.finish(w);
  }

  /**
   * Applies changes that alter the voter set by at most one node, without joint consensus.
   * Fails if the configuration is joint or if more than one voter would change.
   */
  simple(ccs: readonly ConfChangeSingle[]): ConfChangeResult {
    const w = this.working();
    if (w.outgoing.size > 0) {
      throw new ConfChangeError("can't apply simple config change in joint config");
    }
    const before = new Set(w.incoming);
    this.apply(w, ccs);
    let diff = 0;
    for (const id of before) if (!w.incoming.has(id)) diff++;
    for (const id of w.incoming) if (!before.has(id)) diff++;
    if (diff > 1) {
      throw new ConfChangeError("more than one voter changed without entering joint config");
    }
    return this.finish(w);
  }

  private working(): Working {
    const progress: ProgressMap = new Map();
    for (const [id, pr] of this.progress) progress.set(id, pr.clone());
    return {
      incoming: new Set(this.config.voters.incoming.ids),
      outgoing: new Set(this.config.voters.outgoing.ids),
      learners: new Set(this.config.learners),
      learnersNext: new Set(this.config.learnersNext),
      autoLeave: this.config.autoLeave,
      progress,
    };
  }

  private apply(w: Working, ccs: readonly ConfChangeSingle[]): void {
    for (const cc of ccs) {
      if (cc.nodeId === NONE) continue;
      switch (cc.type) {
        case "add-node":
          this.makeVoter(w, cc.nodeId);
          break;
        case "add-learner":
          this.makeLearner(w, cc.nodeId);
          break;
        case "remove-node":
          this.remove(w, cc.nodeId);
          break;
      }
    }
    if (w.incoming.size === 0) throw new ConfChangeError("removed all voters");
  }

  private initProgress(w: Working, id: NodeId, isLearner: boolean): void {
    if (isLearner) w.learners.add(id);
    else w.incoming.add(id);
    const pr = new Progress(
      Math.max(this.lastIndex, 1),
      new Inflights(this.maxInflight, this.maxInflightBytes),
      isLearner,
    );
    // A new member counts as active so that check-quorum does not depose the leader at once.
    pr.recentActive = true;
    w.progress.set(id, pr);
  }

  private makeVoter(w: Working, id: NodeId): void {
    const pr = w.progress.get(id);
    if (pr === undefined) {
      this.initProgress(w, id, false);
      return;
    }
    pr.isLearner = false;
    w.learners.delete(id);
    w.learnersNext.delete(id);
    w.incoming.add(id);
  }

  private makeLearner(w: Working, id: NodeId): void {
    const pr = w.progress.get(id);
    if (pr === undefined) {
      this.initProgress(w, id, true);
      return;
    }
    if (pr.isLearner) return;
    // Remove it as a voter first, keeping its progress.
    this.remove(w, id);
    w.progress.set(id, pr);
    if (w.outgoing.has(id)) {
      // Still a voter of the outgoing half: becomes a learner when the joint state is left.
      w.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      w.learners.add(id);
    }
  }

  private remove(w: Working, id: NodeId): void {
    if (!w.progress.has(id)) return;
    w.incoming.delete(id);
    w.learners.delete(id);
    w.learnersNext.delete(id);
    if (!w.outgoing.has(id)) w.progress.delete(id);
  }

  private finish(w: Working): ConfChangeResult {
    const config: TrackerConfig = {
      voters: new JointConfig(new MajorityConfig(w.incoming), new MajorityConfig(w.outgoing)),
      learners: w.learners,
      learnersNext: w.learnersNext,
      autoLeave: w.autoLeave,
    };
    checkInvariants(config, w.progress);
    return { config, progress: w.progress };
  }
}

/** Throws ConfChangeError if the configuration and progress map are inconsistent. */
export function checkInvariants(config: TrackerConfig, progress: ProgressMap): void {
  const ids = [
    ...config.voters.incoming.ids,
    ...config.voters.outgoing.ids,
    ...config.learners,
    ...config.learnersNext,
  ];
  for (const id of ids) {
    if (!progress.has(id)) throw new ConfChangeError(`no progress for ${id}`);
  }
  for (const id of config.learnersNext) {
    if (!config.voters.outgoing.has(id)) {
      throw new ConfChangeError(`${id} is in learnersNext but not in the outgoing voters`);
    }
    if (progress.get(id)!.isLearner) {
      throw new ConfChangeError(`${id} is in learnersNext but is already marked as a learner`);
    }
  }
  for (const id of config.learners) {
    if (config.voters.outgoing.has(id) || config.voters.incoming.has(id)) {
      throw new ConfChangeError(`${id} is both a learner and a voter`);
    }
    if (!progress.get(id)!.isLearner) {
      throw new ConfChangeError(`${id} is a learner but its progress is not marked as such`);
    }
  }
  if (!config.voters.isJoint) {
    if (config.learnersNext.size > 0) {
      throw new ConfChangeError("learnersNext must be empty when not joint");
    }
    if (config.autoLeave) throw new ConfChangeError("autoLeave must be false when not joint");
  }
}

/**
 * Builds the configuration and progress map described by a ConfState (on restart or after a
 * snapshot). Every member starts probing at `lastIndex`.
 */
export function restoreConfState(
  cs: ConfState,
  lastIndex: number,
  maxInflight: number,
  maxInflightBytes: number,
): ConfChangeResult {
  const progress: ProgressMap = new Map();
  const mk = (isLearner: boolean): Progress => {
    const pr = new Progress(
      Math.max(lastIndex, 1),
      new Inflights(maxInflight, maxInflightBytes),
      isLearner,
    );
    pr.recentActive = true;
    return pr;
  };
  for (const id of [...cs.voters, ...cs.votersOutgoing, ...cs.learnersNext]) {
    if (!progress.has(id)) progress.set(id, mk(false));
  }
  for (const id of cs.learners) progress.set(id, mk(true));
  const config: TrackerConfig = {
    voters: new JointConfig(new MajorityConfig(cs.voters), new MajorityConfig(cs.votersOutgoing)),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
  checkInvariants(config, progress);
  return { config, progress };
}
