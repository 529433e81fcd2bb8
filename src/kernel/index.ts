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
export { type AgentContext, type Dest, type Name, type UntypedDest, VIA, type Via } from './context.js';
export {
  type DynamicChildInfo,
  type DynamicChildSpec,
  DynamicSupervisor,
  DynamicSupervisorBehaviour,
  type DynamicSupervisorCall,
  type DynamicSupervisorDest,
  type DynamicSupervisorRef,
  type DynamicSupervisorSpec,
  startDynamicSupervisor,
} from './dynamic-supervisor.js';
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
  type BehaviourStart,
  type Caller,
  type ChildCounts,
  type ChildId,
  type ChildInfo,
  type ChildSpawnOptions,
  type ChildSpec,
  type ChildSpecExtras,
  type ChildStart,
  type ChildStartContext,
  type ChildStatus,
  type ChildType,
  type CustomStart,
  type RestartIntensity,
  type RestartType,
  type ShutdownPolicy,
  type StartSite,
  type Strategy,
  SUPERVISOR_DEFAULTS,
  Supervisor,
  SupervisorBehaviour,
  type SupervisorCall,
  type SupervisorDest,
  type SupervisorRef,
  type SupervisorSpec,
  type SupervisorStartOptions,
  startSupervisor,
} from './supervisor.js';
export {
  type EventName,
  type Measurements,
  type Metadata,
  Telemetry,
  type TelemetryHandler,
} from './telemetry.js';
