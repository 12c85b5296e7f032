/**
 * `fleet --web`'s HTTP side over real sockets, fed by a real Fleet (the MQTT side is test/docker/fleet-view.test.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Fleet } from "../../src/fleet/fleet.js";
import { FleetServer } from "../../src/fleet/fleet-server.js";
import { captureLogger } from "../helpers/fixture.js";
import { rawClient } from "../helpers/raw-client.js";

let server: FleetServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("fair shares: one client on the network cannot take the fleet page from the others", () => {
  it("answers /fleet and /fleet.json to an operator while other machines hold idle connections", async () => {
    const fleet = new Fleet();
    fleet.availability("tv-1", "online");
    fleet.state("tv-1", { state: "signed_in", since: "2026-11-30T08:00:00.000Z" });
    const log = captureLogger();
    // Small caps so the test stays small; the defaults have the same proportions (32 per client, 256 in all).
    server = new FleetServer({
      host: "127.0.0.1",
      port: 0,
      allowedHosts: [],
      snapshot: () => fleet.snapshot(),
      logger: log.logger,
      maxConnectionsPerClient: 8,
      maxConnections: 24,
    });
    await server.start();
    const url = server.url;
    // Three machines fill every place (and one of them asks for five times its share).
    const idlers = ["127.0.0.2", "127.0.0.4", "127.0.0.5"].map((from) => rawClient(url, from));
    try {
      for (const [n, idler] of idlers.entries())
        for (let i = 0; i < (n === 0 ? 40 : 8); i++) await idler.idle().catch(() => undefined);
      await expect.poll(() => idlers.reduce((sum, idler) => sum + idler.live(), 0)).toBe(24);
      // The operator, from its own address: the page and the JSON, each on a connection of its own.
      const operator = rawClient(url, "127.0.0.3");
      const page = await operator.get("/fleet");
      expect(page).toMatch(/^HTTP\/1\.1 200 /);
      expect(page).toContain("<td>tv-1</td>");
      const json = await operator.get("/fleet.json");
      expect(json).toMatch(/^HTTP\/1\.1 200 /);
      expect(json).toContain('"deviceId":"tv-1"');
      // No machine holds more than its share, and the page said why it closed connections.
      for (const idler of idlers) await expect.poll(() => idler.live()).toBeLessThanOrEqual(8);
      expect(log.text()).toContain("holds more than its share");
      operator.close();
    } finally {
      for (const idler of idlers) idler.close();
    }
  });
});
