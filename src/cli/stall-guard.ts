/**
 * Exit code when a command's work ran out before it finished: a promise nobody will ever settle (README: Exit codes).
 * Without this guard Node ends such a process with code 13 ("unsettled top-level await") and, in the bundle,
 * nothing on stderr: the silent exit once seen on 3.1.1-only brokers.
 */
export const STALLED_EXIT_CODE = 70;

/**
 * Arms the guard for an entry point's top-level await: if the event loop empties first, one line on stderr and exit
 * code 70. Returns the disarm, to call once the command has its result.
 */
export function guardAgainstStall(): () => void {
  const stalled = () => {
    process.stderr.write(
      "edge-signin: internal error: the command stopped with nothing left to do and no result; please report it\n",
    );
    process.exit(STALLED_EXIT_CODE);
  };
  process.once("beforeExit", stalled);
  return () => process.off("beforeExit", stalled);
}
