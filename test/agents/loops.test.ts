import { afterAll, describe, expect, it, vi } from 'vitest';
import { PolicyChatModel } from '../../src/agents/chat/index.ts';
import {
  agentEnvMaker,
  INVALID_ACTION_NOTE,
  rollout,
  runHousehold,
  runSearch,
} from '../../src/agents/loops/index.ts';
import { actionFromToolCalls } from '../../src/agents/loops/tool-calls.ts';
import { envAction } from '../../src/agents/loops/tool-loop.ts';
import {
  householdMessages,
  householdPrompt,
  parseHouseholdResponse,
} from '../../src/agents/prompts/household.ts';
import {
  EncyclopediaQA,
  HouseholdEnv,
  HouseholdExpert,
  HouseholdGenerator,
  Policy,
  SearchExpert,
  type SearchTask,
} from '../../src/index.ts';
import { domainTokenizer, expectPromptsGrow, replies, ScriptedModel, tinyPolicy } from './loops-helpers.ts';

const policies: Policy[] = [];
afterAll(async () => {
  await Promise.all(policies.map((p) => p.dispose()));
});

const think = (action: string) => `<think>I will ${action}.</think><action>${action}</action>`;

/**
 * A fake clock for the loops' time limit (Date and timers): time passes only when the test says so,
 * so what happens at the limit does not depend on how fast this machine runs the steps before it.
 */
function fakeClock() {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  const started = new Map<number, () => void>();
  const reached = new Map<number, Promise<void>>();
  const signal = (call: number) => {
    if (!reached.has(call)) reached.set(call, new Promise((r) => started.set(call, r)));
    return reached.get(call)!;
  };
  return {
    /** A model call that takes `ms` on the fake clock; the test learns that it has begun. */
    slowCall(call: number, ms: number): Promise<void> {
      void signal(call);
      started.get(call)!();
      return new Promise((r) => setTimeout(r, ms));
    },
    /** Resolves once model call `call` has begun (the loop's timer for it is set by then). */
    reached: signal,
    /** Moves the clock on, firing the timers due, then lets the promises they settle run. */
    async advance(ms: number): Promise<void> {
      await vi.advanceTimersByTimeAsync(ms);
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    },
    restore: () => vi.useRealTimers(),
  };
}

/** A promise with a flag saying whether it has settled yet. */
function settles<T>(promise: Promise<T>): { promise: Promise<T>; settled(): boolean } {
  let done = false;
  const p = promise.finally(() => {
    done = true;
  });
  return { promise: p, settled: () => done };
}

describe('household prompt and response format', () => {
  it('a response needs <think>...</think> and then <action>...</action>', () => {
    expect(parseHouseholdResponse('<think>hm</think><action>Go To  Cabinet 1 </action>')).toEqual({
      valid: true,
      action: 'go to cabinet 1',
    });
    expect(
      parseHouseholdResponse('<think>a</think> so <action>look</action> <action>inventory</action>'),
    ).toEqual({ valid: true, action: 'look' });
    for (const bad of [
      '<action>look</action>',
      'go to cabinet 1',
      '<think>x</think>look',
      '<action>look</action><think>x</think>',
      '<think>x</think><action>  </action>',
      '<think>x<action>look</action>',
    ]) {
      expect(parseHouseholdResponse(bad).valid, bad).toBe(false);
    }
  });

  it('shows the task, the last H pairs numbered by step, the observation and the admissible commands', () => {
    const history = [
      { observation: 'obs three', action: 'go to shelf 1' },
      { observation: 'obs four', action: INVALID_ACTION_NOTE },
    ];
    const [m] = householdPrompt({
      task: 'put a mug on shelf.',
      stepCount: 4,
      history,
      observation: 'obs five',
      admissible: ['look', 'go to shelf 1'],
    });
    expect(m!.role).toBe('user');
    const text = m!.content;
    expect(text).toContain('Your task is to: put a mug on shelf.');
    expect(text).toContain("[Observation 3: 'obs three', Action 3: 'go to shelf 1']");
    expect(text).toContain(`[Observation 4: 'obs four', Action 4: '${INVALID_ACTION_NOTE}']`);
    expect(text).toContain('You are now at step 5; your current observation is: obs five');
    expect(text).toContain("['look', 'go to shelf 1']");
    expect(text).toMatch(/<think> <\/think>[\s\S]*<action> <\/action>/);
  });

  it('at the first step shows no history (the observation states the task)', () => {
    const [m] = householdPrompt({ task: 't', stepCount: 0, history: [], observation: 'o', admissible: [] });
    expect(m!.content).not.toContain('Observation 1');
    expect(m!.content).toContain('Your current observation is: o');
  });
});

describe('household growing prompt format', () => {
  const state = {
    task: 'put a mug in shelf.',
    past: [
      {
        observation: 'obs one',
        action: 'look',
        reply: { text: 'r1', tokenIds: [300, 301] },
        admissible: ['look'],
      },
      {
        observation: 'obs two',
        action: INVALID_ACTION_NOTE,
        reply: { text: 'junk' },
        admissible: ['look', 'go to shelf 1'],
      },
    ],
    observation: 'obs two',
    admissible: ['look', 'go to shelf 1'],
  };

  it('shows the first observation once, then each reply (its sampled ids) and what came back', () => {
    const messages = householdMessages({ format: 'growing', history: 1, ...state });
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    expect(messages[0]!.content).toContain('Your current observation is: obs one');
    expect(messages[0]!.content).toContain("['look']");
    expect(messages[1]).toMatchObject({ content: 'r1', tokenIds: [300, 301] });
    expect(messages[2]!.content).toContain('obs two');
    expect(messages[3]).toEqual({ role: 'assistant', content: 'junk' });
    expect(messages[4]!.content).toContain(`Your response was invalid (${INVALID_ACTION_NOTE})`);
    // The prompt one step earlier is a prefix of this one, message for message.
    const earlier = householdMessages({
      format: 'growing',
      history: 1,
      ...state,
      past: state.past.slice(0, 1),
      observation: 'obs two',
      admissible: ['look', 'go to shelf 1'],
    });
    expect(messages.slice(0, earlier.length)).toEqual(earlier);
    // 'windowed' is the references' single message.
    expect(householdMessages({ format: 'windowed', history: 1, ...state })).toHaveLength(1);
  });

  it('names what a growing prompt lacks', () => {
    const past = [{ observation: 'o', action: 'look', admissible: ['look'] }];
    expect(() => householdMessages({ ...state, format: 'growing', history: 1, past })).toThrow(/turn.reply/);
    const noList = [{ observation: 'o', action: 'look', reply: { text: 'r' } }];
    expect(() => householdMessages({ ...state, format: 'growing', history: 1, past: noList })).toThrow(
      /turn.admissible/,
    );
  });
});

describe('tool-loop actions', () => {
  it('maps tags to env actions, the first tag winning; untagged text passes through', () => {
    const tags = { code: 'python', python: 'python' };
    expect(envAction('x <code> print(1) </code> <answer>2</answer>', tags)).toBe('<python>print(1)</python>');
    expect(envAction('<answer> 7 </answer><code>1</code>', tags)).toBe('<answer>7</answer>');
    expect(envAction('<code>unclosed', tags)).toBe('<code>unclosed');
    expect(envAction('<search>who</search>', { search: 'search' })).toBe('<search>who</search>');
  });

  it('maps tool calls to env actions and explains the ones it cannot follow', () => {
    const tags = { web_search: { tag: 'search', field: 'query' } };
    const call = (name: string, args: string) => [{ id: 'c1', name, arguments: args }];
    expect(actionFromToolCalls(call('web_search', '{"query": " x y "}'), tags)).toEqual({
      callId: 'c1',
      action: '<search>x y</search>',
    });
    expect(actionFromToolCalls(call('python', '{}'), tags)?.error).toMatch(/Tool "python" not found/);
    expect(actionFromToolCalls(call('web_search', '{bad'), tags)?.error).toMatch(/not valid JSON/);
    expect(actionFromToolCalls(call('web_search', '{"q": 1}'), tags)?.error).toMatch(/"query"/);
    expect(actionFromToolCalls([], tags)).toBeUndefined();
  });
});

describe('household loop', () => {
  const task = new HouseholdGenerator().generate('train', 3);
  const expert = new HouseholdExpert().demonstrate(task).actions;

  it('plays an expert to a win; invalid replies reach no env, change nothing and are marked invalid', async () => {
    // Expert actions, with a malformed reply before the first and the third one.
    const script = [
      'go to the fridge',
      think(expert[0]!),
      think(expert[1]!),
      '<action>look</action>',
      ...expert.slice(2).map(think),
    ];
    const model = replies(...script);
    const env = new HouseholdEnv();
    const t = await runHousehold(
      env as never,
      model,
      { task, seed: task.seed },
      { promptFormat: 'windowed' },
    );
    expect(t.outcome).toBe('won');
    expect(t.won).toBe(true);
    expect(t.steps.length).toBe(expert.length + 2);
    expect(env.stepCount).toBe(expert.length); // the env saw the valid actions only
    expect(t.steps.map((s) => s.valid)).toEqual(script.map((s) => parseHouseholdResponse(s).valid));
    const [bad0, , , bad3] = t.steps;
    expect(bad0!.action).toBeUndefined();
    expect(bad0!.extras.invalidReason).toMatch(/think/);
    expect(bad0!.envReward).toBe(0);
    // Nothing happened: the next decision is made on the same anchor.
    expect(t.steps[1]!.anchor).toBe(bad0!.anchor);
    expect(bad3!.anchor).toBe(t.steps[2]!.observation);
    expect(t.steps[4]!.anchor).toBe(bad3!.anchor);
    expect(t.steps.at(-1)!.envReward).toBe(10);
    expect(t.episodeReturn).toBe(10);
    expect(t.steps.map((s) => s.done)).toEqual(t.steps.map((_, i) => i === t.steps.length - 1));
    // H = 2: the prompt of step 4 shows steps 2 and 3 (the invalid one with its note), not step 1.
    const prompt4 = model.calls[4]!.messages[0]!.content;
    expect(prompt4).toContain(`Action 3: '${expert[1]}'`);
    expect(prompt4).toContain(`Action 4: '${INVALID_ACTION_NOTE}'`);
    expect(prompt4).not.toContain('Action 2:');
    expect(prompt4).toContain('You are now at step 5');
  });

  it('a command that is not admissible reaches the env ("Nothing happens."), is invalid and is shown as taken', async () => {
    const [first, ...rest] = expert;
    // "go to" where the agent already stands, then the expert again.
    const script = [think(first!), think(first!), ...rest.map(think)];
    const model = replies(...script);
    const env = new HouseholdEnv();
    const t = await runHousehold(
      env as never,
      model,
      { task, seed: task.seed },
      { promptFormat: 'windowed', history: 1 },
    );
    expect(t.won).toBe(true);
    expect(env.stepCount).toBe(expert.length + 1); // the env received the no-op
    const noop = t.steps[1]!;
    expect(noop).toMatchObject({
      action: first,
      observation: 'Nothing happens.',
      valid: false,
      envReward: 0,
    });
    expect(noop.extras.invalidReason).toMatch(/not an admissible command/);
    expect(t.steps.filter((s) => !s.valid)).toHaveLength(1);
    expect(model.calls[2]!.messages[0]!.content).toContain(`Action 2: '${first}'`);
  });

  it("actions 'admissible' asks the model for one of the admissible commands of each state", async () => {
    const model = replies(...expert.map(think));
    const t = await runHousehold(
      new HouseholdEnv() as never,
      model,
      { task, seed: task.seed },
      { promptFormat: 'windowed', actions: 'admissible' },
    );
    expect(t.won).toBe(true);
    // The same states, replayed: the admissible commands before each expert action.
    const replay = new HouseholdEnv();
    replay.resetSync(task.seed, task);
    const shown = expert.map((action) => {
      const list = replay.admissibleActions();
      replay.stepSync(action);
      return list;
    });
    expect(model.calls.map((c) => c.options.choices)).toEqual(
      shown
        .slice(0, model.calls.length)
        .map((options) => ({ open: '<action>', close: '</action>', options })),
    );
    // 'free' (the default) asks for no constraint.
    const free = replies(...expert.map(think));
    await runHousehold(
      new HouseholdEnv() as never,
      free,
      { task, seed: task.seed },
      { promptFormat: 'windowed' },
    );
    expect(free.calls.every((c) => c.options.choices === undefined)).toBe(true);
  });

  it('stops at the step limit, counting invalid steps', async () => {
    const t = await runHousehold(
      new HouseholdEnv() as never,
      replies('nonsense'),
      { task, seed: 1 },
      { maxSteps: 3 },
    );
    expect(t.outcome).toBe('turn_limit');
    expect(t.steps.map((s) => [s.valid, s.done])).toEqual([
      [false, false],
      [false, false],
      [false, true],
    ]);
  });

  it('stops at the time limit, keeping the steps finished before it', async () => {
    const clock = fakeClock();
    try {
      // Calls 0 and 1 answer at once (no time passes on the fake clock, however busy the machine);
      // call 2 would take 2 s.
      const slow = new ScriptedModel(async (_, call) => {
        if (call >= 2) await clock.slowCall(call, 2_000);
        return think('look');
      });
      const run = settles(
        runHousehold(new HouseholdEnv() as never, slow, { task, seed: 1 }, { timeLimitMs: 300 }),
      );
      await clock.reached(2);
      await clock.advance(299);
      expect(run.settled()).toBe(false);
      // At 300 ms the slow call is abandoned, not awaited (its 2 s are far from over).
      await clock.advance(1);
      expect(run.settled()).toBe(true);
      const t = await run.promise;
      expect(t.outcome).toBe('time_limit');
      expect(t.steps.length).toBe(2);
      expect(t.steps[1]!.done).toBe(true);
      expect(slow.calls[2]!.options.signal?.aborted).toBe(true);
    } finally {
      clock.restore();
    }
  });

  it('runs on an untrained local policy: token-exact steps, and a group samples differently', async () => {
    const policy = tinyPolicy(1);
    policies.push(policy);
    const model = new PolicyChatModel(policy);
    const tasks = [0, 1].map((s) => new HouseholdGenerator().generate('train', s));
    const ts = await rollout({
      model,
      tasks,
      groupSize: 2,
      loops: { household: { maxSteps: 3, sampling: { maxTokens: 24 } } },
    });
    expect(ts.map((t) => [t.groupId, t.trajectoryId])).toEqual([
      ['household/train/0', '0'],
      ['household/train/0', '1'],
      ['household/train/1', '0'],
      ['household/train/1', '1'],
    ]);
    const tok = domainTokenizer();
    for (const t of ts) {
      expect(t.steps.length).toBeGreaterThan(0);
      // The growing format (the default): each prompt extends the previous prompt and reply.
      expectPromptsGrow(t.steps);
      for (const s of t.steps) {
        // An earlier reply cut mid-character by the token limit shows as U+FFFD in the decoded ids
        // and not in its text.
        expect(tok.decode(s.promptTokens).replace(/\uFFFD/g, '')).toBe(s.promptText.replace(/\uFFFD/g, ''));
        expect(s.responseTokens.length).toBeGreaterThan(0);
        expect(s.responseTokens.length).toBeLessThanOrEqual(24);
        expect(s.responseLogprobs.length).toBe(s.responseTokens.length);
        expect(s.responseLogprobs.every((l) => Number.isFinite(l) && l <= 0)).toBe(true);
        // The text is the tokens' text without the end token (and without a character cut in
        // half by the token limit, which decodes to U+FFFD).
        const ended = s.responseTokens.at(-1) === tok.endId;
        const decoded = tok.decode(ended ? s.responseTokens.slice(0, -1) : s.responseTokens);
        expect(decoded.replace(/\uFFFD+$/, '')).toBe(s.responseText.replace(/\uFFFD+$/, ''));
        expect(s.valid).toBe(parseHouseholdResponse(s.responseText).valid);
        expect(s.model).toBe('policy:policy');
      }
    }
    // The two rollouts of a group share the first prompt but sample their own responses.
    expect(ts[0]!.steps[0]!.promptTokens).toEqual(ts[1]!.steps[0]!.promptTokens);
    expect(ts[0]!.steps[0]!.responseTokens).not.toEqual(ts[1]!.steps[0]!.responseTokens);
    // Each later turn prefilled only what it appended (the prefix cache held the previous prompt
    // and reply, all but the last sampled token): at most this many tokens, without even counting
    // what the G rollouts of a group share.
    const bound = ts.reduce(
      (n, t) =>
        n +
        t.steps.reduce(
          (m, s, i) =>
            m +
            (i === 0
              ? s.promptTokens.length
              : s.promptTokens.length -
                t.steps[i - 1]!.promptTokens.length -
                t.steps[i - 1]!.responseTokens.length +
                1),
          0,
        ),
      0,
    );
    const stats = model.batcher.batch.stats;
    expect(stats.prefilledTokens).toBeLessThanOrEqual(bound);
    expect(stats.prefilledTokens).toBeLessThan(stats.promptTokens / 2);
    // Concurrent trajectories shared decode batches.
    const steps = ts.reduce((n, t) => n + t.steps.length, 0);
    expect(model.batcher.stats.batches).toBeLessThan(steps);
  });

  it('ends with context_limit when the prompt outgrows the model', async () => {
    const policy = Policy.create({
      model: { width: 16, layers: 1, heads: 2, contextLength: 64 },
      tokenizer: domainTokenizer(),
    });
    policies.push(policy);
    const t = await runHousehold(new HouseholdEnv() as never, new PolicyChatModel(policy), { task, seed: 1 });
    expect(t.outcome).toBe('context_limit');
    expect(t.steps).toEqual([]);
  });
});

describe('search loop', () => {
  const source = new EncyclopediaQA();
  const makeEnv = agentEnvMaker({ deps: { source } });
  const task = source.generate('train', 5, 'bridge') as SearchTask;
  const expert = new SearchExpert().demonstrate(task).actions;

  it('searches and answers with tags; results come back to the model, audited', async () => {
    const { env, tools } = makeEnv('search');
    const model = replies(...expert.map((a) => `<think>next</think>${a}`));
    const t = await runSearch(env as never, model, { task, seed: task.seed, tools });
    expect(t.outcome).toBe('won');
    expect(t.steps.map((s) => s.action)).toEqual(expert);
    expect(t.steps.map((s) => s.valid)).toEqual(expert.map(() => true));
    const answer = t.steps.at(-1)!;
    expect(answer.extras).toMatchObject({ answered: true, outcomeReward: 1 });
    expect(answer.envReward).toBe(1);
    expect(answer.audit).toEqual([]);
    for (const [i, s] of t.steps.slice(0, -1).entries()) {
      expect(s.audit.map((a) => [a.tool, JSON.parse(a.arguments).query, a.ok])).toEqual([
        ['web_search', expert[i]!.slice(8, -9), true],
      ]);
      expect(s.anchor).toBe(i === 0 ? task.payload.question : t.steps[i - 1]!.observation);
    }
    // The last prompt is the whole conversation: system, question, then (response, result) pairs;
    // a tag's result is a user message (OpenAI takes tool messages only as answers to calls).
    const last = model.calls.at(-1)!.messages;
    expect(last.map((m) => m.role)).toEqual([
      'system',
      'user',
      ...expert.slice(1).flatMap(() => ['assistant', 'user']),
    ]);
    expect(last[3]).toEqual({ role: 'user', content: t.steps[0]!.observation });
    expect(last[3]!.content).toContain(task.payload.evidence![0]!);
  });

  it('follows web_search tool calls and answers each call; an unknown tool is an invalid step', async () => {
    const { env, tools } = makeEnv('search');
    const query = task.payload.queries![0]!;
    const model = replies(
      { text: '', toolCalls: [{ id: 'a', name: 'lookup', arguments: '{}' }], finishReason: 'tool_calls' },
      {
        text: 'let me search',
        toolCalls: [
          { id: 'b', name: 'web_search', arguments: JSON.stringify({ query }) },
          { id: 'c', name: 'web_search', arguments: '{"query": "more"}' },
        ],
        finishReason: 'tool_calls',
      },
      '<answer>nobody</answer>',
    );
    const t = await runSearch(env as never, model, { task, seed: task.seed, tools }, { toolCalling: true });
    expect(t.outcome).toBe('answered');
    expect(t.steps.map((s) => s.valid)).toEqual([false, true, true]);
    expect(t.steps[0]!.observation).toMatch(/^Tool "lookup" not found/);
    expect(t.steps[1]!.action).toBe(`<search>${query}</search>`);
    expect(t.steps[1]!.audit.length).toBe(1);
    // The tools were offered, and every call got its tool message.
    expect(model.calls[0]!.options.tools?.map((d) => d.function.name)).toEqual(['web_search']);
    const msgs = model.calls[2]!.messages;
    expect(msgs.filter((m) => m.role === 'tool').map((m) => m.toolCallId)).toEqual(['a', 'b', 'c']);
    expect(msgs.find((m) => m.toolCallId === 'b')!.content).toBe(t.steps[1]!.observation);
    expect(msgs.find((m) => m.toolCallId === 'c')!.content).toMatch(/Not run/);
    expect(t.steps[2]!.extras).toMatchObject({ answered: true, outcomeReward: 0 });
  });

  it('counts invalid replies as turns and stops at the turn limit', async () => {
    const { env, tools } = makeEnv('search');
    const t = await runSearch(
      env as never,
      replies('I do not know'),
      { task, seed: 1, tools },
      { maxTurns: 2 },
    );
    expect(t.outcome).toBe('turn_limit');
    expect(t.steps.map((s) => [s.valid, s.done])).toEqual([
      [false, false],
      [false, true],
    ]);
    expect(t.steps[0]!.observation).toMatch(/^Invalid action/);
  });

  it('stops at the time limit mid-conversation', async () => {
    const clock = fakeClock();
    try {
      const { env, tools } = makeEnv('search');
      const model = new ScriptedModel(async (_, call) => {
        if (call === 1) await clock.slowCall(call, 2_000);
        return `<search>${task.payload.queries![0]}</search>`;
      });
      const run = settles(runSearch(env as never, model, { task, seed: 1, tools }, { timeLimitMs: 300 }));
      await clock.reached(1);
      await clock.advance(299);
      expect(run.settled()).toBe(false);
      await clock.advance(1);
      expect(run.settled()).toBe(true);
      const t = await run.promise;
      expect(t.outcome).toBe('time_limit');
      expect(t.steps.map((s) => [s.valid, s.done, s.audit.length])).toEqual([[true, true, 1]]);
      expect(model.calls[1]!.options.signal?.aborted).toBe(true);
    } finally {
      clock.restore();
    }
  });

  it('a failing model fails the rollout, after the trajectories in flight end', async () => {
    let finished = 0;
    const model = new ScriptedModel(async (_, call) => {
      if (call === 0) throw new Error('server down');
      await new Promise((r) => setTimeout(r, 20));
      return '<answer>x</answer>';
    });
    const run = rollout({
      model,
      tasks: [task],
      groupSize: 3,
      makeEnv,
      concurrency: 2,
      onTrajectory: () => finished++,
    });
    await expect(run).rejects.toThrow('server down');
    // The second trajectory was in flight and finished; the third never started.
    expect(finished).toBe(1);
    expect(model.calls.length).toBe(2);
  });

  it('runs on an untrained local policy', async () => {
    const policy = tinyPolicy(2);
    policies.push(policy);
    const ts = await rollout({
      model: new PolicyChatModel(policy),
      tasks: [task],
      groupSize: 2,
      makeEnv,
      loops: { search: { maxTurns: 3, sampling: { maxTokens: 16 } } },
    });
    for (const t of ts) {
      expect(['turn_limit', 'answered', 'won', 'context_limit']).toContain(t.outcome);
      expectPromptsGrow(t.steps);
      for (const s of t.steps) {
        expect(s.responseTokens.length).toBe(s.responseLogprobs.length);
        expect(s.promptText.startsWith('<|system|>Answer the question')).toBe(true);
      }
    }
  });
});
