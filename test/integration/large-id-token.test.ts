import { stat } from "node:fs/promises";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import { signIn } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

/** 40,000 group ids make an ID token of about 2 MB (see DevIdentityProvider.setIdTokenGroups). */
const GROUPS = 40_000;

describe("a person in tens of thousands of groups (shipped bundle)", () => {
  const used = useTestBed({ idp: { idTokenGroups: GROUPS } });
  const { bed, probe } = used;

  it("stays signed in across a restart with a 2 MB ID token", async () => {
    const env = bed.env({ EDGE_SIGNIN_PUBLISH_ID_TOKEN: "true" });
    const first = await used.startAgent(env);
    const signedIn = await signIn(used, first, "erin");
    expect(signedIn.idToken?.length).toBeGreaterThan(2_000_000);
    expect((decodeJwt(signedIn.idToken ?? "")["groups"] as unknown[]).length).toBe(GROUPS);
    expect((signedIn.claims["groups"] as unknown[]).length).toBe(GROUPS);
    expect(await first.stop()).toBe(0);
    // The scenario: a token cache well past the old 1 MiB read limit.
    const cache = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", CACHE_FILE);
    expect((await stat(cache)).size).toBeGreaterThan(2_000_000);

    const again = await used.startAgent({
      EDGE_SIGNIN_DEVICE_ID: env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
      EDGE_SIGNIN_STATE_DIR: env["EDGE_SIGNIN_STATE_DIR"] ?? "",
    });
    const renewed = await again.event("authenticated");
    expect(renewed).toMatchObject({ method: "refresh", verified: true, claims: { sub: "erin" } });
    expect((renewed.claims["groups"] as unknown[]).length).toBe(GROUPS);
    expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
    expect(
      again.logLines().filter((line) => /moved aside|token cache unreadable/.test(String(line["msg"]))),
    ).toStrictEqual([]);
  });
});
