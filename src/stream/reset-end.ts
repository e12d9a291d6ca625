/**
 * The reset code behind an 'end' that is not a real end: Node ends an HTTP/2 stream's readable
 * side cleanly even when its session died under it (the socket closed; the stream is closed with
 * CANCEL), so only a non-zero `rstCode` tells a cut body from a whole one. Undefined for a real
 * end and for streams that are not HTTP/2 streams.
 */
export function resetBehindEnd(stream: object): number | undefined {
  const rstCode = (stream as { rstCode?: number }).rstCode;
  return rstCode !== undefined && rstCode !== 0 ? rstCode : undefined;
}
