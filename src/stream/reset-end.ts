/**
 * The reset code behind an 'end' that is not a real end: a session stream whose peer ended its
 * data and then reset the stream with a non-zero code still ends its readable side, so only
 * `rstCode` tells an aborted exchange from a whole one (version 1's HTTP/2 streams even ended
 * cleanly when their session died). Undefined for a real end and for streams without `rstCode`.
 */
export function resetBehindEnd(stream: object): number | undefined {
  const rstCode = (stream as { rstCode?: number }).rstCode;
  return rstCode !== undefined && rstCode !== 0 ? rstCode : undefined;
}
