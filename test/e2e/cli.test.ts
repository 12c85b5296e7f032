import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { runCli, startCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";

describe("the edge-signin command", () => {
  const { bed, probe } = useTestBed();

  it("explains itself with --help, listing every setting", async () => {
    const result = await runCli(["agent", "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Run the agent");
    expect(result.stdout).toContain("EDGE_SIGNIN_TENANT");
    expect(result.stdout).toContain("EDGE_SIGNIN_MQTT_PASSWORD");
    const demo = await runCli(["demo", "--help"]);
    expect(demo.stdout).toContain("--approve-as <name>");
  });

  it("rejects bad configuration with one line per problem and no stack trace", async () => {
    const result = await runCli(["agent"], {
      EDGE_SIGNIN_TENANT: "contoso",
      EDGE_SIGNIN_MQTT_URL: "http://x",
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toStrictEqual([
      "edge-signin: EDGE_SIGNIN_CLIENT_ID: is required",
      "edge-signin: EDGE_SIGNIN_MQTT_URL: expected a URL with scheme mqtt, mqtts, ws or wss",
    ]);
    expect(result.stdout).toBe("");
  });

  it("signs a person in, trusting the provider through NODE_EXTRA_CA_CERTS, and exits 0 on SIGTERM", async () => {
    // No EDGE_SIGNIN_IDP_CA_FILE: the provider's certificate is trusted only through Node's standard variable.
    const env = bed.env({ EDGE_SIGNIN_LOG_LEVEL: "trace" });
    delete env["EDGE_SIGNIN_IDP_CA_FILE"];
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const cli = startCli(["agent"], { ...env, NODE_EXTRA_CA_CERTS: bed.idp.caFile });
    try {
      const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "bob" });
      const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
      expect(event.claims).toMatchObject({ sub: "bob", name: "Bob" });
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");

      const began = Date.now();
      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
      expect(Date.now() - began).toBeLessThan(5_000);
      expect(
        (await probe.next(topics.availability, (m) => m.payload.toString() === "offline")).payload.toString(),
      ).toBe("offline");

      // Every stdout line is a JSON log record; none carries a token or a claim.
      const lines = cli.stdout().trim().split("\n");
      const records = lines.map((line) => JSON.parse(line) as { level: number; msg: string });
      expect(records.some((r) => r.msg === "signed in")).toBe(true);
      expect(cli.stdout()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
      expect(cli.stdout()).not.toMatch(/device_?code"\s*:\s*"[^[]/i);
      expect(cli.stdout()).not.toContain('"sub":"bob"');
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("cancels the code, clears the display and announces offline on SIGTERM while waiting", async () => {
    const env = bed.env();
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const cli = startCli(["agent"], env);
    try {
      await probe.next(topics.display, (m) => m.payload.length > 0);
      const began = Date.now();
      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
      expect(Date.now() - began).toBeLessThan(5_000);
      expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
      expect(
        (await probe.next(topics.availability, (m) => m.payload.toString() === "offline")).payload.toString(),
      ).toBe("offline");
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("runs the demo end to end with a simulated person", async () => {
    const result = await runCli(["demo", "--approve-as", "alice"], {}, 60_000);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\n {4}[A-Z]{4}-[A-Z]{4}\n/);
    expect(result.stdout).toContain("event authenticated: signed in as Alice <alice@example.com>");
    expect(result.stdout).toContain('"sub": "alice"');
  });
});
