/**
 * Served rollouts in the store: what `stepwise serve --record <db>` writes (each completion of a
 * rollout as a step, then the rollout's reward) and what a run of the `served` family reads back
 * to train on. A rollout counts as trained by a run once one of the run's stored iterations holds
 * a trajectory with the rollout's keys (group key, trajectory key = rollout key): the iteration's
 * own transaction marks it, so a run killed mid-iteration trains on the same rollouts again.
 *
 * `ServedLog` has the shape of src/serve's `ServeRecorder` (the store imports nothing of serve).
 */
import type Database from 'better-sqlite3';
import type { Json } from '../util/json.ts';
import type { TrajectoryStore } from './api.ts';
import { decodeLogprobs, decodeTokens, encodeLogprobs, encodeTokens } from './blobs.ts';
import { SqliteStore } from './store.ts';

/** A served completion as written (the fields of src/serve's `ServedStep`). */
export interface ServedStepInput {
  rollout: string;
  group: string;
  stepIndex: number;
  model: string;
  anchor: string;
  messages: Json[] | readonly object[];
  promptText: string;
  promptTokens: readonly number[];
  responseText: string;
  responseTokens: readonly number[];
  responseLogprobs: readonly number[];
  toolCalls: readonly object[];
  finishReason: string;
  reencoded: number;
}

/** A served step as read back. */
export interface ServedStepRow
  extends Omit<
    ServedStepInput,
    'messages' | 'toolCalls' | 'promptTokens' | 'responseTokens' | 'responseLogprobs'
  > {
  messages: Json[];
  toolCalls: Json[];
  promptTokens: number[];
  responseTokens: number[];
  responseLogprobs: number[];
}

/** A rollout as the log knows it (the shape of src/serve's `RecordedRollout`). */
export interface ServedRolloutInfo {
  rollout: string;
  group: string;
  steps: number;
  reward: number | undefined;
}

/** A rewarded rollout with its steps, ready to train on. */
export interface ServedRolloutRow {
  rollout: string;
  group: string;
  reward: number;
  won: boolean;
  stepRewards: number[] | undefined;
  createdAt: number;
  steps: ServedStepRow[];
}

export class ServedLog {
  private readonly db: Database.Database;

  constructor(store: TrajectoryStore) {
    if (store.readonly) throw new Error(`ServedLog: store ${store.path} is open read-only; recording writes`);
    // Served rollouts are written with SQLite statements; the PostgreSQL store has the same
    // tables (migration 3) but no ServedLog of its own yet (docs/ARCHITECTURE.md).
    if (!(store instanceof SqliteStore)) {
      throw new Error(
        `ServedLog: store ${store.path} is not a SQLite file; recording served rollouts (serve --record, agent 'served') needs a SQLite store`,
      );
    }
    this.db = store.db;
  }

  rollout(key: string): ServedRolloutInfo | undefined {
    const row = this.db
      .prepare(
        `SELECT r.group_key AS g, r.reward AS reward, (SELECT count(*) FROM served_steps s WHERE s.rollout_id = r.id) AS n
         FROM served_rollouts r WHERE r.rollout_key = ?`,
      )
      .get(key) as { g: string; reward: number | null; n: number } | undefined;
    if (!row) return undefined;
    return { rollout: key, group: row.g, steps: row.n, reward: row.reward ?? undefined };
  }

  /** One transaction: the rollout's row when it is new, then the step. */
  addStep(step: ServedStepInput): void {
    const now = Date.now();
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT INTO served_rollouts (rollout_key, group_key, created_at) VALUES (?, ?, ?) ON CONFLICT (rollout_key) DO NOTHING',
        )
        .run(step.rollout, step.group, now);
      const id = this.db
        .prepare('SELECT id FROM served_rollouts WHERE rollout_key = ?')
        .pluck()
        .get(step.rollout);
      this.db
        .prepare(
          `INSERT INTO served_steps (rollout_id, step_index, created_at, model, finish_reason, reencoded, anchor,
             messages, tool_calls, prompt_text, prompt_tokens, response_text, response_tokens, response_logprobs)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id,
          step.stepIndex,
          now,
          step.model,
          step.finishReason,
          step.reencoded,
          step.anchor,
          JSON.stringify(step.messages),
          JSON.stringify(step.toolCalls),
          step.promptText,
          encodeTokens(step.promptTokens),
          step.responseText,
          encodeTokens(step.responseTokens),
          encodeLogprobs(step.responseLogprobs),
        );
    })();
  }

  setReward(r: { rollout: string; reward: number; won?: boolean; stepRewards?: number[] }): void {
    const changed = this.db
      .prepare(
        'UPDATE served_rollouts SET reward = ?, won = ?, step_rewards = ?, rewarded_at = ? WHERE rollout_key = ? AND reward IS NULL',
      )
      .run(
        r.reward,
        (r.won ?? r.reward > 0) ? 1 : 0,
        r.stepRewards ? JSON.stringify(r.stepRewards) : null,
        Date.now(),
        r.rollout,
      ).changes;
    if (changed !== 1) throw new Error(`ServedLog: rollout '${r.rollout}' is unknown or already rewarded`);
  }

  /**
   * Rewarded rollouts, oldest first, with their steps. `untrainedBy`: only those no stored
   * iteration of that run holds yet.
   */
  rewarded(options: { untrainedBy?: string } = {}): ServedRolloutRow[] {
    const rows = this.db
      .prepare(
        `SELECT r.id, r.rollout_key, r.group_key, r.reward, r.won, r.step_rewards, r.created_at FROM served_rollouts r
         WHERE r.reward IS NOT NULL AND (? IS NULL OR NOT EXISTS (
           SELECT 1 FROM trajectories t JOIN groups g ON t.group_id = g.id JOIN iterations i ON g.iteration_id = i.id
           WHERE i.run_id = ? AND g.group_key = r.group_key AND t.trajectory_key = r.rollout_key))
         ORDER BY r.id`,
      )
      .all(options.untrainedBy ?? null, options.untrainedBy ?? null) as {
      id: number;
      rollout_key: string;
      group_key: string;
      reward: number;
      won: number;
      step_rewards: string | null;
      created_at: number;
    }[];
    const steps = this.db.prepare('SELECT * FROM served_steps WHERE rollout_id = ? ORDER BY step_index');
    return rows.map((r) => ({
      rollout: r.rollout_key,
      group: r.group_key,
      reward: r.reward,
      won: r.won === 1,
      stepRewards: r.step_rewards ? (JSON.parse(r.step_rewards) as number[]) : undefined,
      createdAt: r.created_at,
      steps: (steps.all(r.id) as Record<string, unknown>[]).map(stepRow(r.rollout_key, r.group_key)),
    }));
  }
}

const stepRow =
  (rollout: string, group: string) =>
  (s: Record<string, unknown>): ServedStepRow => ({
    rollout,
    group,
    stepIndex: s.step_index as number,
    model: s.model as string,
    anchor: s.anchor as string,
    messages: JSON.parse(s.messages as string) as Json[],
    toolCalls: JSON.parse(s.tool_calls as string) as Json[],
    promptText: s.prompt_text as string,
    promptTokens: [...decodeTokens(s.prompt_tokens as Uint8Array)],
    responseText: s.response_text as string,
    responseTokens: [...decodeTokens(s.response_tokens as Uint8Array)],
    responseLogprobs: [...decodeLogprobs(s.response_logprobs as Uint8Array)],
    finishReason: s.finish_reason as string,
    reencoded: s.reencoded as number,
  });
