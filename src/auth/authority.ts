import type { DiscoveryCandidate, DiscoveryDocument } from "./discovery.js";

/**
 * What kind of authority the agent talks to decides three things: where its discovery document is,
 * whether MSAL needs OIDC protocol mode, and which URL people are sent to. Microsoft's own host names tell it at
 * once; any other host (an External ID custom URL domain, Keycloak, Auth0...) is known by what its discovery
 * document says (see {@link describedBy}).
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

const CIAM_SUFFIX = ".ciamlogin.com";

export function resolveAuthority(authority: string, verificationUriOverride?: string): ResolvedAuthority {
  const url = new URL(authority);
  const base = url.href.endsWith("/") ? url.href : `${url.href}/`;
  const host = url.hostname.toLowerCase();
  const firstSegment = url.pathname.split("/").find(Boolean);

  if (host.endsWith(CIAM_SUFFIX)) {
    const tenant = host.slice(0, -CIAM_SUFFIX.length);
    // MSAL rewrites a path-less CIAM authority to `/{tenant}.onmicrosoft.com/`; discovery must use the same path.
    const tenantPath = firstSegment ?? `${tenant}.onmicrosoft.com`;
    return {
      kind: "ciam",
      url: base,
      discoveryUrl: `https://${url.host}/${tenantPath}/v2.0/.well-known/openid-configuration`,
      verificationUri: verificationUriOverride ?? tenantDevicePage(base),
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

/**
 * Where to look for the discovery document, in order. A host that does not say whose it is may be an External
 * ID tenant's custom URL domain: Entra's v2.0 document is asked for first and counts only if it names an Entra
 * family issuer. (The path without `v2.0` there is Entra's v1 document, whose `/oauth2/devicecode` refuses
 * MSAL's v2 requests, so it must never be the one used.) Then the OpenID location every other provider serves.
 * `rfc8628` (configured) skips the first: the device maker said which kind it is.
 */
export function discoveryCandidates(
  authority: ResolvedAuthority,
  dialect: "auto" | "entra" | "rfc8628",
): DiscoveryCandidate[] {
  if (authority.kind !== "oidc" || dialect === "rfc8628" || authority.url.endsWith("/v2.0/"))
    return [{ url: authority.discoveryUrl }];
  return [
    {
      url: `${authority.url}v2.0/.well-known/openid-configuration`,
      accept: (document) => issuerKind(document.issuer) !== undefined,
    },
    {
      url: authority.discoveryUrl,
      // Also drops such a document cached by an earlier version, which took it for an OpenID provider's.
      accept: (document) => !isEntraV1Issuer(document.issuer),
      refusal:
        "it is Entra's v1 document (issuer sts.windows.net), whose /oauth2/devicecode refuses MSAL's requests, " +
        `and ${authority.url}v2.0/.well-known/openid-configuration did not answer with Entra's v2.0 document`,
    },
  ];
}

/** Entra's v1 issuer, `https://sts.windows.net/{tenantId}/`. */
function isEntraV1Issuer(issuer: string): boolean {
  return URL.canParse(issuer) && new URL(issuer).hostname.toLowerCase() === "sts.windows.net";
}

/**
 * `ciam` for an issuer on `{tenant}.ciamlogin.com`, `entra` on Microsoft's sign-in hosts (v2.0 issuers), else
 * undefined (Entra's v1 issuer `sts.windows.net` too: that document is not for MSAL's v2 flow).
 */
export function issuerKind(issuer: string): Exclude<AuthorityKind, "oidc"> | undefined {
  if (!URL.canParse(issuer)) return undefined;
  const host = new URL(issuer).hostname.toLowerCase();
  if (host.endsWith(CIAM_SUFFIX)) return "ciam";
  if (ENTRA_HOSTS.has(host)) return "entra";
  return undefined;
}

/**
 * The authority as its discovery document describes it: a host that did not say whose it is, serving an
 * External ID issuer (`https://{tenantId}.ciamlogin.com/{tenantId}/v2.0`) is an External ID custom URL domain.
 * People are then sent to the tenant's own code page on that domain: `microsoft.com/devicelogin` fails for
 * External ID's local accounts (AADSTS500208), and the tenant may block its `ciamlogin.com` host.
 */
export function describedBy(
  authority: ResolvedAuthority,
  discovered: { readonly url: string; readonly document: Pick<DiscoveryDocument, "issuer"> },
  verificationUriOverride?: string,
): ResolvedAuthority {
  if (authority.kind !== "oidc") return authority;
  const kind = issuerKind(discovered.document.issuer);
  if (kind === undefined) return authority;
  return {
    kind,
    url: authority.url,
    discoveryUrl: discovered.url,
    verificationUri:
      verificationUriOverride ?? (kind === "ciam" ? tenantDevicePage(authority.url) : undefined),
  };
}

/** `https://{host}/common/oauth2/deviceauth`: the code page External ID's local accounts can use. */
function tenantDevicePage(authority: string): string {
  return `https://${new URL(authority).host}/common/oauth2/deviceauth`;
}
