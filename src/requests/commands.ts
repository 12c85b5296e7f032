import * as z from "zod/mini";
import "../util/zod-messages.js";
import { CommandRefusedError, type AgentControl } from "../control.js";

/** Requests larger than this are refused unread: nothing the agent accepts comes near it. */
export const MAX_REQUEST_BYTES = 4096;

// z.number() already refuses Infinity and NaN (classic zod's `.finite()` was a no-op).
const transaction = z.union([z.string().check(z.maxLength(256)), z.number()]);

/** Every command's body today: nothing but an optional `transaction` to echo (the Zigbee2MQTT convention). */
const emptyBody = z.strictObject({ transaction: z.optional(transaction) });

interface CommandHandler {
  readonly body: z.ZodMiniType<{ transaction?: string | number | undefined }>;
  run(agent: AgentControl): unknown;
}

/** The commands, one entry each: adding a command is adding a row, not a branch. */
export const COMMANDS = {
  "sign-in": { body: emptyBody, run: (agent) => agent.signIn() },
  cancel: { body: emptyBody, run: (agent) => agent.cancel() },
  "sign-out": { body: emptyBody, run: (agent) => agent.signOut() },
  refresh: { body: emptyBody, run: (agent) => agent.refresh() },
  status: { body: emptyBody, run: (agent) => agent.status() },
} as const satisfies Record<string, CommandHandler>;

export type CommandName = keyof typeof COMMANDS;

export interface CommandResponse {
  readonly status: "ok" | "error";
  readonly data?: unknown;
  readonly error?: string;
  readonly transaction?: string | number;
}

export interface CommandOutcome {
  readonly response: CommandResponse;
  /** Set when the request was refused before reaching the agent (for the log line). */
  readonly malformed?: string;
  /** Set when the agent failed in a way the requester is not told about (for the log). */
  readonly failure?: unknown;
  /** Set when the request was well-formed but not run (rate limit, backlog): why. */
  readonly busy?: string;
  /** Set when the request came from the broker's retained store and was not run. */
  readonly retained?: true;
}

/**
 * The answer to a request delivered with the retain flag. The broker hands a retained message to every new
 * subscription, so on every reconnect and every restart: run, a retained `sign-out` would sign the person out
 * each time the Wi-Fi blinks. A request is run only when it is published while the agent listens.
 */
export const RETAINED_REQUEST_ERROR =
  "not run: this request came from the broker's retained store (it was published with the retain flag), " +
  "which holds history, not requests; publish requests without the retain flag, and clear this one by " +
  "publishing an empty retained message to its topic";

/**
 * Parses, validates and runs one request. Never throws and never rejects: every input, however broken,
 * ends in an `ok` or `error` response. Malformed requests never reach the agent.
 */
export async function handleCommand(
  command: string,
  payload: Uint8Array,
  agent: AgentControl,
  /** Asked once a request is well-formed, before it runs: a reason to answer `busy` instead, or undefined. */
  admit: () => string | undefined = () => undefined,
  /** Delivered with the retain flag (from the broker's retained store): answered, never run. */
  retained = false,
): Promise<CommandOutcome> {
  const refuse = (error: string, tx?: string | number): CommandOutcome => ({
    response: { status: "error", error, ...(tx !== undefined ? { transaction: tx } : {}) },
    malformed: error,
  });
  if (payload.byteLength > MAX_REQUEST_BYTES)
    return refuse(`request too large: ${payload.byteLength} bytes, at most ${MAX_REQUEST_BYTES}`);
  let body: unknown = {};
  if (payload.byteLength > 0) {
    const text = decodeUtf8(payload);
    if (text === undefined) return refuse("request body is not UTF-8 text");
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return refuse("request body is not JSON");
      }
    }
  }
  // Echo the transaction whenever one can be read, also in errors, so the requester can match them up.
  const tx = readTransaction(body);
  if (retained)
    return {
      response: {
        status: "error",
        error: RETAINED_REQUEST_ERROR,
        ...(tx !== undefined ? { transaction: tx } : {}),
      },
      retained: true,
    };
  if (!Object.hasOwn(COMMANDS, command))
    return refuse(`unknown command "${command}"; known: ${Object.keys(COMMANDS).join(", ")}`, tx);
  const handler: CommandHandler = COMMANDS[command as CommandName];
  const parsed = handler.body.safeParse(body);
  if (!parsed.success) return refuse(`invalid request body: ${describe(parsed.error)}`, tx);
  const withTx = (response: CommandResponse): CommandResponse =>
    tx !== undefined ? { ...response, transaction: tx } : response;
  const busy = admit();
  if (busy !== undefined) return { response: withTx({ status: "error", error: busy }), busy };
  try {
    const data = await handler.run(agent);
    return { response: withTx({ status: "ok", data: data ?? {} }) };
  } catch (error) {
    if (error instanceof CommandRefusedError)
      return { response: withTx({ status: "error", error: error.message }) };
    return {
      response: withTx({ status: "error", error: "internal error; see the agent's log" }),
      failure: error,
    };
  }
}

function decodeUtf8(payload: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return undefined;
  }
}

function readTransaction(body: unknown): string | number | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const parsed = transaction.safeParse((body as Record<string, unknown>)["transaction"]);
  return parsed.success ? parsed.data : undefined;
}

function describe(error: z.core.$ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const path = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  return `${path}${issue.message}`;
}
