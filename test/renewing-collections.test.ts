import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RenewingMap, RenewingSet } from '../src/renewing-collections.js';

// Operations on keys from a small range, so that keys come back after being deleted.
const operation = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      op: fc.constant('set' as const),
      key: fc.integer({ min: 0, max: 150 }),
      value: fc.integer(),
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 150 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
);

describe('renewing collections behave as Map and Set across their rebuilds', () => {
  test('RenewingMap: same answers, sizes and insertion order as a Map, over hundreds of insertions', () => {
    fc.assert(
      fc.property(fc.array(operation, { minLength: 200, maxLength: 1200 }), (operations) => {
        const model = new Map<number, number>();
        const subject = new RenewingMap<number, number>();
        for (const step of operations) {
          if (step.op === 'set') {
            model.set(step.key, step.value);
            subject.set(step.key, step.value);
          } else if (step.op === 'delete') {
            assert.equal(subject.delete(step.key), model.delete(step.key));
          } else {
            model.clear();
            subject.clear();
          }
          assert.equal(subject.size, model.size);
        }
        assert.deepEqual([...subject], [...model]);
        assert.deepEqual([...subject.keys()], [...model.keys()]);
        assert.deepEqual([...subject.values()], [...model.values()]);
        for (let key = 0; key <= 150; key++) {
          assert.equal(subject.has(key), model.has(key));
          assert.equal(subject.get(key), model.get(key));
        }
      }),
      { numRuns: 50 },
    );
  });

  test('RenewingSet: same members and order as a Set; deleting while iterating is safe', () => {
    const model = new Set<number>();
    const subject = new RenewingSet<number>();
    for (let i = 0; i < 5000; i++) {
      const value = (i * 7919) % 300;
      if (i % 3 === 2) {
        assert.equal(subject.delete(value), model.delete(value));
      } else {
        model.add(value);
        subject.add(value);
      }
      assert.equal(subject.size, model.size);
    }
    assert.deepEqual([...subject], [...model]);
    for (const value of subject) if (value % 2 === 0) subject.delete(value);
    for (const value of model) if (value % 2 === 0) model.delete(value);
    assert.deepEqual([...subject.values()], [...model.values()]);
  });
});
