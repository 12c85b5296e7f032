import { describe, expect, it } from "vitest";
import { resolveAuthority } from "../../src/auth/authority.js";

describe("authority resolution", () => {
  it("sends External ID people to the tenant's own device page, and discovers under {tenant}.onmicrosoft.com", () => {
    expect(resolveAuthority("https://contoso.ciamlogin.com/")).toStrictEqual({
      kind: "ciam",
      url: "https://contoso.ciamlogin.com/",
      discoveryUrl:
        "https://contoso.ciamlogin.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
      verificationUri: "https://contoso.ciamlogin.com/common/oauth2/deviceauth",
    });
  });

  it("keeps a tenant id given in a CIAM authority's path", () => {
    const tenantId = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
    expect(resolveAuthority(`https://contoso.ciamlogin.com/${tenantId}`).discoveryUrl).toBe(
      `https://contoso.ciamlogin.com/${tenantId}/v2.0/.well-known/openid-configuration`,
    );
  });

  it("lets VERIFICATION_URI override any authority", () => {
    expect(resolveAuthority("https://contoso.ciamlogin.com/", "https://aka.ms/x").verificationUri).toBe(
      "https://aka.ms/x",
    );
    expect(
      resolveAuthority("https://idp.example.com/", "https://idp.example.com/activate").verificationUri,
    ).toBe("https://idp.example.com/activate");
  });

  it("treats Entra workforce authorities as Microsoft and leaves their URL alone", () => {
    expect(resolveAuthority("https://login.microsoftonline.com/organizations/")).toMatchObject({
      kind: "entra",
      discoveryUrl: "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration",
      verificationUri: undefined,
    });
  });

  it("treats anything else as a plain OpenID provider", () => {
    expect(resolveAuthority("https://keycloak.local/realms/home/")).toMatchObject({
      kind: "oidc",
      discoveryUrl: "https://keycloak.local/realms/home/.well-known/openid-configuration",
    });
  });
});
