import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Agent } from "../../src/agent.js";
import { CacheKeyError, CACHE_FILE } from "../../src/auth/cache-store.js";
import { StateDirLockedError } from "../../src/storage/state-lock.js";
import { loadConfig } from "../../src/config/index.js";
import { startDevIdentityProvider } from "../../src/dev/identity-provider.js";
import { approveSignIn } from "../../src/dev/person.js";
import type { Authenticated } from "../../src/events.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { runCli } from "../helpers/cli.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";

const KEY = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="; // 32 bytes, base64
const OTHER_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; // 32 bytes, hex

const stateDirOf = (env: Record<string, string>) => env["EDGE_SIGNIN_STATE_DIR"] ?? "";
const deviceIdOf = (env: Record<string, string>) => env["EDGE_SIGNIN_DEVICE_ID"] ?? "";

describe("staying signed in: token cache in STATE_DIR", () => {
  const { bed, probe, newAgent } = useTestBed();

  async function startAgent(env: Record<string, string>, log = captureLogger()): Promise<Agent> {
    const agent = newAgent(loadConfig(env), log.logger);
    await agent.start();
    return agent;
  }

  /** Starts an agent, has alice sign in with the code from the display, stops the agent. */
  async function signInOnce(env: Record<string, string>): Promise<void> {
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    const agent = await startAgent(env);
    const signedIn = new Promise<Authenticated>((resolve) => agent.once("authenticated", resolve));
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });
    expect((await signedIn).method).toBe("device_code");
    await agent.stop();
  }

  it("signs in again after a restart without a prompt, with method refresh", async () => {
    const env = bed.env();
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await signInOnce(env);

    const cacheFile = join(stateDirOf(env), CACHE_FILE);
    expect((await stat(cacheFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(cacheFile, "utf8"))).toMatchObject({ RefreshToken: expect.any(Object) });

    const log = captureLogger();
    const prompts: unknown[] = [];
    const agent = newAgent(loadConfig(env), log.logger);
    agent.on("prompt", (p) => prompts.push(p));
    const again = new Promise<Authenticated>((resolve) => agent.once("authenticated", resolve));
    await agent.start();

    const event = (
      await probe.next(
        topics.event("authenticated"),
        (m) => m.json<{ method: string }>().method === "refresh",
      )
    ).json<EventPayload<"authenticated">>();
    expect(event).toMatchObject({
      type: "authenticated",
      method: "refresh",
      claims: expect.objectContaining({ sub: "alice", iss: bed.idp.issuer }),
      account: expect.objectContaining({ name: "Alice", username: "alice@example.com" }),
    });
    expect((await again).method).toBe("refresh");
    const state = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    // Who it is goes in the event (above); the retained state, which displays read, carries no account by default.
    expect(state.json<StatePayload>().account).toBe(undefined);
    expect(prompts).toStrictEqual([]);
    // No code went to the display in this run: every display message since the first sign-in is a clear.
    const displays = probe.all(topics.display);
    expect(displays.at(-1)?.payload.length).toBe(0);
    expect(agent.state.state).toBe("signed_in");
    expect(log.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });

  it("publishes signed_out and shows a new code when the provider rejects the refresh token", async () => {
    const env = bed.env();
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await signInOnce(env);
    bed.idp.revokeRefreshTokens();

    await startAgent(env);
    const signedOut = (await probe.next(topics.event("signed_out"))).json<EventPayload<"signed_out">>();
    expect(signedOut).toStrictEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      type: "signed_out",
      deviceId: deviceIdOf(env),
      at: expect.any(String),
      reason: "rejected",
      message: expect.stringContaining("invalid_grant"),
    });
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(display.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user");
  });

  it("keeps the session alive with silent refreshes, and starts over when one is rejected", async () => {
    const env = bed.env({ EDGE_SIGNIN_REFRESH_INTERVAL_SECONDS: "1" });
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await signInOnce(env);
    const agent = await startAgent(env);
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    const before = bed.idp.tokenRequests();
    await expect.poll(() => bed.idp.tokenRequests(), { timeout: 15_000 }).toBeGreaterThanOrEqual(before + 2);
    expect(agent.state.state).toBe("signed_in");

    bed.idp.revokeRefreshTokens();
    const signedOut = (await probe.next(topics.event("signed_out"))).json<EventPayload<"signed_out">>();
    expect(signedOut.reason).toBe("rejected");
    await probe.next(topics.display, (m) => m.payload.length > 0);
  });

  it("does not sign out when the provider cannot be reached: state error, retries, session kept", async () => {
    // A provider of its own, to take it away after the sign-in.
    // Its own certificate directory: the bed's CA file must stay the bed's provider's.
    const idp = await startDevIdentityProvider({
      pollIntervalSeconds: 1,
      certDir: join(bed.stateDir, "idp-2"),
    });
    const env = bed.env({ EDGE_SIGNIN_AUTHORITY: idp.authority, EDGE_SIGNIN_IDP_CA_FILE: idp.caFile });
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    const agent = await startAgent(env);
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: idp.caPem, login: "alice" });
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    await agent.stop();
    await idp.close();
    const cacheBefore = await readFile(join(stateDirOf(env), CACHE_FILE), "utf8");

    const prompts: unknown[] = [];
    const offline = newAgent(loadConfig(env));
    offline.on("prompt", (p) => prompts.push(p));
    await offline.start();
    const failures = [
      (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>(),
      (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>(),
    ];
    expect(failures.map((f) => f.reason)).toStrictEqual(["network", "network"]);
    const error = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "error");
    expect(error.json<StatePayload>()).toMatchObject({ reason: "network", retryAt: expect.any(String) });
    expect(probe.all(topics.event("signed_out"))).toStrictEqual([]);
    expect(prompts).toStrictEqual([]);
    expect(await readFile(join(stateDirOf(env), CACHE_FILE), "utf8")).toBe(cacheBefore);
    // Signing out by command still works while the provider is away: it only touches the cache.
    expect(offline.status()).toMatchObject({ state: "error", idle: false });
    await offline.signOut();
    const signedOut = (await probe.next(topics.event("signed_out"))).json<EventPayload<"signed_out">>();
    expect(signedOut.reason).toBe("requested");
    const cache = JSON.parse(await readFile(join(stateDirOf(env), CACHE_FILE), "utf8")) as Record<
      string,
      object
    >;
    expect(cache["RefreshToken"]).toStrictEqual({});
  });

  it("stays signed in when a keep-alive refresh cannot reach the provider, and says so to `refresh`", async () => {
    const idp = await startDevIdentityProvider({
      pollIntervalSeconds: 1,
      certDir: join(bed.stateDir, "idp-3"),
    });
    const env = bed.env({
      EDGE_SIGNIN_AUTHORITY: idp.authority,
      EDGE_SIGNIN_IDP_CA_FILE: idp.caFile,
      EDGE_SIGNIN_REFRESH_INTERVAL_SECONDS: "1",
      EDGE_SIGNIN_HTTP_TIMEOUT_SECONDS: "2",
    });
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    const log = captureLogger();
    const agent = await startAgent(env, log);
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: idp.caPem, login: "alice" });
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    await idp.close();

    await expect
      .poll(() => log.lines().filter((l) => String(l["msg"]).startsWith("session refresh failed")).length, {
        timeout: 20_000,
      })
      .toBeGreaterThanOrEqual(2);
    await expect(agent.refresh()).rejects.toThrow(/^refresh failed, still signed in: /);
    expect(agent.status()).toMatchObject({ state: "signed_in", account: { name: "Alice" } });
    expect(probe.all(topics.event("signed_out"))).toStrictEqual([]);
  });

  it("moves a corrupt cache aside, warns, and starts signed out", async () => {
    const env = bed.env();
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await signInOnce(env);
    const cacheFile = join(stateDirOf(env), CACHE_FILE);
    const whole = await readFile(cacheFile, "utf8");
    await writeFile(cacheFile, whole.slice(0, Math.floor(whole.length / 2))); // truncated mid-write

    const log = captureLogger();
    await startAgent(env, log);
    await probe.next(topics.display, (m) => m.payload.length > 0);
    const files = await readdir(stateDirOf(env));
    expect(files.filter((f) => f.startsWith(`${CACHE_FILE}.corrupt-`))).toHaveLength(1);
    expect(
      log.lines().find((l) => l["msg"] === "token cache unreadable; moved aside, starting signed out"),
    ).toMatchObject({
      level: 40,
      problem: "not JSON (truncated or damaged)",
    });
  });

  it("encrypts the cache with CACHE_KEY and signs in again from it", async () => {
    const env = bed.env({ EDGE_SIGNIN_CACHE_KEY: KEY });
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await signInOnce(env);
    const text = await readFile(join(stateDirOf(env), CACHE_FILE), "utf8");
    expect(JSON.parse(text)).toStrictEqual({
      format: "edge-signin-token-cache",
      version: 1,
      alg: "A256GCM",
      kcv: expect.stringMatching(/^[0-9a-f]{16}$/),
      iv: expect.any(String),
      tag: expect.any(String),
      ciphertext: expect.any(String),
    });
    expect(text).not.toMatch(/RefreshToken|alice|secret/);

    await startAgent(env);
    await probe.next(topics.event("authenticated"), (m) => m.json<{ method: string }>().method === "refresh");
  });

  it("refuses to start with a wrong key or no key for an encrypted cache, and leaves the cache alone", async () => {
    const env = bed.env({ EDGE_SIGNIN_CACHE_KEY: KEY });
    await signInOnce(env);
    const cacheFile = join(stateDirOf(env), CACHE_FILE);
    const sealed = await readFile(cacheFile, "utf8");

    const wrong = new Agent({
      config: loadConfig({ ...env, EDGE_SIGNIN_CACHE_KEY: OTHER_KEY }),
      logger: captureLogger().logger,
    });
    const failure = await wrong.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CacheKeyError);
    expect((failure as Error).message).toMatch(
      /^EDGE_SIGNIN_CACHE_KEY: this key does not open the token cache/,
    );

    const withoutKey = { ...env };
    delete withoutKey["EDGE_SIGNIN_CACHE_KEY"];
    const keyless = new Agent({ config: loadConfig(withoutKey), logger: captureLogger().logger });
    await expect(keyless.start()).rejects.toThrow(/^EDGE_SIGNIN_CACHE_KEY: the token cache .* is encrypted/);

    // The real CLI: one line naming the variable, exit code 2, as for any configuration mistake.
    const cli = await runCli(["agent"], {
      ...env,
      EDGE_SIGNIN_CACHE_KEY: OTHER_KEY,
      EDGE_SIGNIN_LOG_LEVEL: "silent",
    });
    expect(cli.code).toBe(2);
    expect(cli.stderr.trim().split("\n")).toStrictEqual([
      `edge-signin: EDGE_SIGNIN_CACHE_KEY: this key does not open the token cache ${cacheFile} (it was written with another key)`,
    ]);

    expect(await readFile(cacheFile, "utf8")).toBe(sealed);
    // The refused agents let go of the state directory: the right key still works.
    const topics = deviceTopics("edge-signin", deviceIdOf(env));
    await startAgent(env);
    await probe.next(topics.event("authenticated"), (m) => m.json<{ method: string }>().method === "refresh");
  });

  it("allows one agent per state directory", async () => {
    const env = bed.env();
    const first = await startAgent(env);
    const second = new Agent({ config: loadConfig(env), logger: captureLogger().logger });
    await expect(second.start()).rejects.toBeInstanceOf(StateDirLockedError);

    const cli = await runCli(["agent"], { ...env, EDGE_SIGNIN_LOG_LEVEL: "silent" });
    expect(cli.code).toBe(3);
    expect(cli.stderr.trim().split("\n")).toStrictEqual([
      `edge-signin: another edge-signin agent (pid ${process.pid}) is using the state directory ${join(
        stateDirOf(env),
        "agent.lock",
      )}; give each agent its own EDGE_SIGNIN_STATE_DIR`,
    ]);

    // A lock left by a dead process (SIGKILL, power cut) is taken over.
    await first.stop();
    await writeFile(join(stateDirOf(env), "agent.lock"), "999999\n");
    const third = await startAgent(env);
    expect(third.state.state).not.toBe("error");
  });
});
