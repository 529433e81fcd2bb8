/** Agents and helpers shared by the supervisor and dynamic supervisor tests. */
import { type AnyRef, behaviour, type Metadata, type Runtime, reply, stop } from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';

export interface WorkerArgs {
  readonly id: string;
  readonly log?: string[];
  /** Trap exits, so that a shutdown from the supervisor runs terminate. */
  readonly trap?: boolean;
  /** terminate never settles (only a brutal kill ends the agent). */
  readonly hang?: boolean;
  readonly onStart?: () => void;
  readonly onTerminate?: () => void;
  readonly failInit?: () => boolean;
}

/** cast 'crash' throws (abnormal exit); cast 'finish' stops with reason normal. */
export const Worker = behaviour<WorkerArgs, WorkerArgs, 'ping', string, 'crash' | 'finish'>({
  init(args, ctx) {
    if (args.failInit?.() === true) throw new Error(`init of ${args.id} failed`);
    if (args.trap === true) ctx.trapExit(true);
    args.log?.push(`start:${args.id}`);
    args.onStart?.();
    return args;
  },
  handleCall: (_msg, _from, s) => reply('pong', s),
  handleCast(msg, s) {
    if (msg === 'crash') throw new Error(`${s.id} crashed`);
    return stop('normal', s);
  },
  terminate(_reason, s) {
    s.log?.push(`stop:${s.id}`);
    s.onTerminate?.();
    if (s.hang === true) return new Promise<void>(() => {});
  },
});

/** Crash a child and wait until it is gone; its supervisor sees the EXIT before any later call. */
export async function crash(rt: Runtime, ref: AnyRef): Promise<void> {
  const exited = rt.awaitExit(ref);
  rt.cast(ref, 'crash');
  await exited;
}

/** Resolves with the metadata of the next emission of `event`. */
export async function nextEvent(rt: Runtime, event: readonly string[]): Promise<Metadata> {
  return (await awaitTelemetry(rt, event)).metadata;
}
