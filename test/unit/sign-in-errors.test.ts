import { ClientAuthError, AuthError, InteractionRequiredAuthError } from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { DeviceFlowEnded } from "../../src/auth/device-flow.js";
import { toSignInError } from "../../src/auth/identity-session.js";
import { IdpAnswerError, IdpUnreachableError } from "../../src/auth/network-client.js";
import { processDeviceTokenAnswer } from "../../src/auth/oauth-steps.js";

// What MSAL throws for a token-endpoint error on a refresh: code, correlation id, the server's `error`.
const serverSays = (error: string) => new AuthError("post_request_failed", "correlation-id", error);

function thrown(work: () => unknown): unknown {
  try {
    work();
  } catch (error) {
    return error;
  }
  throw new Error("did not throw");
}

describe("errors become the agent's reasons", () => {
  it.each([
    ["authorization_declined", "declined"],
    ["access_denied", "declined"],
    ["expired_token", "expired"],
    ["code_expired", "expired"],
    ["temporarily_unavailable", "server"],
    ["invalid_client", "server"],
  ])("the server's %s on a poll is %s", (error, reason) => {
    const failure = thrown(() => processDeviceTokenAnswer({ status: 400, headers: {}, json: { error } }));
    expect(toSignInError(failure).reason).toBe(reason);
  });

  it.each([
    ["expired", "expired"],
    ["declined", "declined"],
    ["cancelled", "cancelled"],
  ] as const)("the device flow ending %s is %s", (outcome, reason) => {
    expect(toSignInError(new DeviceFlowEnded(outcome, "x")).reason).toBe(reason);
  });

  it.each([
    ["network_error", "network"],
    ["endpoints_resolution_error", "network"],
  ])("MSAL's own %s is %s", (code, reason) => {
    expect(toSignInError(new ClientAuthError(code, "correlation-id")).reason).toBe(reason);
  });

  it("a refresh refused for passing trouble is server; an answer that is no OAuth answer is server", () => {
    expect(toSignInError(serverSays("temporarily_unavailable")).reason).toBe("server");
    expect(toSignInError(new IdpAnswerError("HTTP 403 with a JSON body", 403)).reason).toBe("server");
    expect(toSignInError(new InteractionRequiredAuthError("invalid_grant", "")).reason).toBe("server");
  });

  it("an unreachable provider is a network failure that keeps the cause", () => {
    const cause = new IdpUnreachableError("GET https://idp: timed out");
    const translated = toSignInError(cause);
    expect(translated.reason).toBe("network");
    expect(translated.cause).toBe(cause);
  });
});
