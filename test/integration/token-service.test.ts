/**
 * The token service as the device's apps use it: another process on the device asks the agent (the shipped
 * bundle) for an access token over its Unix socket, and the identity provider accepts that token.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { command, signIn } from "../helpers/agent-process.js";
import { runCli } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { useTestBed, type UsedTestBed } from "../helpers/fixture.js";

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: {
    accessToken?: string;
    expiresOn?: string;
    scopes?: string[];
    error?: string;
    message?: string;
    scope?: string;
  };
}

/**
 * A separate process, as an app on the device is: `count` concurrent GETs of `path` on the socket; resolves with
 * each answer's status, headers and body.
 */
function appRequests(socketPath: string, path: string, count: number, uid?: number): Promise<Answer[]> {
  const script = `
    const ask = () => new Promise((resolve) => {
      const req = require("node:http").request({ socketPath: process.argv[1], path: process.argv[2] }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          let parsed;
          try { parsed = JSON.parse(body); } catch { parsed = { error: "not_json", message: body.slice(0, 200) }; }
          resolve({ status: res.statusCode, headers: res.headers, body: parsed });
        });
      });
      req.on("error", (e) => resolve({ status: 0, headers: {}, body: { error: e.code } }));
      req.end();
    });
    Promise.all(Array.from({ length: Number(process.argv[3]) }, ask)).then((all) => console.log(JSON.stringify(all)));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script, socketPath, path, String(count)], {
      stdio: ["ignore", "pipe", "inherit"],
      ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("exit", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out) as Answer[]);
      } catch (error) {
        reject(new Error(`the app printed no answer: ${out}`, { cause: error }));
      }
    });
  });
}

async function appRequest(socketPath: string, path: string, uid?: number): Promise<Answer> {
  const [answer] = await appRequests(socketPath, path, 1, uid);
  if (!answer) throw new Error("no answer");
  return answer;
}

/** The provider's own judgement of an access token: its userinfo endpoint, with the token as a bearer. */
async function userinfo(used: UsedTestBed, accessToken: string): Promise<{ status: number; body: string }> {
  const agent = new HttpsAgent({ ca: used.bed.idp.caPem });
  const discovery = JSON.parse(
    await get(`${used.bed.idp.authority}.well-known/openid-configuration`, agent),
  ) as {
    userinfo_endpoint: string;
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      discovery.userinfo_endpoint,
      { agent, headers: { authorization: `Bearer ${accessToken}` } },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function get(url: string, agent: HttpsAgent): Promise<string> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { agent }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString("utf8")));
      res.on("end", () => resolve(body));
    })
      .on("error", reject)
      .end();
  });
}

describe("the token service: access tokens for the device's apps, never on the broker", () => {
  // Access tokens live 60 s: the agent renews one when half its life is gone (the provider's answer decides).
  const used = useTestBed({ idp: { accessTokenTtlSeconds: 60 } });

  async function signedInAgent(overrides: Record<string, string> = {}) {
    const agent = await used.startAgent({ EDGE_SIGNIN_SCOPES: "email", ...overrides });
    const socket = agent.env["EDGE_SIGNIN_TOKEN_SOCKET"] ?? "";
    await eventually(async () => (await appRequest(socket, "/v1/token")).status === 401, "the token socket");
    const authenticated = await signIn(used, agent);
    return { agent, socket, authenticated };
  }

  it("gives an app an access token the provider accepts, for each allowed scope; refuses others naming the setting", async () => {
    const { agent, socket, authenticated } = await signedInAgent({
      EDGE_SIGNIN_TOKEN_SCOPES: "profile",
      EDGE_SIGNIN_LOG_LEVEL: "trace",
    });
    // The sign-in event says what was granted, so an app knows what it can ask for.
    expect(authenticated.scopes).toEqual(expect.arrayContaining(["email", "openid", "profile"]));
    const first = await appRequest(socket, "/v1/token");
    expect(first.status).toBe(200);
    expect(first.headers["cache-control"]).toBe("no-store");
    expect(first.body).toStrictEqual({
      accessToken: expect.stringMatching(/^\S{20,}$/),
      tokenType: "Bearer",
      expiresOn: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      scopes: expect.arrayContaining(["email"]),
    });
    const info = await userinfo(used, first.body.accessToken ?? "");
    expect(info.status).toBe(200);
    expect(JSON.parse(info.body)).toMatchObject({ sub: "alice", email: "alice@example.com" });

    const second = await appRequest(socket, "/v1/token?scope=profile");
    expect(second.status).toBe(200);
    expect(second.body.scopes).toEqual(expect.arrayContaining(["profile"]));
    expect((await userinfo(used, second.body.accessToken ?? "")).status).toBe(200);

    const refused = await appRequest(socket, "/v1/token?scope=api%3A%2F%2Fother%2Fwrite");
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: "scope_not_allowed", scope: "api://other/write" });
    expect(refused.body.message).toContain("EDGE_SIGNIN_TOKEN_SCOPES");

    // The same through the CLI, as `gh auth token` prints it, and as JSON.
    const env = { EDGE_SIGNIN_TOKEN_SOCKET: socket };
    const plain = await runCli(["token"], env);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^\S{20,}\n$/);
    const json = await runCli(["token", "--scope", "profile", "--json"], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      tokenType: "Bearer",
      scopes: expect.arrayContaining(["profile"]),
    });
    const notAllowed = await runCli(["token", "--scope", "api://other/write"], env);
    expect(notAllowed.code).toBe(1);
    expect(notAllowed.stdout).toBe("");
    expect(notAllowed.stderr).toMatch(
      /^edge-signin token: scope_not_allowed: .*EDGE_SIGNIN_TOKEN_SCOPES.*\n$/,
    );

    // No access token in any MQTT payload or log line, at trace level, nor in health.json.
    const tokens = [first.body.accessToken, second.body.accessToken, plain.stdout.trim()];
    const published = [...used.probe.everything(), ...agent.probe.everything()]
      .map((m) => m.payload.toString("utf8"))
      .join("\n");
    const logs = agent.cli.stdout() + agent.cli.stderr();
    const health = readFileSync(join(agent.env["EDGE_SIGNIN_STATE_DIR"] ?? "", "health.json"), "utf8");
    for (const token of tokens) {
      expect(published).not.toContain(token);
      expect(logs).not.toContain(token);
      expect(health).not.toContain(token);
    }
  });

  it("answers 401 before anyone signs in and right after request/sign-out, and drops the cached tokens", async () => {
    const { agent, socket } = await signedInAgent();
    expect((await appRequest(socket, "/v1/token")).status).toBe(200);
    expect((await command(used, agent.topics, "sign-out")).status).toBe("ok");
    const after = await appRequest(socket, "/v1/token");
    expect(after.status).toBe(401);
    expect(after.body.error).toBe("signed_out");
    const cli = await runCli(["token"], { EDGE_SIGNIN_TOKEN_SOCKET: socket });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^edge-signin token: signed_out/);
  });

  it("makes one provider call for 100 concurrent requests, serves a still-valid token while the provider is down, and answers 503 with Retry-After when it has none", async () => {
    const { socket } = await signedInAgent({ EDGE_SIGNIN_TOKEN_SCOPES: "profile" });
    const before = used.bed.idp.requestCount("refresh_token");
    const answers = await appRequests(socket, "/v1/token?scope=email", 100);
    expect(answers.map((a) => a.status)).toStrictEqual(Array.from({ length: 100 }, () => 200));
    expect(new Set(answers.map((a) => a.body.accessToken)).size).toBe(1);
    expect(used.bed.idp.requestCount("refresh_token") - before).toBe(1);

    // The provider goes down: the token is served while it is valid, through the renewal the agent then tries.
    used.bed.idp.failWithRetryAfter("refresh_token", 7, 1000);
    used.afterThisTest(() => used.bed.idp.failWithRetryAfter("refresh_token", 7, 0));
    const failedBefore = used.bed.idp.requestCount("refresh_token");
    const token = answers[0]?.body.accessToken;
    await eventually(
      async () => {
        const served = await appRequest(socket, "/v1/token?scope=email");
        expect(served.status).toBe(200);
        expect(served.body.accessToken).toBe(token);
        return used.bed.idp.requestCount("refresh_token") > failedBefore;
      },
      "a renewal the provider refused",
      60_000,
      500,
    );
    const none = await appRequest(socket, "/v1/token?scope=profile");
    expect(none.status).toBe(503);
    expect(none.body.error).toBe("unavailable");
    expect(Number(none.headers["retry-after"])).toBeGreaterThan(0);
  });

  it("lets only the socket's owner and group connect (mode 0660)", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root, to run an app as another user");
    // A directory everyone may pass through (the operator's, left as it is): only the socket's mode stands.
    const root = await mkdtemp(join(tmpdir(), "edge-signin-apps-"));
    await chmod(root, 0o755);
    used.afterThisTest(() => rm(root, { recursive: true, force: true }));
    const socket = join(root, "token.sock");
    await signedInAgent({ EDGE_SIGNIN_TOKEN_SOCKET: socket });
    expect(((await stat(socket)).mode & 0o777).toString(8)).toBe("660");
    const stranger = await appRequest(socket, "/v1/token", 65534);
    expect(stranger.status).toBe(0);
    expect(stranger.body.error).toBe("EACCES");
    expect((await appRequest(socket, "/v1/token")).status).toBe(200);
  });

  it("lets an app in TOKEN_SOCKET_GROUP in, through directories the agent made for the socket", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root, to run an app as another user");
    // Outside the bed's private directory: the app's user must be able to reach the socket's directories.
    const root = await mkdtemp(join(tmpdir(), "edge-signin-apps-"));
    await chmod(root, 0o755);
    used.afterThisTest(() => rm(root, { recursive: true, force: true }));
    const socket = join(root, "run", "edge-signin", "token.sock");
    await signedInAgent({ EDGE_SIGNIN_TOKEN_SOCKET: socket, EDGE_SIGNIN_TOKEN_SOCKET_GROUP: "65534" });
    const app = await appRequest(socket, "/v1/token", 65534);
    expect(app.status).toBe(200);
    expect(app.body.accessToken).toMatch(/^\S{20,}$/);
    expect(((await stat(join(root, "run"))).mode & 0o777).toString(8)).toBe("750");
  });
});
