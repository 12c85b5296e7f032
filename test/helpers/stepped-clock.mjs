// A test preload (`node --import`) for an agent process whose wall clock is stepped while it runs, as NTP steps
// a clock without a battery: each SIGUSR2 moves `Date` by the next number of ms in EDGE_SIGNIN_TEST_CLOCK_STEPS_MS
// (comma separated) and says so on stderr. performance.now() and timers are untouched, as they are by a real step.
// Loaded only by tests (test/integration/clock-step.test.ts); nothing in the product reads that variable.
import process from "node:process";

const RealDate = Date;
const steps = (process.env["EDGE_SIGNIN_TEST_CLOCK_STEPS_MS"] ?? "").split(",").filter(Boolean).map(Number);
let offset = 0;

class SteppedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...args);
  }

  static now() {
    return RealDate.now() + offset;
  }
}

globalThis.Date = SteppedDate;
process.on("SIGUSR2", () => {
  offset += steps.shift() ?? 0;
  process.stderr.write(`clock stepped: ${offset} ms\n`);
});
