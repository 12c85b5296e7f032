import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CommandRefusedError, type AgentControl, type AgentStatus } from "../../src/control.js";
import { COMMANDS, handleCommand, MAX_REQUEST_BYTES, type CommandName } from "../../src/requests/commands.js";

const STATUS: AgentStatus = { state: "signed_out", since: "2026-11-25T00:00:00.000Z", idle: false };
const ACCOUNT = { username: "alice@example.com", name: "Alice", tenantId: "t", homeAccountId: "h" };

/** The agent's edge: records which command reached it; its "state" is the list of calls. */
function recordingAgent(): AgentControl & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    signIn: () => (calls.push("sign-in"), STATUS),
    cancel: () => (calls.push("cancel"), STATUS),
    signOut: () => (calls.push("sign-out"), Promise.resolve(STATUS)),
    refresh: () => (calls.push("refresh"), Promise.resolve({ account: ACCOUNT })),
    status: () => (calls.push("status"), STATUS),
  };
}

const KNOWN = Object.keys(COMMANDS) as CommandName[];
const encode = (text: string) => new TextEncoder().encode(text);

/** An independent statement of what a valid request is, to judge the router by. */
function expectedValidity(command: string, payload: Uint8Array): { valid: boolean; transaction?: unknown } {
  if (payload.byteLength > MAX_REQUEST_BYTES) return { valid: false };
  let body: unknown = {};
  if (payload.byteLength > 0) {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
    } catch {
      return { valid: false };
    }
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return { valid: false };
      }
    }
  }
  const isObject = typeof body === "object" && body !== null && !Array.isArray(body);
  const tx = isObject ? (body as Record<string, unknown>)["transaction"] : undefined;
  const txValid =
    (typeof tx === "string" && tx.length <= 256) || (typeof tx === "number" && Number.isFinite(tx));
  const echo = txValid ? { transaction: tx } : {};
  if (!KNOWN.includes(command as CommandName)) return { valid: false, ...echo };
  if (!isObject) return { valid: false };
  const keys = Object.keys(body as object);
  const valid = keys.every((k) => k === "transaction") && (tx === undefined || txValid);
  return { valid, ...echo };
}

const commandName = fc.oneof(
  fc.constantFrom(...KNOWN),
  fc.constantFrom("Sign-In", "status ", "__proto__", "constructor", "toString", "hasOwnProperty", ""),
  fc.string({ maxLength: 40 }),
);

const transaction = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);

const payload = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 600 }),
  fc.string({ unit: "binary", maxLength: 400 }).map(encode),
  fc.json({ maxDepth: 3 }).map(encode),
  fc.record({ transaction }, { requiredKeys: [] }).map((body) => encode(JSON.stringify(body))),
  fc
    .tuple(
      fc.record({ transaction }, { requiredKeys: [] }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue()),
    )
    .map(([body, extra]) => encode(JSON.stringify({ ...extra, ...body }))),
  fc.constantFrom(" ", "\n", "{}", "[]", "null", "0", '"x"', "{", '{"transaction":', "\u00ff").map(encode),
  fc.integer({ min: MAX_REQUEST_BYTES - 8, max: MAX_REQUEST_BYTES * 3 }).map((n) => {
    const padding = "x".repeat(Math.max(0, n - 20));
    return encode(JSON.stringify({ transaction: padding }));
  }),
);

describe("command handling (parse, validate, dispatch)", () => {
  it("answers every request, however broken, with a well-formed response and acts only on valid ones", async () => {
    let runs = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(commandName, payload, async (command, bytes) => {
        runs += 1;
        const agent = recordingAgent();
        const outcome = await handleCommand(command, bytes, agent);
        const { response } = outcome;
        const expected = expectedValidity(command, bytes);

        expect(() => JSON.stringify(response)).not.toThrow();
        expect(["ok", "error"]).toContain(response.status);
        if (expected.valid) {
          accepted += 1;
          expect(agent.calls).toStrictEqual([command]);
          expect(response.status).toBe("ok");
          expect(response.data).toBeDefined();
          expect(response.error).toBeUndefined();
        } else {
          // Never a state change: the agent was not even asked.
          expect(agent.calls).toStrictEqual([]);
          expect(response.status).toBe("error");
          expect(typeof response.error).toBe("string");
          expect(response.error?.length).toBeGreaterThan(0);
          expect(response.data).toBeUndefined();
          expect(outcome.malformed).toBe(response.error);
        }
        if ("transaction" in expected) expect(response.transaction).toStrictEqual(expected.transaction);
        else expect(response).not.toHaveProperty("transaction");
      }),
      { numRuns: 10_000 },
    );
    expect(runs).toBeGreaterThanOrEqual(10_000);
    // Both sides of the property were exercised, not only the refusals.
    expect(accepted).toBeGreaterThan(100);
    expect(runs - accepted).toBeGreaterThan(5_000);
  }, 180_000);

  it("passes an agent's refusal on to the requester and hides unexpected failures", async () => {
    const refusing: AgentControl = {
      ...recordingAgent(),
      signIn: () => {
        throw new CommandRefusedError("a code is already shown");
      },
      signOut: () => Promise.reject(new Error("disk on fire: /secret/path")),
    };
    expect((await handleCommand("sign-in", encode('{"transaction":7}'), refusing)).response).toStrictEqual({
      status: "error",
      error: "a code is already shown",
      transaction: 7,
    });
    const failed = await handleCommand("sign-out", new Uint8Array(0), refusing);
    expect(failed.response).toStrictEqual({ status: "error", error: "internal error; see the agent's log" });
    expect(failed.failure).toBeInstanceOf(Error);
  });

  it("names the problem in the error", async () => {
    const agent = recordingAgent();
    const cases: Array<[string, string, string]> = [
      ["status", "not json", "request body is not JSON"],
      ["reboot", "", 'unknown command "reboot"; known: sign-in, cancel, sign-out, refresh, status'],
      ["status", '{"transaction":true}', "invalid request body: transaction: Invalid input"],
      ["status", '{"force":1}', 'invalid request body: Unrecognized key: "force"'],
      ["status", "x".repeat(5000), "request too large: 5000 bytes, at most 4096"],
    ];
    for (const [command, body, error] of cases)
      expect((await handleCommand(command, encode(body), agent)).response.error).toBe(error);
    expect(agent.calls).toStrictEqual([]);
  });
});
