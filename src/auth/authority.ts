/**
 * What kind of authority the agent talks to decides three things: where its discovery document is,
 * whether MSAL needs OIDC protocol mode, and which URL people are sent to.
 */
export type AuthorityKind = "ciam" | "entra" | "oidc";

export interface ResolvedAuthority {
  readonly kind: AuthorityKind;
  /** The authority as MSAL takes it (ends with `/`). */
  readonly url: string;
  /** Where the OpenID discovery document is. */
  readonly discoveryUrl: string;
  /** The URL to show instead of the provider's, when there is a better one. */
  readonly verificationUri: string | undefined;
}

const ENTRA_HOSTS = new Set([
  "login.microsoftonline.com",
  "login.microsoft.com",
  "login.windows.net",
  "login.microsoftonline.us",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
]);

export function resolveAuthority(authority: string, verificationUriOverride?: string): ResolvedAuthority {
  const url = new URL(authority);
  const base = url.href.endsWith("/") ? url.href : `${url.href}/`;
  const host = url.hostname.toLowerCase();
  const firstSegment = url.pathname.split("/").find(Boolean);

  if (host.endsWith(".ciamlogin.com")) {
    const tenant = host.slice(0, -".ciamlogin.com".length);
    // MSAL rewrites a path-less CIAM authority to `/{tenant}.onmicrosoft.com/`; discovery must use the same path.
    const tenantPath = firstSegment ?? `${tenant}.onmicrosoft.com`;
    return {
      kind: "ciam",
      url: base,
      discoveryUrl: `https://${url.host}/${tenantPath}/v2.0/.well-known/openid-configuration`,
      // microsoft.com/devicelogin fails for External ID local accounts (AADSTS500208); the tenant's own page works.
      verificationUri: verificationUriOverride ?? `https://${url.host}/common/oauth2/deviceauth`,
    };
  }
  if (ENTRA_HOSTS.has(host)) {
    return {
      kind: "entra",
      url: base,
      discoveryUrl: `${base}v2.0/.well-known/openid-configuration`,
      verificationUri: verificationUriOverride,
    };
  }
  return {
    kind: "oidc",
    url: base,
    discoveryUrl: `${base}.well-known/openid-configuration`,
    verificationUri: verificationUriOverride,
  };
}
