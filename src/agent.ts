import { setTimeout as sleep } from "node:timers/promises";
import { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import { DeviceCodeSignIn, SignInError } from "./auth/device-code.js";
import { backoffDelay } from "./backoff.js";
import type { Config } from "./config.js";
import type { AgentEvents, AgentState, PromptClearReason, SignInPrompt, StateChange } from "./events.js";
import { createLogger } from "./logger.js";
import { MqttGateway } from "./mqtt/gateway.js";
import { deviceTopics } from "./mqtt/topics.js";
import { LogReporter } from "./reporters/log-reporter.js";
import { MqttReporter } from "./reporters/mqtt-reporter.js";
import type { Reporter } from "./reporters/reporter.js";

export interface AgentOptions {
  readonly config: Config;
  /** Root logger; by default JSON lines on stdout at the configured level. */
  readonly logger?: Logger;
  /** Reporters besides the built-in MQTT and log reporters. */
  readonly reporters?: readonly Reporter[];
}

/**
 * The composition root and the sign-in state machine. The constructor only wires parts;
 * `start()` connects and begins signing in; `stop()` undoes it in reverse order.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly config: Config;
  private readonly log: Logger;
  private readonly auth: DeviceCodeSignIn;
  private readonly reporters: readonly Reporter[];
  private readonly stopping = new AbortController();
  private current: StateChange = { state: "starting", since: new Date().toISOString() };
  private prompt: SignInPrompt | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: AgentOptions) {
    super();
    this.config = options.config;
    this.log = (options.logger ?? createLogger(options.config.logLevel)).child({
      deviceId: this.config.deviceId,
    });
    this.auth = new DeviceCodeSignIn(this.config, this.log.child({ module: "auth" }));
    const topics = deviceTopics(this.config.topicPrefix, this.config.deviceId);
    const gateway = new MqttGateway(this.config.mqtt, topics, this.log.child({ module: "mqtt" }));
    this.reporters = [
      new LogReporter(this.log.child({ module: "events" })),
      new MqttReporter(gateway, topics, this.config.deviceId, this.log.child({ module: "mqtt" })),
      ...(options.reporters ?? []),
    ];
  }

  get state(): StateChange {
    return this.current;
  }

  /** The code on screen, if one is valid now. */
  get currentPrompt(): SignInPrompt | undefined {
    return this.prompt;
  }

  /** Connects every reporter (the broker first of all), then starts signing in in the background. */
  async start(): Promise<void> {
    for (const reporter of this.reporters) await reporter.start(this);
    this.setState({ state: "starting" });
    this.loop = this.run().catch((error: unknown) => {
      // The loop handles its own failures; reaching here is a bug, reported rather than crashing the device.
      this.log.error({ err: error }, "sign-in loop stopped unexpectedly");
      this.setState({ state: "error", reason: "server", message: "internal error; restart the agent" });
    });
  }

  /** Cancels a pending code, clears the display, announces `offline` and disconnects. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    await this.loop;
    this.clearPrompt("cancelled");
    for (const reporter of [...this.reporters].reverse()) {
      try {
        await reporter.stop();
      } catch (error) {
        this.log.warn({ err: error, reporter: reporter.name }, "reporter did not stop cleanly");
      }
    }
    await this.auth.close();
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let failures = 0;
    let expiries = 0;
    while (!signal.aborted) {
      if (this.current.state !== "signed_out") this.setState({ state: "signed_out" });
      try {
        const result = await this.auth.signIn(signal, (prompt) => this.showPrompt(prompt));
        this.clearPrompt("used");
        this.emit("authenticated", { method: "device_code", claims: result.claims, account: result.account });
        this.setState({ state: "signed_in", account: result.account });
        return;
      } catch (error) {
        const failure = error instanceof SignInError ? error : new SignInError("server", String(error));
        if (failure.reason === "cancelled") return;
        const expiredPrompt = this.prompt;
        let delay: number;
        if (failure.reason === "expired" && expiredPrompt) {
          // A fresh code at once the first time; then slower and slower, so an unattended device stays quiet.
          expiries += 1;
          failures = 0;
          delay = backoffDelay(expiries - 1, this.config.retry);
          this.clearPrompt("expired");
          this.emit("code_expired", {
            userCode: expiredPrompt.userCode,
            expiredAt: new Date().toISOString(),
            nextCodeAt: at(delay),
          });
        } else {
          failures += 1;
          delay = backoffDelay(failures, this.config.retry);
          this.clearPrompt("failed");
          this.emit("sign_in_failed", {
            reason: failure.reason,
            message: failure.message,
            retryAt: at(delay),
          });
          this.log.debug({ err: failure.cause }, "sign-in attempt failed");
          if (failure.reason === "network" || failure.reason === "server") {
            this.setState({
              state: "error",
              reason: failure.reason,
              message: failure.message,
              retryAt: at(delay),
            });
          }
        }
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  private showPrompt(prompt: SignInPrompt): void {
    this.prompt = prompt;
    this.setState({ state: "awaiting_user", expiresAt: prompt.expiresAt });
    this.emit("prompt", prompt);
  }

  private clearPrompt(reason: PromptClearReason): void {
    if (!this.prompt) return;
    this.prompt = undefined;
    this.emit("prompt_cleared", reason);
  }

  private setState(change: Omit<StateChange, "since"> & { state: AgentState }): void {
    this.current = { ...change, since: new Date().toISOString() };
    this.emit("state", this.current);
  }
}

function at(delayMs: number): string {
  return new Date(Date.now() + delayMs).toISOString();
}
