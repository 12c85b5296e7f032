import { listen } from "../util/emitter.js";
import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import type { AgentEvents, SignInPrompt, StateChange } from "../events.js";
import type { GatewayEvents, MqttGateway } from "../mqtt/gateway.js";
import type { Outbox } from "../storage/outbox.js";
import { OutboxSender } from "../mqtt/outbox-sender.js";
import type { DeviceTopics, DisplayPayload, EventPayloads, EventType, StatePayload } from "../mqtt/topics.js";
import { codeIssued, eventEnvelope } from "./envelope.js";
import { subscribe, type Reporter } from "./reporter.js";

/**
 * Publishes the agent's events under the topic contract. It remembers the current state and prompt
 * so that a broker that lost them (restart, no persistence) gets them again on reconnect. Events go
 * through the durable outbox: written to disk first, removed once the broker acknowledged them.
 */
export class MqttReporter implements Reporter {
  readonly name = "mqtt";
  private unsubscribers: Array<() => void> = [];
  private state: StateChange | undefined;
  private prompt: SignInPrompt | undefined;
  private readonly sender: OutboxSender;

  constructor(
    private readonly gateway: MqttGateway,
    private readonly topics: DeviceTopics,
    private readonly deviceId: string,
    private readonly log: Logger,
    private readonly outbox: Outbox,
    /** EDGE_SIGNIN_STATE_ACCOUNT: the retained state names who is signed in (displays can read it). */
    private readonly stateAccount = false,
  ) {
    this.sender = new OutboxSender(outbox, gateway, log);
  }

  start(events: EventEmitter<AgentEvents>): Promise<void> {
    const onError = (error: unknown) => this.log.error({ err: error }, "mqtt reporter failed");
    this.unsubscribers = [
      subscribe(events, "state", (change) => this.publishState(change), onError),
      subscribe(events, "prompt", (prompt) => this.publishPrompt(prompt), onError),
      subscribe(events, "prompt_cleared", () => this.clearPrompt(), onError),
      subscribe(events, "authenticated", (e) => this.publishEvent("authenticated", e), onError),
      subscribe(events, "code_expired", (e) => this.publishEvent("code_expired", e), onError),
      subscribe(events, "sign_in_failed", (e) => this.publishEvent("sign_in_failed", e), onError),
      subscribe(events, "signed_out", (e) => this.publishEvent("signed_out", e), onError),
    ];
    // Events a previous run raised and the broker never acknowledged go out first, with their original ids.
    this.outbox.open();
    this.unsubscribers.push(
      listen<GatewayEvents>(this.gateway, {
        connect: () => {
          this.republish();
          this.sender.kick();
        },
        // A clustered broker that lost a retained message of ours (quirks/retained-check.ts): as after a connect.
        retained_lost: () => this.republish(),
      }),
    );
    return Promise.resolve();
  }

  busy(): boolean {
    return this.outbox.nearlyFull;
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    this.sender.stop();
    await this.outbox.flush();
  }

  private publishState(change: StateChange): void {
    this.state = change;
    // Displays read the retained state: the account (a person's name and user name) only when configured.
    const { account, ...rest } = change;
    const payload: StatePayload = {
      ...rest,
      deviceId: this.deviceId,
      ...(this.stateAccount && account ? { account } : {}),
    };
    this.gateway.publishJson(this.topics.state, payload, { retain: true, onlyIfConnected: true });
  }

  private publishPrompt(prompt: SignInPrompt): void {
    this.prompt = prompt;
    this.publishDisplay(prompt);
    this.publishEvent("code_issued", codeIssued(prompt), prompt);
  }

  /**
   * Retained with MQTT 5 expiry = the code's remaining life: a late display never shows a dead code.
   * Returns false when the code has already run out: there is nothing left to show.
   */
  private publishDisplay(prompt: SignInPrompt): boolean {
    const secondsLeft = (Date.parse(prompt.expiresAt) - Date.now()) / 1000;
    if (secondsLeft <= 0) return false;
    const payload: DisplayPayload = {
      deviceId: this.deviceId,
      userCode: prompt.userCode,
      verificationUri: prompt.verificationUri,
      ...(prompt.verificationUriComplete ? { verificationUriComplete: prompt.verificationUriComplete } : {}),
      message: prompt.message,
      issuedAt: prompt.issuedAt,
      expiresAt: prompt.expiresAt,
      expiresIn: prompt.expiresIn,
    };
    this.gateway.publishJson(this.topics.display, payload, {
      retain: true,
      expirySeconds: secondsLeft,
      onlyIfConnected: true,
    });
    return true;
  }

  private clearPrompt(): void {
    this.prompt = undefined;
    this.gateway.clearRetained(this.topics.display, { onlyIfConnected: true });
  }

  private publishEvent<T extends EventType>(type: T, data: EventPayloads[T], source: object = data): void {
    // The same id and time as the webhook reporter gives this event (envelope.ts).
    const payload = eventEnvelope(type, this.deviceId, data, source);
    this.outbox.append(this.topics.event(type), payload);
    this.sender.kick();
  }

  private republish(): void {
    if (this.state) this.publishState(this.state);
    // A code that ran out during the outage (the agent has not noticed yet) must not linger on a persistent broker.
    if (!this.prompt || !this.publishDisplay(this.prompt)) this.gateway.clearRetained(this.topics.display);
  }
}
