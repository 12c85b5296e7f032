/**
 * Every identity-provider endpoint (discovery, device authorization, token, signing keys) must be `https`:
 * device codes, refresh tokens and ID tokens cross it. The one exception is a development provider on this
 * machine's loopback interface (`localhost`, 127.0.0.0/8, `::1`), which never leaves the host.
 */
export function isSecureEndpoint(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const parsed = new URL(url);
  if (parsed.protocol === "https:") return true;
  return parsed.protocol === "http:" && isLoopbackHost(parsed.hostname);
}

/** `localhost` (and its subdomains, RFC 6761 6.3), 127.0.0.0/8, or `[::1]`. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return (
    host === "localhost" ||
    host.endsWith(".localhost") ||
    host === "[::1]" ||
    /^127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(host)
  );
}

/** The explanation shared by every refusal. */
export const SECURE_ENDPOINT_RULE = "expected an https:// URL (http:// only for a provider on loopback)";
