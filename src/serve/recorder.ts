/**
 * Recording served completions as training steps: what the server hands a recorder for each
 * completion of a rollout (`x-stepwise-rollout`, `x-stepwise-group` headers) and for each reward
 * (`POST /v1/rewards`), and `MemoryRecorder`, a recorder that keeps them in memory (the `served`
 * training family reads rollouts from it; `stepwise serve --record` uses the store's `ServedLog`,
 * which has the same shape).
 */
import type { ChatMessage, ChatToolCall } from '../agents/types.ts';

/** One served completion, as a step of its rollout. */
export interface ServedStep {
  /** The rollout (`x-stepwise-rollout`) and its group (`x-stepwise-group`; default: the rollout). */
  rollout: string;
  group: string;
  /** Position in the rollout, from 0 (the server numbers a rollout's completions in arrival order). */
  stepIndex: number;
  /** The model id the request named. */
  model: string;
  /** The state this decision was made on: `x-stepwise-anchor`, else the last non-assistant message's text. */
  anchor: string;
  /** The messages as the client sent them (tool calls in the project's `ChatToolCall` shape). */
  messages: ChatMessage[];
  /** The chat-template text of the prompt (the template's decoding of `promptTokens`). */
  promptText: string;
  /** The exact prompt ids the policy continued (recorded ids for the assistant messages it matched). */
  promptTokens: number[];
  /** The reply as the model wrote it (a forced tool-call opening included). */
  responseText: string;
  /** The sampled ids (the end token included when generated) and their behaviour log-probs. */
  responseTokens: number[];
  responseLogprobs: number[];
  /** Tool calls parsed from the reply (what the client received as `tool_calls`). */
  toolCalls: ChatToolCall[];
  finishReason: 'stop' | 'length' | 'tool_calls';
  /** Assistant messages of the request that matched no reply of this server and were re-encoded. */
  reencoded: number;
}

/** A rollout as a recorder knows it. */
export interface RecordedRollout {
  rollout: string;
  group: string;
  steps: number;
  /** Undefined until `POST /v1/rewards`. */
  reward: number | undefined;
}

/** A rollout's outcome, as `POST /v1/rewards` gives it (already checked against the rollout). */
export interface ServedReward {
  rollout: string;
  reward: number;
  /** Whether the rollout succeeded; default: reward > 0. */
  won?: boolean;
  /** One reward per recorded step, in step order (GiGPO's step rewards; default: none). */
  stepRewards?: number[];
}

/**
 * Where a server records. The server checks requests against `rollout` before calling the writes
 * (unknown rollouts, finished rollouts, step-reward counts), so the writes do not validate again.
 */
export interface ServeRecorder {
  rollout(key: string): RecordedRollout | undefined;
  addStep(step: ServedStep): void;
  setReward(reward: ServedReward): void;
}

/** A rollout kept in memory, with its steps. */
export interface MemoryRollout extends RecordedRollout {
  stepList: ServedStep[];
  won: boolean | undefined;
  stepRewards: number[] | undefined;
}

/** A recorder in memory; `waitReward` lets the caller wait for a rollout's outcome. */
export class MemoryRecorder implements ServeRecorder {
  readonly rollouts = new Map<string, MemoryRollout>();
  private readonly waiting = new Map<string, (() => void)[]>();

  rollout(key: string): MemoryRollout | undefined {
    return this.rollouts.get(key);
  }

  addStep(step: ServedStep): void {
    let r = this.rollouts.get(step.rollout);
    if (!r) {
      r = {
        rollout: step.rollout,
        group: step.group,
        steps: 0,
        reward: undefined,
        won: undefined,
        stepRewards: undefined,
        stepList: [],
      };
      this.rollouts.set(step.rollout, r);
    }
    r.stepList.push(step);
    r.steps = r.stepList.length;
  }

  setReward(reward: ServedReward): void {
    const r = this.rollouts.get(reward.rollout);
    if (!r) throw new Error(`MemoryRecorder: no rollout '${reward.rollout}'`);
    r.reward = reward.reward;
    r.won = reward.won ?? reward.reward > 0;
    r.stepRewards = reward.stepRewards;
    for (const wake of this.waiting.get(reward.rollout) ?? []) wake();
    this.waiting.delete(reward.rollout);
  }

  /** Resolves once the rollout has its reward (at once when it has). */
  waitReward(key: string): Promise<void> {
    if (this.rollouts.get(key)?.reward !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.set(key, [...(this.waiting.get(key) ?? []), resolve]);
    });
  }

  /** Forgets a rollout (after it was trained on). */
  delete(key: string): void {
    this.rollouts.delete(key);
  }
}
