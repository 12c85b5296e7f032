/**
 * Every identity-provider endpoint (discovery, device authorization, token, signing keys) must be `https`:
 * device codes, refresh tokens and ID tokens cross it, and the discovery document and the keys decide whom the
 * agent believes. Whatever names the URL (configuration, a discovery document, the cached copy in STATE_DIR, a
 * URL MSAL derives), nothing else is accepted: not even plain HTTP on loopback, where any local process may
 * listen on a port the provider left free. A development provider serves https (src/dev/identity-provider.ts).
 */
export function isSecureEndpoint(url: string): boolean {
  return URL.canParse(url) && new URL(url).protocol === "https:";
}

/** The explanation shared by every refusal. */
export const SECURE_ENDPOINT_RULE = "expected an https:// URL";
