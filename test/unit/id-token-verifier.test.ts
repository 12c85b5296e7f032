import { generateKeyPair, exportJWK, SignJWT, type JWK } from "jose";
import { describe, expect, it, vi } from "vitest";
import { IdTokenError, IdTokenVerifier } from "../../src/auth/id-token-verifier.js";
import { IdpUnreachableError } from "../../src/auth/network-client.js";

const ISSUER_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0";
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

async function signingKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } as JWK };
}

type Key = Awaited<ReturnType<typeof signingKey>>;

function token(key: Key, claims: Record<string, unknown>) {
  return new SignJWT({
    sub: "alice",
    tid: TENANT,
    iss: ISSUER_TEMPLATE.replace("{tenantid}", TENANT),
    aud: "client-1",
    ...claims,
  })
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(key.privateKey);
}

/** The JWKS endpoint is the unit's edge: a GET that serves whatever keys the provider publishes now. */
function provider(keys: JWK[]) {
  const state = { keys, fetches: 0, down: false, status: 200 };
  const fetch = (url: string) => {
    state.fetches += 1;
    if (state.down)
      return Promise.reject(new IdpUnreachableError(`GET ${new URL(url).origin}: connect ECONNREFUSED`));
    return Promise.resolve({ status: state.status, body: { keys: state.keys } });
  };
  return { state, fetch };
}

function verifier(getJson: ReturnType<typeof provider>["fetch"]) {
  return new IdTokenVerifier({
    issuer: ISSUER_TEMPLATE,
    jwksUri: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
    audience: "client-1",
    clockToleranceSeconds: 60,
    getJson,
  });
}

async function failure(promise: Promise<unknown>): Promise<IdTokenError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof IdTokenError)) throw new Error(`expected an IdTokenError, got ${String(error)}`);
  return error;
}

describe("ID token verification", () => {
  it("accepts a token of the tenant named in a multi-tenant issuer template", async () => {
    const key = await signingKey("k1");
    const claims = await verifier(provider([key.jwk]).fetch).verify(await token(key, {}));
    expect(claims).toMatchObject({ sub: "alice", iss: `https://login.microsoftonline.com/${TENANT}/v2.0` });
  });

  it("refuses another audience, another issuer, a missing token", async () => {
    const key = await signingKey("k1");
    const check = verifier(provider([key.jwk]).fetch);
    expect((await failure(check.verify(await token(key, { aud: "someone-else" })))).reason).toBe(
      "invalid_token",
    );
    expect((await failure(check.verify(await token(key, { iss: "https://evil.example/v2.0" })))).reason).toBe(
      "invalid_token",
    );
    expect((await failure(check.verify(undefined))).reason).toBe("invalid_token");
  });

  it("requires azp = this client when a token names several audiences (OpenID Connect Core 3.1.3.7)", async () => {
    const key = await signingKey("k1");
    const check = verifier(provider([key.jwk]).fetch);
    const several = ["other-client", "client-1"];
    expect((await failure(check.verify(await token(key, { aud: several })))).message).toBe(
      "the ID token names several audiences but no authorized party (azp); OpenID Connect Core 3.1.3.7 requires one",
    );
    expect(
      (await failure(check.verify(await token(key, { aud: several, azp: "other-client" })))).reason,
    ).toBe("invalid_token");
    // An azp that is present must be this client, even with a single audience.
    expect((await failure(check.verify(await token(key, { azp: "other-client" })))).reason).toBe(
      "invalid_token",
    );
    expect(await check.verify(await token(key, { aud: several, azp: "client-1" }))).toMatchObject({
      aud: several,
      azp: "client-1",
    });
  });

  it("drops __proto__, constructor and prototype claims at every depth", async () => {
    const key = await signingKey("k1");
    const check = verifier(provider([key.jwk]).fetch);
    // Signed as JSON text, the way a provider's token would carry them.
    const evil = JSON.parse(
      '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"prototype":1,"address":{"__proto__":{"admin":true},"city":"Oslo"},"groups":[{"__proto__":{"a":1},"id":"g"}]}',
    ) as Record<string, unknown>;
    const claims = await check.verify(await token(key, evil));
    expect(
      Object.keys(claims).filter((k) => ["__proto__", "constructor", "prototype"].includes(k)),
    ).toStrictEqual([]);
    expect(Object.hasOwn(claims["address"] as object, "__proto__")).toBe(false);
    expect(claims["address"]).toStrictEqual({ city: "Oslo" });
    expect(claims["groups"]).toStrictEqual([{ id: "g" }]);
    expect(({} as Record<string, unknown>)["polluted"]).toBe(undefined);
    expect(Object.getPrototypeOf(claims)).toBe(Object.prototype);
  });

  it("fetches the keys again when a token names a new one (rotation), and caches them otherwise", async () => {
    const [old, rotated] = [await signingKey("k1"), await signingKey("k2")];
    const idp = provider([old.jwk]);
    const check = verifier(idp.fetch);
    await check.verify(await token(old, {}));
    await check.verify(await token(old, {}));
    expect(idp.state.fetches).toBe(1);
    idp.state.keys = [old.jwk, rotated.jwk];
    // Within 30 s of the last fetch an unknown kid is refused without another fetch (the cool-down)...
    await expect(failure(check.verify(await token(rotated, {})))).resolves.toMatchObject({
      reason: "invalid_token",
    });
    expect(idp.state.fetches).toBe(1);
    // ...after it, the keys are fetched again and the new one is found.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 31_000 });
    try {
      await expect(check.verify(await token(rotated, {}))).resolves.toMatchObject({ sub: "alice" });
    } finally {
      vi.useRealTimers();
    }
    expect(idp.state.fetches).toBe(2);
  });

  it("calls unreachable keys network trouble, not an invalid token", async () => {
    const key = await signingKey("k1");
    const idp = provider([key.jwk]);
    idp.state.down = true;
    expect((await failure(verifier(idp.fetch).verify(await token(key, {})))).reason).toBe("network");
  });

  it("calls an error page or malformed keys a server problem", async () => {
    const key = await signingKey("k1");
    const failing = provider([key.jwk]);
    failing.state.status = 503;
    expect(await failure(verifier(failing.fetch).verify(await token(key, {})))).toMatchObject({
      reason: "server",
      message: expect.stringContaining("HTTP 503") as unknown,
    });
    const malformed = provider("not a list" as unknown as JWK[]);
    expect((await failure(verifier(malformed.fetch).verify(await token(key, {})))).reason).toBe("server");
  });

  it("fetches and imports the keys ahead of the token when asked to prefetch", async () => {
    const key = await signingKey("k1");
    const idp = provider([{ ...key.jwk, alg: undefined }]);
    const check = verifier(idp.fetch);
    check.prefetch();
    await vi.waitFor(() => expect(idp.state.fetches).toBe(1));
    check.prefetch(); // fresh keys: no second fetch
    await expect(check.verify(await token(key, {}))).resolves.toMatchObject({ sub: "alice" });
    expect(idp.state.fetches).toBe(1);
  });
});
