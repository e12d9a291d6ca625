/**
 * Methods whose effect is the same however often a request is sent (RFC 9110 §9.2.2): the only
 * ones sent again, once, when a connection broke under them before any answer.
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PUT',
  'DELETE',
]);
