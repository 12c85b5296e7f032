import { describe, expect, it } from "vitest";
import { approveByCompleteUri, approveSignIn } from "../../src/dev/person.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";
import { startSlowDownFront } from "../helpers/slow-down-front.js";

/** RFC 8628's default interval: oidc-provider as it ships sends none. */
const INTERVAL_MS = 5_000;
const SLOW_DOWN_MS = 5_000;
/** Timers may fire a millisecond early after rounding; never more. */
const CLOCK_SLACK_MS = 50;

// oidc-provider AS IT SHIPS: default routes (/token, /device/auth), RFC grant type only, no interval, no
// message, nothing rewritten in front of it. The agent's RFC 8628 mode does the translating. The journey both
// dialects share (code on screen, sign-in, decline, expiry) is in agent.test.ts, run once per dialect; these
// are the parts only RFC 8628 has.
describe("agent against an RFC 8628 provider (oidc-provider as it ships)", () => {
  const { bed, probe, newAgent, afterThisTest } = useTestBed({ idp: { dialect: "rfc8628" } });

  it("signs in from the complete URI alone, as a QR code scan does", async () => {
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    await newAgent(config).start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(display.verificationUriComplete).toBeDefined();

    await approveByCompleteUri(display.verificationUriComplete ?? "", { ca: bed.idp.caPem, login: "bob" });

    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event.claims).toMatchObject({ sub: "bob", name: "Bob" });
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
  });

  it("on slow_down polls 5 s less often from then on, keeping the code on screen", async () => {
    // oidc-provider defines slow_down but never sends it: a thin front answers it to the first poll.
    const front = await startSlowDownFront(bed.idp, { slowDownPolls: [0] });
    // Registered before the agent: the agent stops first, then the front it polls closes.
    afterThisTest(() => front.close());
    const config = bed.config({
      EDGE_SIGNIN_AUTHORITY: front.authority,
      EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
    });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const log = captureLogger();
    const agent = newAgent(config, log.logger);
    await agent.start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    const slowedDown = await front.poll(0);
    expect(slowedDown.answer).toBe("slow_down");
    const second = await front.poll(1);
    expect(second.at - slowedDown.at).toBeGreaterThanOrEqual(INTERVAL_MS + SLOW_DOWN_MS - CLOCK_SLACK_MS);
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "carol" });
    // The extra 5 s hold for every later poll of the same code, not only the next one.
    const third = await front.poll(2);
    expect(third.at - second.at).toBeGreaterThanOrEqual(INTERVAL_MS + SLOW_DOWN_MS - CLOCK_SLACK_MS);
    expect(new Set(front.polls().map((p) => p.deviceCode)).size).toBe(1);

    const event = (await probe.next(topics.event("authenticated"), undefined, 30_000)).json<
      EventPayload<"authenticated">
    >();
    expect(event.claims).toMatchObject({ sub: "carol" });
    // One code on screen all along: no failure, no new code, until it was used.
    const shown = probe
      .all(topics.display)
      .filter((m) => m.payload.length > 0)
      .map((m) => m.json<DisplayPayload>().userCode);
    expect(shown.filter((code) => code !== display.userCode)).toStrictEqual([]);
    expect(probe.all(topics.event("sign_in_failed"))).toStrictEqual([]);
    expect(log.lines()).toContainEqual(
      expect.objectContaining({ msg: expect.stringContaining("poll more slowly"), extraSeconds: 5 }),
    );
  });
});
