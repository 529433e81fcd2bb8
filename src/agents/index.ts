/** The MABEAM agent layer: agent specs and the agent registry/supervisor, the agent pool, universal variables. */
export * from './agent-pool.js';
export * from './agent-registry.js';
export * from './variables.js';
