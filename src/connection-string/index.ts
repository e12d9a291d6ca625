export { formatConnectionString, hostForUrl } from './format.js';
export { parseConnectionString } from './parse.js';
export { type ConnectionString, isTls, TRANSPORTS, type Transport } from './types.js';
