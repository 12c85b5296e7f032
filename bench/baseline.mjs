/* global process, console, URL -- a Node script outside the TypeScript project */
// The baseline: the plain MSAL Node device-code sample a device maker would otherwise copy (the seed logic).
// It builds a PublicClientApplication for the authority, lets MSAL discover the provider, prints the
// message and waits for the person. Settings come from the environment so the benchmark can point it at
// its local identity provider; certificates are trusted through NODE_EXTRA_CA_CERTS, as with any Node app.
import { PublicClientApplication } from "@azure/msal-node";

const authority = process.env.BASELINE_AUTHORITY;
const clientId = process.env.BASELINE_CLIENT_ID;
if (!authority || !clientId) {
  process.stderr.write("baseline: set BASELINE_AUTHORITY and BASELINE_CLIENT_ID\n");
  process.exit(2);
}

// A non-Microsoft provider needs OIDC mode and both hosts it names (authority and issuer) as known authorities.
const knownAuthorities = (process.env.BASELINE_KNOWN_AUTHORITIES ?? new URL(authority).host).split(",");
const pca = new PublicClientApplication({
  auth: { clientId, authority, knownAuthorities },
  system: { protocolMode: "OIDC" },
});

const result = await pca.acquireTokenByDeviceCode({
  scopes: ["openid", "profile", "offline_access"],
  deviceCodeCallback: (response) => console.log(response.message),
});
console.log(`Signed in as ${result?.account?.username ?? "(unknown)"}`);
