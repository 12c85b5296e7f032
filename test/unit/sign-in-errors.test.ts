import { ClientAuthError, AuthError } from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { translate } from "../../src/auth/device-code.js";
import { IdpUnreachableError } from "../../src/auth/network-client.js";

// What DeviceCodeClient throws for a token-endpoint error: code, correlation id, the server's `error`.
const serverSays = (error: string) => new AuthError("post_request_failed", "correlation-id", error);

describe("MSAL errors become the agent's reasons", () => {
  it.each([
    ["authorization_declined", "declined"],
    ["access_denied", "declined"],
    ["expired_token", "expired"],
    ["code_expired", "expired"],
    ["temporarily_unavailable", "server"],
    ["invalid_client", "server"],
  ])("the server's %s is %s", (serverError, reason) => {
    expect(translate(serverSays(serverError)).reason).toBe(reason);
  });

  it.each([
    ["device_code_expired", "expired"],
    ["device_code_polling_cancelled", "cancelled"],
    ["network_error", "network"],
    ["endpoints_resolution_error", "network"],
  ])("MSAL's own %s is %s", (code, reason) => {
    expect(translate(new ClientAuthError(code, "correlation-id")).reason).toBe(reason);
  });

  it("an unreachable provider is a network failure that keeps the cause", () => {
    const cause = new IdpUnreachableError("GET https://idp: timed out");
    const translated = translate(cause);
    expect(translated.reason).toBe("network");
    expect(translated.cause).toBe(cause);
  });
});
