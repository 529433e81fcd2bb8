/** The kernel: agents, mailboxes, scheduler, call/cast/send, links and monitors, timers, clock. */
export {
  type Behaviour,
  behaviour,
  type CallResult,
  type CastResult,
  type DownMessage,
  type ExitMessage,
  type ExitReason,
  type From,
  isNormalExit,
  type MonitorRef,
  noreply,
  type RefOf,
  reply,
  type SystemMessage,
  stop,
} from './behaviour.js';
export { type Clock, RealClock, type TimerHandle, VirtualClock } from './clock.js';
export type { AgentContext, Dest, Name } from './context.js';
export * from './errors.js';
export { AgentRef, type AnyRef, comparePids, isPid, type Pid, pidEquals, pidKey } from './pid.js';
export {
  type AgentInfo,
  type AgentStatus,
  type MailboxOptions,
  type OverflowPolicy,
  Runtime,
  type RuntimeOptions,
  type SpawnOptions,
  type TimerRef,
} from './runtime.js';
export { Priority, type PriorityName } from './scheduler.js';
export { estimateSize } from './size.js';
export {
  type EventName,
  type Measurements,
  type Metadata,
  Telemetry,
  type TelemetryHandler,
} from './telemetry.js';
