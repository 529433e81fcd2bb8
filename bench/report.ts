/** Output of the suite: JSON lines for machines, a table for people. */
import { type Fields, median, roundFigure } from './harness.js';

/** One workload's outcome: its fields (medians over the runs), or the error that stopped it. */
export interface Result {
  workload: string;
  runs: number;
  fields: Fields | null;
  error: string | null;
}

/**
 * Combine the runs of one workload: the median of each field. Every run reports the same
 * fields; a field missing from some run is taken over the runs that have it.
 */
export function medianFields(runs: readonly Fields[]): Fields {
  const names = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Fields = {};
  for (const name of names) {
    const values = runs.map((r) => r[name]).filter((v): v is number => v !== undefined);
    out[name] = median(values);
  }
  return out;
}

/** The BENCH_SPEC line for one workload: `{"workload":"call_roundtrip","ns_per_op":183.2}`. */
export function jsonLine(workload: string, fields: Fields): string {
  const obj: Record<string, string | number> = { workload };
  for (const [name, value] of Object.entries(fields)) obj[name] = roundFigure(value);
  return JSON.stringify(obj);
}

/** A readable table: one row per field, the workload name on its first row. */
export function table(results: readonly Result[]): string {
  const rows: [string, string, string][] = [['workload', 'field', 'value']];
  for (const r of results) {
    if (r.fields === null) {
      rows.push([r.workload, 'FAILED', r.error ?? '']);
      continue;
    }
    let first = true;
    for (const [name, value] of Object.entries(r.fields)) {
      rows.push([first ? r.workload : '', name, formatValue(value)]);
      first = false;
    }
  }
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const w2 = Math.max(...rows.map((r) => r[2].length));
  const lines = rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c.padStart(w2)}`);
  lines.splice(1, 0, '-'.repeat(w0 + w1 + w2 + 4));
  return lines.join('\n');
}

function formatValue(value: number): string {
  return roundFigure(value).toLocaleString('en-US', { maximumFractionDigits: 4 });
}
