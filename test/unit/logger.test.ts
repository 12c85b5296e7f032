import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactSensitive, SENSITIVE_KEYS } from "../../src/util/logger.js";

/** The JSON lines a real pino logger writes, collected synchronously. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger("debug", destination) };
}

describe("secrets never reach a log line", () => {
  it("censors every sensitive key at the top of a log object and one level down", async () => {
    const { lines, logger } = capture();
    for (const key of SENSITIVE_KEYS) logger.info({ [key]: "s3cret", nested: { [key]: "s3cret" } }, key);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(SENSITIVE_KEYS.size);
    for (const line of lines) {
      const key = String(line["msg"]);
      expect(line[key]).toBe("[redacted]");
      expect(line["nested"]).toStrictEqual({ [key]: "[redacted]" });
      expect(JSON.stringify(line)).not.toContain("s3cret");
    }
  });

  it("leaves the caller's objects untouched and other fields as they were", () => {
    const account = { username: "alice@example.com", idToken: "eyJ..." };
    const input = { account, state: "signed_in", list: [{ password: "kept: arrays are not walked" }] };
    const output = redactSensitive(input);
    expect(output).toStrictEqual({
      account: { username: "alice@example.com", idToken: "[redacted]" },
      state: "signed_in",
      list: [{ password: "kept: arrays are not walked" }],
    });
    expect(account.idToken).toBe("eyJ...");
    // Nothing to censor: the same object back, no copy.
    const clean = { state: "idle" };
    expect(redactSensitive(clean)).toBe(clean);
  });

  it("keeps an error an error, message and stack included, when one of its fields is censored", async () => {
    const error = Object.assign(new Error("token endpoint said no"), { refresh_token: "s3cret" });
    Object.freeze(error);
    const { lines, logger } = capture();
    logger.error({ err: error }, "refresh failed");
    await new Promise((resolve) => setImmediate(resolve));
    const err = lines[0]?.["err"] as Record<string, unknown>;
    expect(err["message"]).toBe("token endpoint said no");
    expect(err["type"]).toBe("Error");
    expect(String(err["stack"])).toContain("token endpoint said no");
    expect(err["refresh_token"]).toBe("[redacted]");
    expect(error.refresh_token).toBe("s3cret");
  });
});
