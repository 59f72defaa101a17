/**
 * Prints issue 13's goals as the benches of this run recorded them (bench/goals.ts):
 *   UPKEEP_BENCH_RESULTS=FILE node --import tsx bench/summary.ts
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { GOALS, loadAverage } from './goals.js';

const resultLine = z.object({ id: z.string(), upkeep: z.number(), peer: z.number().nullable(), ratio: z.number().nullable(), met: z.boolean(), note: z.string(), load: z.string() });

const file = process.env.UPKEEP_BENCH_RESULTS;
if (!file) throw new Error('UPKEEP_BENCH_RESULTS names the file the benches wrote');
const text = await readFile(file, 'utf8').catch(() => '');
const results = new Map(text.split('\n').filter((line) => line !== '').map((line) => {
  const result = resultLine.parse(JSON.parse(line));
  return [result.id, result] as const;
}));

// A goal's text may hold a pipe (pg_dump | gzip): escaped, so it stays in its table cell.
const cell = (text: string) => text.replaceAll('|', '\\|');
const figure = (value: number | null, unit: string) => (value === null ? '—' : `${Number(value.toPrecision(4))}${unit === '' ? '' : ` ${unit}`}`);
const lines = ['', `issue 13 goals (load average now ${loadAverage()})`, '', '| goal | upkeep | peer (same run) | ratio | result | load avg | note |', '|---|---:|---:|---:|---|---|---|'];
for (const goal of GOALS) {
  const result = results.get(goal.id);
  if (!result) {
    lines.push(`| ${cell(goal.goal)} | — | — | — | NOT MEASURED | | |`);
    continue;
  }
  const peer = result.peer === null ? '—' : `${figure(result.peer, goal.unit)} (${goal.peer})`;
  lines.push(`| ${cell(goal.goal)} | ${figure(result.upkeep, goal.unit)} | ${peer} | ${result.ratio === null ? '—' : `${result.ratio.toFixed(3)}x`} | ${result.met ? 'MET' : 'NOT MET'} | ${result.load} | ${result.note} |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
