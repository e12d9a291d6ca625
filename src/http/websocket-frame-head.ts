/**
 * The start of an RFC 6455 frame header: the payload length (7, 16 or 64 bits) and where the
 * masking key (if any) begins. Shared by the relay's streaming WebSocket end and the inspector's
 * frame reader. Returns undefined while more bytes are needed, a reason for a length past 2^53.
 */
export function frameLength(header: Buffer): { length: number; at: number } | string | undefined {
  if (header.length < 2) return undefined;
  const short = (header[1] as number) & 0x7f;
  if (short < 126) return { length: short, at: 2 };
  if (short === 126) return header.length < 4 ? undefined : { length: header.readUInt16BE(2), at: 4 };
  if (header.length < 10) return undefined;
  const long = header.readBigUInt64BE(2);
  if (long > BigInt(Number.MAX_SAFE_INTEGER)) return 'a frame length beyond 2^53';
  return { length: Number(long), at: 10 };
}
