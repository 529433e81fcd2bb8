/** Output of the suite: JSON lines for machines, a table for people. */
import { type Fields, labelsOf, lineKey, median, roundFigure } from './harness.js';

/**
 * One workload's outcome: its lines (one for most workloads; several, told apart by their string
 * labels, for one like tune_overhead), each field the median over the runs; or the error that
 * stopped it.
 */
export interface Result {
  workload: string;
  runs: number;
  lines: Fields[] | null;
  error: string | null;
}

/**
 * Combine the runs of one line: the median of each numeric field, the labels kept. Every run
 * reports the same fields; a field missing from some run is taken over the runs that have it.
 */
export function medianFields(runs: readonly Fields[]): Fields {
  const names = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Fields = {};
  for (const name of names) {
    const label = runs.map((r) => r[name]).find((v): v is string => typeof v === 'string');
    if (label !== undefined) {
      out[name] = label;
      continue;
    }
    const values = runs.map((r) => r[name]).filter((v): v is number => typeof v === 'number');
    out[name] = median(values);
  }
  return out;
}

/**
 * Combine the runs of a workload, each a list of lines: lines with the same labels (lineKey) are
 * the same line, combined by medianFields; lines in order of first appearance.
 */
export function medianLines(runs: readonly (readonly Fields[])[]): Fields[] {
  const byKey = new Map<string, Fields[]>();
  for (const run of runs) {
    for (const line of run) {
      const key = lineKey(line);
      const list = byKey.get(key);
      if (list === undefined) byKey.set(key, [line]);
      else list.push(line);
    }
  }
  return [...byKey.values()].map(medianFields);
}

/**
 * The BENCH_SPEC line for one line of a workload: `{"workload":"call_roundtrip","ns_per_op":183.2}`,
 * labels as they are (`{"workload":"tune_overhead","sampler":"tpe","us_per_trial":41.2}`).
 */
export function jsonLine(workload: string, fields: Fields): string {
  const obj: Record<string, string | number> = { workload };
  for (const [name, value] of Object.entries(fields))
    obj[name] = typeof value === 'string' ? value : roundFigure(value);
  return JSON.stringify(obj);
}

/** `tune_overhead{sampler=tpe}`; the bare workload name for a line without labels. */
export function lineName(workload: string, fields: Fields): string {
  const labels = Object.entries(labelsOf(fields));
  return labels.length === 0 ? workload : `${workload}{${labels.map(([k, v]) => `${k}=${v}`).join(',')}}`;
}

/**
 * A readable table: one row per figure, the workload name on its line's first row (with the
 * line's labels, `tune_overhead{sampler=tpe}`, when it has any).
 */
export function table(results: readonly Result[]): string {
  const rows: [string, string, string][] = [['workload', 'field', 'value']];
  for (const r of results) {
    if (r.lines === null) {
      rows.push([r.workload, 'FAILED', r.error ?? '']);
      continue;
    }
    for (const line of r.lines) {
      let first = true;
      for (const [name, value] of Object.entries(line)) {
        if (typeof value === 'string') continue;
        rows.push([first ? lineName(r.workload, line) : '', name, formatValue(value)]);
        first = false;
      }
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
