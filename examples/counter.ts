/**
 * The README's example: a typed counter agent. Run: `npx tsc -p tsconfig.run.json && node build/examples/counter.js`.
 */
import { pathToFileURL } from 'node:url';
import { behaviour, Runtime, reply, stop } from '../src/index.js';

type Call = { type: 'get' } | { type: 'add'; n: number };
type Cast = { type: 'reset' };

export const Counter = behaviour<number, number, Call, number, Cast>({
  init: (start) => start,
  handleCall(msg, _from, count) {
    if (msg.type === 'get') return reply(count, count);
    if (msg.n < 0) return stop(new RangeError(`negative increment ${msg.n}`), count);
    return reply(count + msg.n, count + msg.n);
  },
  handleCast: (_msg, _count) => 0,
});

export async function main(
  log: (line: string) => void = console.log,
): Promise<{ afterAdd: number; afterReset: number }> {
  const runtime = new Runtime();
  const counter = await runtime.spawn(Counter, 10);
  const afterAdd = await runtime.call(counter, { type: 'add', n: 5 });
  log(`after add: ${afterAdd}`);
  runtime.cast(counter, { type: 'reset' });
  const afterReset = await runtime.call(counter, { type: 'get' });
  log(`after reset: ${afterReset}`);
  await runtime.shutdown();
  return { afterAdd, afterReset };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
