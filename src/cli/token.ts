import { request } from "node:http";
import { ENV_PREFIX, SETTING } from "../config/index.js";

/** A token answer is a few kilobytes; an answer far larger is not one. */
const MAX_ANSWER_BYTES = 256 * 1024;
const TIMEOUT_MS = 30_000;

export interface TokenOptions {
  readonly scope?: readonly string[];
  readonly json?: boolean;
  readonly socket?: string;
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * `edge-signin token`: asks the running agent's token service for an access token, as an app on the device would.
 * Prints the token alone (as `gh auth token` does), or with `--json` the whole answer (as `az account
 * get-access-token`); one line on stderr and exit code 1 when signed out, not allowed or unreachable.
 */
export async function runToken(options: TokenOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const socketPath = options.socket ?? env[`${ENV_PREFIX}TOKEN_SOCKET`] ?? SETTING.TOKEN_SOCKET.default;
  const query = new URLSearchParams((options.scope ?? []).map((scope): [string, string] => ["scope", scope]));
  let answer: Answer;
  try {
    answer = await ask(socketPath, `/v1/token${query.size > 0 ? `?${query.toString()}` : ""}`);
  } catch (error) {
    process.stderr.write(
      `edge-signin token: no agent answers at ${socketPath} (${(error as Error).message}); is it running, and is ${ENV_PREFIX}TOKEN_SOCKET the same?\n`,
    );
    return 1;
  }
  const { status, body } = answer;
  if (status === 200 && typeof body["accessToken"] === "string") {
    process.stdout.write(options.json ? `${JSON.stringify(body, null, 2)}\n` : `${body["accessToken"]}\n`);
    return 0;
  }
  const error = typeof body["error"] === "string" ? body["error"] : `HTTP ${status}`;
  const message = typeof body["message"] === "string" ? body["message"] : "";
  process.stderr.write(
    `edge-signin token: ${error}${message ? `: ${message}` : ""}\n`.replace(/[\p{Cc}]+(?!$)/gu, " "),
  );
  return 1;
}

function ask(socketPath: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) return req.destroy(new Error("answer too large"));
        chunks.push(chunk);
      });
      res.on("end", () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
          if (typeof body !== "object" || body === null) throw new Error("not a JSON object");
          resolve({ status: res.statusCode ?? 0, body: body as Record<string, unknown> });
        } catch (error) {
          reject(new Error(`not a token service answer (${(error as Error).message})`));
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on("error", reject);
    req.end();
  });
}
