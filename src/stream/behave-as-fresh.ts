import type { Duplex } from 'node:stream';

/**
 * Makes a socket we paused (to put back bytes read past a handshake) behave like a fresh one for
 * whoever takes it next: Node ignores a new 'data' listener on an explicitly paused stream, so the
 * first 'data' listener resumes it here. pipe() resumes by itself.
 */
export function behaveAsFresh(socket: Duplex): void {
  const onNewListener = (event: string | symbol): void => {
    if (event !== 'data') return;
    socket.off('newListener', onNewListener);
    process.nextTick(() => {
      if (socket.listenerCount('data') > 0) socket.resume();
    });
  };
  socket.on('newListener', onNewListener);
}
