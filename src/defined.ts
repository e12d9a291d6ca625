/** T with every optional field required and `undefined` removed: options after defaults apply. */
export type Defined<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };

/** Drops fields whose value is undefined, so spreading over defaults keeps the defaults. */
export function withoutUndefined<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
