/**
 * `stepwise serve`: a stepwise policy behind the OpenAI HTTP API, on node:http (no server library is
 * installed, and four routes do not need one). Every request goes through one PolicyChatModel, so
 * concurrent requests join one continuous decode batch (a request arriving mid-decode joins at the
 * next step), and prompts that start like earlier ones reuse their keys and values from the
 * policy's prefix cache.
 *
 * Recording (a `recorder`, e.g. `stepwise serve --record <db>`): a chat completion carrying
 * `x-stepwise-rollout: <id>` is recorded as the next step of that rollout (`x-stepwise-group: <id>`
 * puts rollouts of one task side by side for group baselines; `x-stepwise-anchor` names the state
 * for GiGPO), and `POST /v1/rewards` records the rollout's outcome. The server serves the `Policy`
 * object it was given, so a trainer updating that object in place swaps what it serves: the next
 * request decodes with the new weights (an update clears the prefix cache).
 *
 * A policy with named LoRA adapters (an adapter per role) is served the way vLLM serves multi-LoRA:
 * the base under `modelId`, each adapter under its own name (`model: "planner"`), all listed by
 * GET /v1/models with the base as their `parent`. Each has its own decode batch; they share the
 * base's tensors and sessions.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ContextOverflowError } from '../agents/chat/batcher.ts';
import { PolicyChatModel } from '../agents/chat/policy-chat-model.ts';
import type { Policy } from '../policy/policy.ts';
import { parseOrThrow } from '../util/zod.ts';
import { type ChatContext, chatCompletions, type Reply, type RolloutSampling } from './chat-completions.ts';
import { completions } from './completions.ts';
import { badRequest, contextOverflow, modelNotFound, ServeError } from './errors.ts';
import { ChatCompletionRequest, CompletionRequest, RewardRequest } from './protocol.ts';
import type { ServeRecorder } from './recorder.ts';
import { ReplyCache } from './replies.ts';

/** The request headers that put a completion into a rollout. */
export const ROLLOUT_HEADER = 'x-stepwise-rollout';
export const GROUP_HEADER = 'x-stepwise-group';
export const ANCHOR_HEADER = 'x-stepwise-anchor';

export const ServeOptions = z.object({
  host: z.string().default('127.0.0.1'),
  /** 0 picks a free port (see `url` after `listen`). */
  port: z.number().int().min(0).max(65535).default(8000),
  /** The base model's id (adapters are served under their own names); another name gets a 404. */
  modelId: z.string().min(1).default('stepwise'),
  /** Most rows decoding at once (n choices count as rows); more requests wait for a row to leave. */
  maxBatch: z.number().int().min(1).default(64),
  /** An idle server starts decoding once no request has arrived for this long, in ms... */
  batchWaitMs: z.number().min(0).default(3),
  /** ...or this long after the batch's first request, whichever comes first. */
  batchMaxWaitMs: z.number().min(0).default(50),
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: z
    .number()
    .int()
    .min(1)
    .default(8 * 1024 * 1024),
  /** Replies remembered for token-exact prompts (see replies.ts); the oldest are forgotten first. */
  replyCacheSize: z.number().int().min(0).default(10_000),
});
export type ServeOptions = z.infer<typeof ServeOptions>;

export class PolicyServer {
  readonly options: ServeOptions;
  /** The base model's chat model (the policy's own when it has no adapters). */
  readonly model: PolicyChatModel;
  /** Every served model by id: the base under `modelId`, then each adapter under its name. */
  readonly models: ReadonlyMap<string, PolicyChatModel>;
  private readonly server: Server;
  private readonly created = Math.floor(Date.now() / 1000);
  readonly replies: ReplyCache;
  /** Sampling a trainer imposes on the rollouts it started, by rollout id. */
  private readonly sampling = new Map<string, RolloutSampling>();

  /** `recorder`: where completions of rollouts and their rewards go (none: nothing is recorded). */
  constructor(
    readonly policy: Policy,
    options: z.input<typeof ServeOptions> = {},
    readonly recorder?: ServeRecorder,
  ) {
    this.options = ServeOptions.parse(options);
    this.replies = new ReplyCache(this.options.replyCacheSize);
    const chatModel = (p: Policy, name: string) =>
      new PolicyChatModel(p, {
        name,
        maxBatch: this.options.maxBatch,
        batchWaitMs: this.options.batchWaitMs,
        batchMaxWaitMs: this.options.batchMaxWaitMs,
        // The server's own batch settings, whatever other models on this policy use.
        shareBatches: false,
      });
    const models = new Map<string, PolicyChatModel>();
    // Given one of a base's adapters, the server still serves the base and all of them.
    models.set(this.options.modelId, chatModel(policy.base, this.options.modelId));
    for (const name of policy.adapterNames) {
      if (models.has(name)) {
        throw new Error(`adapter '${name}' has the base model's id; serve the base under another --model`);
      }
      models.set(name, chatModel(policy.adapter(name), name));
    }
    this.models = models;
    this.model = models.get(this.options.modelId)!;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => sendError(res, err));
    });
  }

  /** Start listening; resolves to the base URL, e.g. http://127.0.0.1:8000/v1. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    return this.url;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${port}/v1`;
  }

  /**
   * Makes rollout `rollout` sample at `temperature` with seeds from `seed`, whatever its requests
   * ask (a trainer's rollouts, and its greedy evaluations); `undefined` lifts it.
   */
  setRolloutSampling(rollout: string, sampling: RolloutSampling | undefined): void {
    if (sampling) this.sampling.set(rollout, sampling);
    else this.sampling.delete(rollout);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    const reply = replyTo(res);
    const base = this.options.modelId;
    const card = (id: string) => ({
      id,
      object: 'model',
      created: this.created,
      owned_by: 'stepwise',
      root: base,
      parent: id === base ? null : base,
    });
    const ids = [...this.models.keys()];
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') throw methodNotAllowed(req.method, 'GET');
      if (path === '/v1/models') return reply.json({ object: 'list', data: ids.map(card) });
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (!this.models.has(id)) throw modelNotFound(id, ids);
      return reply.json(card(id));
    }
    if (path === '/health') return reply.json({ ok: true });
    if (path === '/v1/rewards') {
      if (req.method !== 'POST') throw methodNotAllowed(req.method, 'POST');
      return reply.json(this.reward(await readJson(req, this.options.maxBodyBytes)));
    }
    if (path !== '/v1/chat/completions' && path !== '/v1/completions') {
      throw new ServeError(
        404,
        `Unknown route ${req.method} ${path}`,
        'invalid_request_error',
        null,
        'unknown_url',
      );
    }
    if (req.method !== 'POST') throw methodNotAllowed(req.method, 'POST');
    const body = await readJson(req, this.options.maxBodyBytes);
    const chat = path === '/v1/chat/completions';
    // OpenAI's error shape: the field goes into `param` as well as into the message.
    const request = parseOrThrow(
      chat ? ChatCompletionRequest : CompletionRequest,
      body,
      ({ field, message }) =>
        badRequest(`Invalid value for '${field || 'body'}': ${message}`, field || null, 'invalid_value'),
    );
    const served = this.models.get(request.model);
    if (!served) throw modelNotFound(request.model, ids);
    const context: ChatContext = { replies: this.replies, rollout: this.rolloutOf(req, chat) };
    try {
      if (chat)
        await chatCompletions(served, request.model, request as ChatCompletionRequest, reply, context);
      else await completions(served, request.model, request as CompletionRequest, reply);
    } catch (err) {
      if (err instanceof ContextOverflowError) throw contextOverflow(err.promptTokens, 1, err.contextLength);
      throw err;
    }
  }

  /** The rollout a request's headers name, checked against what the recorder has. */
  private rolloutOf(req: IncomingMessage, chat: boolean): ChatContext['rollout'] {
    const rollout = header(req, ROLLOUT_HEADER);
    if (rollout === undefined) return undefined;
    if (!chat) {
      throw badRequest(
        `${ROLLOUT_HEADER} is for /v1/chat/completions; /v1/completions records nothing`,
        ROLLOUT_HEADER,
      );
    }
    const group = header(req, GROUP_HEADER) ?? rollout;
    const anchor = header(req, ANCHOR_HEADER);
    const known = this.recorder?.rollout(rollout);
    if (known && known.group !== group) {
      throw badRequest(
        `rollout '${rollout}' is in group '${known.group}', but this request's ${GROUP_HEADER} is '${group}'; ` +
          'a rollout stays in one group',
        GROUP_HEADER,
        'group_mismatch',
      );
    }
    if (known && known.reward !== undefined) {
      throw new ServeError(
        409,
        `rollout '${rollout}' is finished (its reward is recorded); start a new rollout id`,
        'invalid_request_error',
        ROLLOUT_HEADER,
        'rollout_finished',
      );
    }
    return {
      rollout,
      group,
      ...(anchor !== undefined ? { anchor: decodeHeader(anchor) } : {}),
      stepIndex: known?.steps ?? 0,
      recorder: this.recorder,
      sampling: this.sampling.get(rollout),
    };
  }

  /** POST /v1/rewards: checked whole before anything is written. */
  private reward(body: unknown): { object: 'reward'; rollout: string; reward: number; steps: number } {
    if (!this.recorder) {
      throw new ServeError(
        404,
        'This server records no rollouts, so it takes no rewards; start it with --record <db>',
        'invalid_request_error',
        null,
        'recording_off',
      );
    }
    const r = parseOrThrow(RewardRequest, body, ({ field, message }) =>
      badRequest(
        `Invalid value for '${field || 'body'}': ${message}; expected {"rollout": "<id>", "reward": <number>, ` +
          '"won"?: <boolean>, "step_rewards"?: [<number>, ...]}',
        field || null,
        'invalid_value',
      ),
    );
    const known = this.recorder.rollout(r.rollout);
    if (!known) {
      throw new ServeError(
        404,
        `No rollout '${r.rollout}' was recorded: send its chat completions with ${ROLLOUT_HEADER}: ${r.rollout} first`,
        'invalid_request_error',
        'rollout',
        'rollout_not_found',
      );
    }
    if (known.reward !== undefined) {
      throw new ServeError(
        409,
        `rollout '${r.rollout}' already has its reward (${known.reward})`,
        'invalid_request_error',
        'rollout',
        'reward_exists',
      );
    }
    if (r.step_rewards && r.step_rewards.length !== known.steps) {
      throw badRequest(
        `step_rewards has ${r.step_rewards.length} values, but rollout '${r.rollout}' has ${known.steps} recorded steps; ` +
          'give one per step, in step order',
        'step_rewards',
        'invalid_value',
      );
    }
    this.recorder.setReward({
      rollout: r.rollout,
      reward: r.reward,
      ...(r.won !== undefined ? { won: r.won } : {}),
      ...(r.step_rewards ? { stepRewards: r.step_rewards } : {}),
    });
    this.sampling.delete(r.rollout);
    return { object: 'reward', rollout: r.rollout, reward: r.reward, steps: known.steps };
  }
}

/** A header's value (the first, when repeated), or undefined when absent or empty. */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  const value = Array.isArray(v) ? v[0] : v;
  return value === undefined || value === '' ? undefined : value;
}

/** Header values are ASCII: an anchor may be percent-encoded UTF-8. */
function decodeHeader(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

const methodNotAllowed = (method: string | undefined, allowed: string) =>
  new ServeError(
    405,
    `Method ${method} is not allowed here; use ${allowed}`,
    'invalid_request_error',
    null,
    'method_not_allowed',
  );

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += (part as Buffer).length;
    if (size > limit) throw new ServeError(413, `The request body is larger than ${limit} bytes`);
    parts.push(part as Buffer);
  }
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(
      `We could not parse the JSON body of your request (${(err as Error).message}); expected a JSON object`,
      null,
      'invalid_json',
    );
  }
}

/** JSON for a whole response; server-sent events (`data: ...`, then `data: [DONE]`) for a stream. */
function replyTo(res: ServerResponse): Reply {
  return {
    json(body) {
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
    event(body) {
      if (!res.headersSent) {
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
      }
      // A client that went away mid-stream just stops receiving; its rows finish with their batch.
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(body)}\n\n`);
    },
    end() {
      if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
    },
  };
}

function sendError(res: ServerResponse, err: unknown): void {
  const api =
    err instanceof ServeError
      ? err
      : new ServeError(500, `The server failed: ${(err as Error)?.message ?? String(err)}`, 'server_error');
  if (res.headersSent) {
    // Mid-stream: the status is gone, so the error travels as an event (as OpenAI's servers do).
    if (!res.writableEnded) res.end(`data: ${JSON.stringify(api.body())}\n\n`);
    return;
  }
  const text = JSON.stringify(api.body());
  res.writeHead(api.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
