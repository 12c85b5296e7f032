import { describe, expect, it } from "vitest";
import { describedBy, discoveryCandidates, resolveAuthority } from "../../src/auth/authority.js";

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

  describe("an External ID custom URL domain, known by its discovery document", () => {
    const tenantId = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
    const custom = resolveAuthority(`https://login.contoso.com/${tenantId}/`);
    const v2 = `https://login.contoso.com/${tenantId}/v2.0/.well-known/openid-configuration`;
    const ciamIssuer = { issuer: `https://${tenantId}.ciamlogin.com/${tenantId}/v2.0` };

    it("asks for Entra's v2.0 document first, and counts it only with an Entra family issuer", () => {
      const [first, second] = discoveryCandidates(custom, "auto");
      expect(first?.url).toBe(v2);
      expect(second?.url).toBe(`https://login.contoso.com/${tenantId}/.well-known/openid-configuration`);
      // Entra's v1 document there is never used, even when the v2.0 one is missing (nor a copy cached earlier).
      expect(second?.accept?.({ issuer: `https://sts.windows.net/${tenantId}/` } as never)).toBe(false);
      expect(second?.accept?.({ issuer: "https://login.contoso.com/realms/x" } as never)).toBe(true);
      expect(first?.accept?.(ciamIssuer as never)).toBe(true);
      expect(first?.accept?.({ issuer: `https://sts.windows.net/${tenantId}/` } as never)).toBe(false);
      expect(first?.accept?.({ issuer: "https://login.contoso.com/realms/x" } as never)).toBe(false);
    });

    it("skips the look-up where the host or the configuration already says which kind it is", () => {
      expect(discoveryCandidates(custom, "rfc8628").map((c) => c.url)).toStrictEqual([custom.discoveryUrl]);
      const ciam = resolveAuthority("https://contoso.ciamlogin.com/");
      expect(discoveryCandidates(ciam, "auto").map((c) => c.url)).toStrictEqual([ciam.discoveryUrl]);
    });

    it("becomes External ID, with the tenant's code page on the custom domain", () => {
      expect(describedBy(custom, { url: v2, document: ciamIssuer })).toStrictEqual({
        kind: "ciam",
        url: `https://login.contoso.com/${tenantId}/`,
        discoveryUrl: v2,
        verificationUri: "https://login.contoso.com/common/oauth2/deviceauth",
      });
      expect(
        describedBy(custom, { url: v2, document: ciamIssuer }, "https://login.contoso.com/device")
          .verificationUri,
      ).toBe("https://login.contoso.com/device");
    });

    it("stays a plain OpenID provider when the issuer is no one's in particular", () => {
      const keycloak = resolveAuthority("https://sso.example/realms/home/");
      expect(
        describedBy(keycloak, {
          url: keycloak.discoveryUrl,
          document: { issuer: "https://sso.example/realms/home" },
        }),
      ).toBe(keycloak);
    });
  });
});
