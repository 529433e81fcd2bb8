/** mabeam: an OTP-grade agent runtime for TypeScript. */
export * from './kernel/index.js';
