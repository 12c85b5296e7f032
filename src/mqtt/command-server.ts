import type { Logger } from "pino";
import type { AgentControl } from "../control.js";
import { handleCommand } from "./commands.js";
import type { IncomingMessage, MqttGateway } from "./gateway.js";
import type { DeviceTopics } from "./topics.js";

/**
 * Takes commands from `{base}/request/{command}` and answers each one: on the request's MQTT 5 response
 * topic (with its correlation data) when it names one, else on `{base}/response/{command}`.
 */
export class CommandServer {
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly gateway: MqttGateway,
    private readonly topics: DeviceTopics,
    private readonly agent: AgentControl,
    private readonly log: Logger,
  ) {}

  /** Registers the subscription; the gateway sends it once connected and again after every reconnect. */
  start(): void {
    this.unsubscribe ??= this.gateway.subscribe(this.topics.requests, (message) => {
      void this.answer(message);
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private async answer(message: IncomingMessage): Promise<void> {
    const command = message.topic.slice(message.topic.lastIndexOf("/") + 1);
    const outcome = await handleCommand(command, message.payload, this.agent);
    if (outcome.malformed !== undefined)
      this.log.warn(
        { command, bytes: message.payload.byteLength, problem: outcome.malformed },
        "bad request",
      );
    else if (outcome.failure !== undefined)
      this.log.error({ command, err: outcome.failure }, "command failed");
    else
      this.log.info(
        { command, status: outcome.response.status, error: outcome.response.error },
        `command ${command}`,
      );
    const target = this.responseTopic(message, command);
    try {
      this.gateway.publishJson(target, outcome.response, {
        ...(message.correlationData !== undefined && target === message.responseTopic
          ? { correlationData: message.correlationData }
          : {}),
      });
    } catch (error) {
      // Not connected any more (stopping): the requester times out, which is all it could learn anyway.
      this.log.warn({ command, err: { message: (error as Error).message } }, "could not answer");
    }
  }

  /** A usable MQTT 5 response topic wins; one with wildcards, or pointing back at the requests, is ignored. */
  private responseTopic(message: IncomingMessage, command: string): string {
    const requested = message.responseTopic;
    const requestPrefix = this.topics.requests.slice(0, -1);
    if (requested && !/[+#\0]/.test(requested) && !requested.startsWith(requestPrefix)) return requested;
    if (requested) this.log.warn({ command }, "unusable response topic in request; answering on the default");
    return this.topics.response(command);
  }
}
