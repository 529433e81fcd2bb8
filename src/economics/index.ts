/** MABEAM economics: allocation, auctions as session agents, pure mechanism functions, an order book and marketplace, reputation, a durable ledger. */

export * from './allocation.js';
export * from './auction.js';
export * from './ledger.js';
export * from './marketplace.js';
export * from './mechanisms.js';
export * from './orderbook.js';
export * from './reputation.js';
