import type { Logger } from "pino";
import type { AgentControl } from "../control.js";
import { handleCommand } from "./commands.js";
import type { IncomingMessage, MqttGateway } from "./gateway.js";
import type { DeviceTopics } from "./topics.js";

/** Longest MQTT 5 response topic honoured; longer ones are answered on the default topic. */
const MAX_RESPONSE_TOPIC_BYTES = 512;

/**
 * Takes commands from `{base}/request/{command}` and answers each one: on the request's MQTT 5 response
 * topic (with its correlation data) when it names an allowed one, else on `{base}/response/{command}`.
 *
 * Allowed response topics are `{base}/response/...` and, when `EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX` is set, topics
 * under it. Nothing else: the agent may publish where a requester may not (its own display, state and event
 * topics, the discovery prefix), so answering wherever a request asks would let anyone who can send a command
 * publish through the agent what the broker's ACL forbids them.
 */
export class CommandServer {
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly gateway: MqttGateway,
    private readonly topics: DeviceTopics,
    private readonly agent: AgentControl,
    private readonly log: Logger,
    /** `EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX` (config.ts keeps it clear of every topic the agent owns), if set. */
    private readonly responsePrefix?: string,
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

  /** An allowed MQTT 5 response topic wins; any other is ignored (with a warning) for the default. */
  private responseTopic(message: IncomingMessage, command: string): string {
    const requested = message.responseTopic;
    if (requested === undefined) return this.topics.response(command);
    if (isAllowedResponseTopic(requested, this.topics, this.responsePrefix)) return requested;
    this.log.warn(
      { command, allowed: allowedResponseTopics(this.topics, this.responsePrefix) },
      "response topic in request not allowed; answering on the default",
    );
    return this.topics.response(command);
  }
}

/** The filters a response topic must match, for the log line and the README. */
export function allowedResponseTopics(topics: DeviceTopics, prefix: string | undefined): string[] {
  return [`${topics.base}/response/#`, ...(prefix !== undefined ? [`${prefix}/#`] : [])];
}

/**
 * True when `topic` is a concrete topic (no wildcard, no control character, not `$`-reserved, bounded) under
 * `{base}/response/` or under `prefix/`.
 */
export function isAllowedResponseTopic(
  topic: string,
  topics: DeviceTopics,
  prefix: string | undefined,
): boolean {
  if (topic.length === 0 || Buffer.byteLength(topic) > MAX_RESPONSE_TOPIC_BYTES) return false;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[+#\u0000-\u001f\u007f-\u009f]/.test(topic) || topic.startsWith("$")) return false;
  const under = (root: string) => topic.startsWith(`${root}/`) && topic.length > root.length + 1;
  return under(`${topics.base}/response`) || (prefix !== undefined && under(prefix));
}
