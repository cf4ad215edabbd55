/**
 * `stepwise tool <name> --input '<json>'`: run one tool call and print its result as one JSON
 * object. Exits 0 whatever the tool answered (errors are results); non-zero only for a bad
 * command line (unknown tool, input that is not JSON, a missing index file).
 */
import type { Command } from 'commander';
import { closeSharedPythonPool, sharedPythonPool } from '../../tools/python/pool.ts';
import { detectProtection } from '../../tools/python/sandbox.ts';
import { createTool, TOOL_NAMES } from '../../tools/registry.ts';
import { SearchIndex } from '../../tools/search/index.ts';
import type { ToolLimits } from '../../tools/types.ts';

interface ToolFlags {
  input?: string;
  index?: string;
  timeMs?: string;
  outputChars?: string;
  protection?: boolean;
}

export function registerTool(program: Command): void {
  program
    .command('tool')
    .description(
      `run one tool call and print {ok, output, error?, durationMs, truncated} (tools: ${TOOL_NAMES.join(', ')})`,
    )
    .argument('[name]', 'tool name')
    .option('--input <json>', 'the tool arguments as JSON, e.g. \'{"code": "print(1)"}\'')
    .option('--index <file>', 'web_search: a saved SearchIndex (default: a small built-in document set)')
    .option('--time-ms <n>', 'time limit of the call in milliseconds')
    .option('--output-chars <n>', 'longest output kept')
    .option('--protection', 'print the sandbox protection active on this machine and exit')
    .action(async (name: string | undefined, opts: ToolFlags) => {
      if (opts.protection) {
        const p = detectProtection();
        console.log(
          JSON.stringify({ level: p.level, summary: p.summary, ...(p.reason ? { reason: p.reason } : {}) }),
        );
        return;
      }
      if (!name) throw new Error(`name a tool (one of: ${TOOL_NAMES.join(', ')})`);
      if (!(TOOL_NAMES as readonly string[]).includes(name)) {
        throw new Error(`unknown tool "${name}" (expected one of: ${TOOL_NAMES.join(', ')})`);
      }
      if (opts.input === undefined) throw new Error('--input <json> is required');
      let input: unknown;
      try {
        input = JSON.parse(opts.input);
      } catch (err) {
        throw new Error(`--input is not valid JSON: ${(err as Error).message}`);
      }
      const limits: Partial<ToolLimits> = {};
      if (opts.timeMs !== undefined) limits.timeMs = positiveInt('--time-ms', opts.timeMs);
      if (opts.outputChars !== undefined)
        limits.outputChars = positiveInt('--output-chars', opts.outputChars);
      if (opts.index && name !== 'web_search') throw new Error('--index applies to web_search only');
      const index = opts.index ? SearchIndex.load(opts.index) : undefined;
      // One call: no spare interpreters to keep warm.
      if (name === 'python') sharedPythonPool({ size: 0 });
      const tool = createTool(name, { index, limits });
      const r = await tool.execute(input as never);
      await tool.close?.();
      await closeSharedPythonPool();
      const printed: Record<string, unknown> = { ok: r.ok, output: r.output };
      if (r.error !== undefined) printed.error = r.error;
      printed.durationMs = Math.round(r.durationMs * 1000) / 1000;
      printed.truncated = r.truncated;
      process.stdout.write(`${JSON.stringify(printed)}\n`);
    });
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag}: expected a positive integer, got '${text}'`);
  return n;
}
