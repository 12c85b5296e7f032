import { describe, expect, it } from "vitest";
import { approveByCompleteUri } from "../../src/dev/person.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { startCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";

describe("the edge-signin command against an RFC 8628 provider (oidc-provider as it ships)", () => {
  const { bed, probe } = useTestBed({ idp: { dialect: "rfc8628" } });

  it("signs in a person who only scanned the complete URI, and exits 0 on SIGTERM", async () => {
    const env = bed.env({ EDGE_SIGNIN_LOG_LEVEL: "trace" });
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const cli = startCli(["agent"], env);
    try {
      const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      expect(display.verificationUriComplete).toBe(
        `${display.verificationUri}?user_code=${display.userCode}`,
      );
      await approveByCompleteUri(display.verificationUriComplete ?? "", { ca: bed.idp.caPem, login: "dave" });

      const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
      expect(event.claims).toMatchObject({ sub: "dave", name: "Dave", iss: bed.idp.issuer });
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");

      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
      expect(cli.stdout()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
      expect(cli.stdout()).not.toMatch(/device_?code"\s*:\s*"[^[]/i);
    } finally {
      cli.child.kill("SIGKILL");
    }
  });
});
