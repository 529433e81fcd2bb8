/** The MABEAM agent layer: universal variables (agent specs, the agent registry and pool come next). */
export * from './variables.js';
