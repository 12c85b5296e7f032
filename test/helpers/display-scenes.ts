/**
 * Every screen of the web display, each as a device whose topics hold what puts its screen there: what the
 * Chromium tests (test/e2e/web-display-states.test.ts) check and what scripts/web-display-screenshot.ts
 * photographs for docs/. A scene is retained messages (and an event, which the display must be up to hear).
 */
import type { DisplayPayload, EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { deviceTopics } from "../../src/mqtt/topics.js";

export type Publish = (topic: string, payload: string, retain: boolean) => Promise<void>;

export interface Scene {
  /** The screen it shows: the page's `body[data-screen]`. */
  readonly screen: string;
  readonly deviceId: string;
  /** Publishes the scene's messages; `live` are those the display must be running to receive. */
  readonly publish: (publish: Publish, part: "retained" | "live") => Promise<void>;
  /**
   * Where the screen's countdown ends (the code's expiry, the next code, the retry), as the page's screen says
   * (`screen.until`); undefined for a screen without one. The screen is another one after it.
   */
  readonly countdownTo?: string;
}

/** External ID's long address and an Entra-style nine-character code: the hard case for layout. */
export const LONG_URI = "https://contoso-retail-europe.ciamlogin.com/common/oauth2/deviceauth";
export const USER_CODE = "GTK8ZJ2LA";

/**
 * The scenes, with device ids made unique by `tag` (one broker serves many test runs). Their times are `now` plus
 * what each screen needs (the shortest countdown, the retry, ends 95 s later): a look taken later than that needs
 * the scenes made and published again.
 */
export function scenes(tag: string, now = Date.now()): Scene[] {
  const iso = (offsetMs: number) => new Date(now + offsetMs).toISOString();
  const scene = (
    screen: string,
    retained: (deviceId: string) => Array<["availability" | "state" | "display", unknown]>,
    live: (deviceId: string) => Array<[string, unknown]> = () => [],
    countdownTo?: string,
  ): Scene => {
    const deviceId = `${tag}-${screen}`;
    const topics = deviceTopics("edge-signin", deviceId);
    const encode = (payload: unknown) => (typeof payload === "string" ? payload : JSON.stringify(payload));
    return {
      screen,
      deviceId,
      ...(countdownTo !== undefined ? { countdownTo } : {}),
      publish: async (publish, part) => {
        if (part === "retained") {
          for (const [name, payload] of retained(deviceId))
            await publish(topics[name], encode(payload), true);
        } else {
          for (const [event, payload] of live(deviceId))
            await publish(`${topics.base}/events/${event}`, encode(payload), false);
        }
      },
    };
  };
  const state = (deviceId: string, fields: Omit<StatePayload, "deviceId">): StatePayload => ({
    deviceId,
    ...fields,
  });
  const codeExpiresAt = iso(14 * 60_000 + 32_000);
  const nextCodeAt = iso(4 * 60_000 + 10_000);
  const retryAt = iso(95_000);
  return [
    scene(
      "code",
      (deviceId) => {
        const prompt: DisplayPayload = {
          deviceId,
          userCode: USER_CODE,
          verificationUri: LONG_URI,
          message: `To sign in, use a web browser to open the page ${LONG_URI} and enter the code ${USER_CODE} to authenticate.`,
          issuedAt: iso(0),
          expiresAt: codeExpiresAt,
        };
        return [
          ["availability", "online"],
          ["state", state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: prompt.expiresAt })],
          ["display", prompt],
        ];
      },
      undefined,
      codeExpiresAt,
    ),
    scene(
      "expired",
      (deviceId) => [
        ["availability", "online"],
        ["state", state(deviceId, { state: "awaiting_user", since: iso(-900_000), expiresAt: iso(-1_000) })],
      ],
      (deviceId) => {
        const expired: EventPayload<"code_expired"> = {
          id: `${deviceId}-1`,
          type: "code_expired",
          deviceId,
          at: iso(0),
          userCode: USER_CODE,
          expiredAt: iso(-1_000),
          nextCodeAt,
        };
        return [["code_expired", expired]];
      },
      nextCodeAt,
    ),
    scene("waiting", (deviceId) => [
      ["availability", "online"],
      ["state", state(deviceId, { state: "signed_out", since: iso(0) })],
    ]),
    scene("never-heard", () => []),
    scene("offline", (deviceId) => [
      ["availability", "offline"],
      ["state", state(deviceId, { state: "signed_out", since: iso(-60_000) })],
    ]),
    scene("signed-in", (deviceId) => [
      ["availability", "online"],
      [
        "state",
        state(deviceId, {
          state: "signed_in",
          since: iso(0),
          account: {
            name: "Maximiliane Wolkenstein-Rodenegg",
            username: "max@example.com",
            tenantId: "t",
            homeAccountId: "h",
          },
        }),
      ],
    ]),
    scene("signed-in-neutral", (deviceId) => [
      ["availability", "online"],
      [
        "state",
        state(deviceId, {
          state: "signed_in",
          since: iso(-3 * 3_600_000),
          account: { name: "Ada", username: "ada@example.com", tenantId: "t", homeAccountId: "h" },
        }),
      ],
    ]),
    scene(
      "error",
      (deviceId) => [
        ["availability", "online"],
        [
          "state",
          state(deviceId, {
            state: "error",
            since: iso(0),
            reason: "network",
            message: "identity provider unreachable (network_error)",
            retryAt,
          }),
        ],
      ],
      undefined,
      retryAt,
    ),
  ];
}
