/**
 * The development OpenID provider (src/dev/identity-provider.ts) as a compose service, for the compose stack
 * test (test/docker/compose.identity-provider.yaml runs this in the Dockerfile's build stage, which has the dev
 * dependencies and src/). It listens on every interface of its container under its compose host name, and
 * copies its certificate to /run/identity-provider/ca.pem once it listens: the file is both the CA that the agent
 * and the test trust and the service's readiness signal.
 */
import { copyFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDevIdentityProvider } from "../../src/dev/identity-provider.js";

const publicHost = process.env["IDP_PUBLIC_HOST"] ?? "identity-provider";
const port = Number(process.env["IDP_PORT"] ?? "8443");
const provider = await startDevIdentityProvider({
  host: "0.0.0.0",
  port,
  publicHost,
  pollIntervalSeconds: 1,
  certDir: await mkdtemp(join(tmpdir(), "idp-")),
});
await copyFile(provider.caFile, "/run/identity-provider/ca.pem");
process.stdout.write(`identity provider ${provider.authority} (issuer ${provider.issuer}) is listening\n`);
process.once("SIGTERM", () => {
  void provider.close().finally(() => process.exit(0));
});
