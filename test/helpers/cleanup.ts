/**
 * Runs every cleanup step, in order, even when one fails or its resource was never made (a setup
 * that failed half-way leaves some undefined): a server left open would keep the test file alive
 * until its timeout. Rethrows the first failure once all steps ran.
 */
export async function cleanUp(...steps: (() => unknown)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}
