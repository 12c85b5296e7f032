import type { AgentState } from "../events.js";
import type { Availability, StatePayload } from "../mqtt/topics.js";

/** One device as the fleet view knows it: from its retained `availability` and `state` topics only. */
export interface FleetDevice {
  readonly deviceId: string;
  /** `null`: nothing retained on `{base}/availability` (yet). */
  readonly availability: Availability | null;
  readonly state: AgentState | null;
  /** When the device entered `state` (ISO 8601, the agent's clock). */
  readonly since: string | null;
  /**
   * When someone last signed in on the device (ISO 8601): the `since` of its `signed_in` state, retained or seen
   * while the view ran. No name, no claims: the fleet user reads no event.
   */
  readonly lastSignIn: string | null;
}

/** The whole fleet at one moment: devices by id, and how many are in each state and each availability. */
export interface FleetSnapshot {
  readonly devices: readonly FleetDevice[];
  readonly counts: {
    readonly devices: number;
    /** Devices per state; `unknown`: nothing retained on their state topic. */
    readonly byState: Readonly<Record<AgentState | "unknown", number>>;
    readonly online: number;
    readonly offline: number;
  };
}

const EMPTY: Omit<FleetDevice, "deviceId"> = {
  availability: null,
  state: null,
  since: null,
  lastSignIn: null,
};

/** The fleet as the retained messages tell it; the watcher feeds it, the terminal and the web page read it. */
export class Fleet {
  private readonly devices = new Map<string, FleetDevice>();

  /** A device's availability; `null` when its retained message was removed. */
  availability(deviceId: string, availability: Availability | null): void {
    this.update(deviceId, { availability });
  }

  /** A device's state; `null` when its retained message was removed. */
  state(deviceId: string, payload: Pick<StatePayload, "state" | "since"> | null): void {
    const known = this.devices.get(deviceId);
    this.update(deviceId, {
      state: payload?.state ?? null,
      since: payload?.since ?? null,
      lastSignIn: payload?.state === "signed_in" ? payload.since : (known?.lastSignIn ?? null),
    });
  }

  snapshot(): FleetSnapshot {
    const devices = [...this.devices.values()].sort((a, b) => a.deviceId.localeCompare(b.deviceId));
    const byState: Record<AgentState | "unknown", number> = {
      starting: 0,
      signed_out: 0,
      awaiting_user: 0,
      signed_in: 0,
      error: 0,
      unknown: 0,
    };
    for (const device of devices) byState[device.state ?? "unknown"] += 1;
    return {
      devices,
      counts: {
        devices: devices.length,
        byState,
        online: devices.filter((d) => d.availability === "online").length,
        offline: devices.filter((d) => d.availability === "offline").length,
      },
    };
  }

  private update(deviceId: string, change: Partial<FleetDevice>): void {
    const next = { ...EMPTY, ...this.devices.get(deviceId), ...change, deviceId };
    // A device whose retained messages were all removed has left the fleet.
    if (next.availability === null && next.state === null) this.devices.delete(deviceId);
    else this.devices.set(deviceId, next);
  }
}

/**
 * The fleet as a text table for a terminal: one line per device (id, availability, state, since, last sign-in),
 * then the counts. Times are shown as the agents sent them (UTC, to the second).
 */
export function renderFleetTable(snapshot: FleetSnapshot): string {
  const time = (iso: string | null) => (iso ? iso.replace(/\.\d+Z$/, "Z") : "-");
  const rows = [
    ["DEVICE", "AVAILABILITY", "STATE", "SINCE", "LAST SIGN-IN"],
    ...snapshot.devices.map((d) => [
      d.deviceId,
      d.availability ?? "-",
      d.state ?? "-",
      time(d.since),
      time(d.lastSignIn),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd(),
  );
  lines.push("", fleetSummary(snapshot.counts));
  return `${lines.join("\n")}\n`;
}

/** The counts in one line: "3 devices: 2 online, 1 offline; 1 awaiting_user, 2 signed_in" (states with none left out). */
export function fleetSummary(counts: FleetSnapshot["counts"]): string {
  const states = Object.entries(counts.byState)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  return (
    `${counts.devices} device${counts.devices === 1 ? "" : "s"}: ${counts.online} online, ${counts.offline} offline` +
    (states.length > 0 ? `; ${states.join(", ")}` : "")
  );
}
