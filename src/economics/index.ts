/** MABEAM economics: auctions as session agents, pure mechanism functions, a durable ledger. */
export * from './auction.js';
export * from './ledger.js';
export * from './mechanisms.js';
export * from './marketplace.js';
export * from './orderbook.js';
