import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { AgentControl } from "../control.js";
import { handleCommand, type CommandResponse } from "../requests/commands.js";
import type { IncomingMessage, MqttGateway } from "./gateway.js";
import type { DeviceTopics } from "./topics.js";

/** Longest MQTT 5 response topic honoured; longer ones are answered on the default topic. */
const MAX_RESPONSE_TOPIC_BYTES = 512;
/** Distinct retained requests remembered as logged (one per command topic is all a device has). */
const MAX_RETAINED_LOGGED = 64;

/** Commands a device takes in one burst, and after that per second (a token bucket; see README "Commands"). */
export const COMMAND_BURST = 10;
export const COMMANDS_PER_SECOND = 2;

/**
 * Takes commands from `{base}/request/{command}` and answers each one: on the request's MQTT 5 response
 * topic (with its correlation data) when it names an allowed one, else on `{base}/response/{command}`.
 *
 * Allowed response topics are `{base}/response/...` and, when `EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX` is set, topics
 * under it. Nothing else: the agent may publish where a requester may not (its own display, state and event
 * topics, the discovery prefix), so answering wherever a request asks would let anyone who can send a command
 * publish through the agent what the broker's ACL forbids them.
 *
 * Well-formed commands are rate-limited per device ({@link COMMAND_BURST} at once, then
 * {@link COMMANDS_PER_SECOND} per second); beyond that, or while the event backlog is near its bound, a command is
 * answered `busy` unrun. (Malformed requests never reach the agent and cost only their error answer.)
 */
export class CommandServer {
  private unsubscribe: (() => void) | undefined;
  private tokens = COMMAND_BURST;
  private refilledAt = Date.now();
  private busyLogged = 0;
  /** Retained requests already logged (topic and payload): each reconnect delivers them again. */
  private readonly retainedLogged = new Set<string>();

  constructor(
    private readonly gateway: MqttGateway,
    private readonly topics: DeviceTopics,
    private readonly agent: AgentControl,
    private readonly log: Logger,
    /** `EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX` (config.ts keeps it clear of every topic the agent owns), if set. */
    private readonly responsePrefix: string | undefined,
    /** True while the event backlog is near its bound (Reporter.busy). */
    private readonly backlogged: () => boolean = () => false,
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

  /** Why the request is not run now, or undefined when it may be (and then it uses up one token). */
  private refusal(): string | undefined {
    const now = Date.now();
    this.tokens = Math.min(
      COMMAND_BURST,
      this.tokens + ((now - this.refilledAt) / 1000) * COMMANDS_PER_SECOND,
    );
    this.refilledAt = now;
    if (this.tokens < 1)
      return `busy: more than ${COMMAND_BURST} commands at once or ${COMMANDS_PER_SECOND} per second; try again shortly`;
    if (this.backlogged())
      return "busy: events are waiting for the broker's acknowledgement; try again once they are delivered";
    this.tokens -= 1;
    return undefined;
  }

  private async answer(message: IncomingMessage): Promise<void> {
    const command = message.topic.slice(message.topic.lastIndexOf("/") + 1);
    const outcome = await handleCommand(
      command,
      message.payload,
      this.agent,
      () => this.refusal(),
      message.retained,
    );
    if (outcome.retained) {
      // Once per retained message, not at every reconnect that delivers it again; bounded like the store itself.
      const key = createHash("sha256")
        .update(message.topic)
        .update("\u0000")
        .update(message.payload)
        .digest("hex");
      if (!this.retainedLogged.has(key) && this.retainedLogged.size < MAX_RETAINED_LOGGED) {
        this.retainedLogged.add(key);
        this.log.warn(
          { command, topic: message.topic },
          "retained request not run: a request published with the retain flag is history; clear it with an empty retained message",
        );
      }
    } else if (outcome.busy !== undefined) {
      // One line per second at most: the flood itself must not flood the log.
      if (Date.now() - this.busyLogged >= 1000) {
        this.busyLogged = Date.now();
        this.log.warn({ command }, `command refused: ${outcome.busy}`);
      }
    } else if (outcome.malformed !== undefined)
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
    this.reply(message, command, outcome.response);
  }

  private reply(message: IncomingMessage, command: string, response: CommandResponse): void {
    const target = this.responseTopic(message, command);
    try {
      this.gateway.publishJson(target, response, {
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
