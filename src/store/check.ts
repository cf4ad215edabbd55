/**
 * `store check`: SQLite's own integrity and foreign-key checks, then the store's invariants that
 * SQLite cannot express (step counts, blob sizes, returns). Each finding names the rows at fault.
 */
import type Database from 'better-sqlite3';
import { SCHEMA_VERSION, schemaVersion } from './schema.ts';

export interface CheckFinding {
  /** 'error': the data is wrong or unreadable; 'warning': suspicious but usable. */
  severity: 'error' | 'warning';
  check: string;
  message: string;
}

export interface CheckReport {
  ok: boolean;
  schemaVersion: number;
  counts: Record<string, number>;
  findings: CheckFinding[];
}

/** At most this many offending rows are listed per check (the count is always given). */
export const EXAMPLES = 5;

export interface Rule {
  check: string;
  severity: CheckFinding['severity'];
  /** Counts the offending rows. */
  countSql: string;
  /** Lists a few of them as `what` strings. */
  exampleSql: string;
  message: (n: number, examples: string[]) => string;
}

export const listed = (n: number, ex: string[]) =>
  `${ex.join('; ')}${n > ex.length ? `; ... (${n} in all)` : ''}`;

// Where a trajectory lives, for messages.
const TRAJ = `'run ' || i.run_id || ', iteration ' || i.iteration || ', group ' || g.group_key ||
  ', trajectory ' || t.trajectory_key`;
const TRAJ_JOINS = 'JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id';

/** The store's invariants; SQL in SQLite's dialect (`storeRules('postgres')` translates the few differences). */
const rules: Rule[] = [
  {
    check: 'step count',
    severity: 'error',
    countSql: `SELECT count(*) FROM trajectories t
      WHERE t.length != (SELECT count(*) FROM steps s WHERE s.trajectory_id = t.id)`,
    exampleSql: `SELECT ${TRAJ} || ': length ' || t.length || ', steps stored ' ||
        (SELECT count(*) FROM steps s WHERE s.trajectory_id = t.id)
      FROM trajectories t ${TRAJ_JOINS}
      WHERE t.length != (SELECT count(*) FROM steps s WHERE s.trajectory_id = t.id) LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} trajectories whose length differs from their stored steps: ${listed(n, ex)}`,
  },
  {
    check: 'step order',
    severity: 'error',
    countSql: `SELECT count(*) FROM steps s JOIN trajectories t ON t.id = s.trajectory_id
      WHERE s.step_index < 0 OR s.step_index >= t.length`,
    exampleSql: `SELECT ${TRAJ} || ': step index ' || s.step_index || ' outside 0..' || (t.length - 1)
      FROM steps s JOIN trajectories t ON t.id = s.trajectory_id ${TRAJ_JOINS}
      WHERE s.step_index < 0 OR s.step_index >= t.length LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} steps whose stepIndex is not in 0..length-1: ${listed(n, ex)}`,
  },
  {
    check: 'blob sizes',
    severity: 'error',
    countSql: `SELECT count(*) FROM steps WHERE length(prompt_tokens) % 4 != 0
      OR length(response_tokens) % 4 != 0 OR length(response_logprobs) != length(response_tokens)`,
    exampleSql: `SELECT ${TRAJ} || ', step ' || s.step_index || ': prompt ' || length(s.prompt_tokens) ||
        ' bytes, response ' || length(s.response_tokens) || ' bytes, log-probs ' || length(s.response_logprobs) || ' bytes'
      FROM steps s JOIN trajectories t ON t.id = s.trajectory_id ${TRAJ_JOINS}
      WHERE length(s.prompt_tokens) % 4 != 0 OR length(s.response_tokens) % 4 != 0
        OR length(s.response_logprobs) != length(s.response_tokens) LIMIT ${EXAMPLES}`,
    message: (n, ex) =>
      `${n} steps with token blobs not a multiple of 4 bytes or log-probs not one per response token: ${listed(n, ex)}`,
  },
  {
    check: 'done flag',
    severity: 'error',
    countSql: `SELECT count(*) FROM steps s JOIN trajectories t ON t.id = s.trajectory_id
      WHERE s.done = 1 AND s.step_index != t.length - 1`,
    exampleSql: `SELECT ${TRAJ} || ': step ' || s.step_index || ' is done but the trajectory has ' || t.length || ' steps'
      FROM steps s JOIN trajectories t ON t.id = s.trajectory_id ${TRAJ_JOINS}
      WHERE s.done = 1 AND s.step_index != t.length - 1 LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} steps marked done before the end of their trajectory: ${listed(n, ex)}`,
  },
  {
    check: 'orphan advantages',
    severity: 'error',
    countSql:
      'SELECT count(*) FROM advantages a WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = a.step_id)',
    exampleSql: `SELECT 'advantage ' || a.id || ' (' || a.estimator || ') names missing step ' || a.step_id
      FROM advantages a WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = a.step_id) LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} advantages referencing steps that do not exist: ${listed(n, ex)}`,
  },
  {
    check: 'orphan tool calls',
    severity: 'error',
    countSql:
      'SELECT count(*) FROM tool_calls c WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = c.step_id)',
    exampleSql: `SELECT 'tool call ' || c.id || ' (' || c.tool || ') names missing step ' || c.step_id
      FROM tool_calls c WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = c.step_id) LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} tool calls referencing steps that do not exist: ${listed(n, ex)}`,
  },
  {
    check: 'advantage values',
    severity: 'error',
    countSql: "SELECT count(*) FROM advantages WHERE typeof(value) != 'real' OR abs(value) > 1e300",
    exampleSql: `SELECT 'advantage ' || id || ' (' || estimator || ') = ' || quote(value) FROM advantages
      WHERE typeof(value) != 'real' OR abs(value) > 1e300 LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} advantages that are not finite numbers: ${listed(n, ex)}`,
  },
  {
    check: 'empty iterations',
    severity: 'warning',
    countSql:
      'SELECT count(*) FROM iterations i WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.iteration_id = i.id)',
    exampleSql: `SELECT 'run ' || run_id || ', iteration ' || iteration FROM iterations i
      WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.iteration_id = i.id) LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} iterations without groups: ${listed(n, ex)}`,
  },
  {
    check: 'empty groups',
    severity: 'warning',
    countSql:
      'SELECT count(*) FROM groups g WHERE NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.group_id = g.id)',
    exampleSql: `SELECT 'run ' || i.run_id || ', iteration ' || i.iteration || ', group ' || g.group_key
      FROM groups g JOIN iterations i ON i.id = g.iteration_id
      WHERE NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.group_id = g.id) LIMIT ${EXAMPLES}`,
    message: (n, ex) => `${n} groups without trajectories: ${listed(n, ex)}`,
  },
  {
    // episodeReturn is the sum of envReward (ALGORITHMS.md); a writer may store another
    // definition on purpose, so a mismatch is a warning.
    check: 'returns',
    severity: 'warning',
    countSql: `SELECT count(*) FROM trajectories t
      WHERE abs(t.episode_return - (SELECT total(env_reward) FROM steps s WHERE s.trajectory_id = t.id)) > 1e-6 * (1 + abs(t.episode_return))`,
    exampleSql: `SELECT ${TRAJ} || ': episodeReturn ' || t.episode_return || ', sum of env rewards ' ||
        (SELECT total(env_reward) FROM steps s WHERE s.trajectory_id = t.id)
      FROM trajectories t ${TRAJ_JOINS}
      WHERE abs(t.episode_return - (SELECT total(env_reward) FROM steps s WHERE s.trajectory_id = t.id)) > 1e-6 * (1 + abs(t.episode_return))
      LIMIT ${EXAMPLES}`,
    message: (n, ex) =>
      `${n} trajectories whose episodeReturn is not the sum of their env rewards: ${listed(n, ex)}`,
  },
];

/** The rules in one dialect: PostgreSQL has no total(), typeof() or quote(). */
export function storeRules(dialect: 'sqlite' | 'postgres'): readonly Rule[] {
  if (dialect === 'sqlite') return rules;
  const pg = (sql: string) =>
    sql
      .replaceAll('total(env_reward)', 'coalesce(sum(env_reward), 0)')
      .replaceAll("typeof(value) != 'real'", "value = 'NaN'::float8")
      .replaceAll('quote(value)', 'value::text');
  return rules.map((r) => ({ ...r, countSql: pg(r.countSql), exampleSql: pg(r.exampleSql) }));
}

export const TABLES = [
  'runs',
  'iterations',
  'groups',
  'trajectories',
  'steps',
  'tool_calls',
  'advantages',
  'metrics',
  'checkpoints',
];

export function checkStore(db: Database.Database): CheckReport {
  const findings: CheckFinding[] = [];
  const version = schemaVersion(db);
  if (version !== SCHEMA_VERSION) {
    findings.push({
      severity: 'error',
      check: 'schema version',
      message: `schema version ${version}; expected ${SCHEMA_VERSION}`,
    });
  }

  // Each phase may itself fail on a damaged file; such a failure is a finding, not a crash.
  const attempt = (check: string, body: () => void): boolean => {
    try {
      body();
      return true;
    } catch (err) {
      findings.push({ severity: 'error', check, message: `failed: ${(err as Error).message}` });
      return false;
    }
  };

  let intact = attempt('integrity', () => {
    const rows = db.pragma('integrity_check', { simple: false }) as Array<{ integrity_check: string }>;
    const problems = rows.map((r) => r.integrity_check).filter((m) => m !== 'ok');
    if (problems.length > 0) {
      findings.push({
        severity: 'error',
        check: 'integrity',
        message: problems.slice(0, EXAMPLES).join('; '),
      });
      intact = false;
    }
  });
  intact =
    attempt('foreign keys', () => {
      const fk = db.pragma('foreign_key_check') as Array<{ table: string; rowid: number; parent: string }>;
      if (fk.length === 0) return;
      const ex = fk.slice(0, EXAMPLES).map((r) => `${r.table} row ${r.rowid} -> missing ${r.parent}`);
      findings.push({
        severity: 'error',
        check: 'foreign keys',
        message: `${fk.length} rows referencing missing parents: ${listed(fk.length, ex)}`,
      });
    }) && intact;

  // The store's own invariants need readable tables of the expected schema.
  const counts: Record<string, number> = {};
  if (intact && version === SCHEMA_VERSION) {
    attempt('counts', () => {
      for (const t of TABLES) counts[t] = db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number;
    });
    for (const rule of rules) {
      attempt(rule.check, () => {
        const n = db.prepare(rule.countSql).pluck().get() as number;
        if (n === 0) return;
        const ex = db.prepare(rule.exampleSql).pluck().all() as string[];
        findings.push({ severity: rule.severity, check: rule.check, message: rule.message(n, ex) });
      });
    }
  }
  return { ok: !findings.some((f) => f.severity === 'error'), schemaVersion: version, counts, findings };
}

/** The report as the CLI prints it. */
export function formatCheckReport(path: string, r: CheckReport): string {
  const lines = [`store ${path}: schema version ${r.schemaVersion}`];
  const counts = Object.entries(r.counts).map(([k, v]) => `${k} ${v}`);
  if (counts.length > 0) lines.push(`  ${counts.join(', ')}`);
  for (const f of r.findings) lines.push(`  ${f.severity}: ${f.check}: ${f.message}`);
  lines.push(r.ok ? (r.findings.length > 0 ? 'ok (with warnings)' : 'ok') : 'FAILED');
  return lines.join('\n');
}
