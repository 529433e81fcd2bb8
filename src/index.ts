/** mabeam: an OTP-grade agent runtime for TypeScript, and the services built on it. */
export * from './agents/index.js';
export * from './coordination/index.js';
export * from './economics/index.js';
export * from './foundation/index.js';
export * from './kernel/index.js';
export * from './tune/index.js';
