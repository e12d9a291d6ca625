import { type Stats, unwatchFile, watchFile } from 'node:fs';

/**
 * Polls `paths` every `intervalMs` and, when any of them changed (time, inode or size: a file
 * replaced by rename or a symlink swap is seen too), calls `onChange` with what `load` makes of
 * them now; when `load` throws, `onError` gets the error and nothing changes. Polling, not
 * fs.watch: it sees renames and works the same on every file system. Returns the stop function.
 */
export function watchFilesFor<T>(
  paths: readonly string[],
  intervalMs: number,
  load: () => T,
  onChange: (value: T) => void,
  onError: (error: Error) => void,
): () => void {
  const changed = (current: Stats, previous: Stats): void => {
    if (
      current.mtimeMs === previous.mtimeMs &&
      current.ino === previous.ino &&
      current.size === previous.size
    )
      return;
    let value: T;
    try {
      value = load();
    } catch (error) {
      onError(error as Error);
      return;
    }
    onChange(value);
  };
  const options = { interval: intervalMs, persistent: false };
  for (const path of paths) watchFile(path, options, changed);
  return () => {
    for (const path of paths) unwatchFile(path, changed);
  };
}
