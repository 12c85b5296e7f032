import { setTimeout as sleep } from "node:timers/promises";

/**
 * The one wait of the test suite: polls `read` until it gives a value (anything but `undefined` or `false`), every
 * `everyMs`, and fails naming `what` (a string, or a function for text that is read only on failure) after
 * `timeoutMs`. Bounded in time by construction; every test that waits for something goes through here.
 */
export async function eventually<T>(
  read: () => T | undefined | false | Promise<T | undefined | false>,
  what: string | (() => string),
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `gave up waiting after ${timeoutMs} ms for ${typeof what === "string" ? what : what()}`,
      );
    }
    await sleep(everyMs);
  }
}

/**
 * Resolves once a process's output (`read()`) holds what `test` looks for; fails with the last of the output after
 * `timeoutMs`.
 */
export function outputShows<T>(
  read: () => string,
  test: (text: string) => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  return eventually(
    () => test(read()),
    () => `output so far:\n${read().slice(-4000)}`,
    timeoutMs,
    100,
  );
}
