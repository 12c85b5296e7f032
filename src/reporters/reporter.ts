import type { EventEmitter } from "eventemitter3";
import type { AgentEvents } from "../events.js";
import { listen } from "../util/emitter.js";

/**
 * A consumer of the agent's event stream (MQTT, logs, and any a library user writes).
 * `start` subscribes (the agent connects the broker once every reporter has started, so none misses the first
 * connect and their order does not matter); `stop` releases everything `start` took.
 */
export interface Reporter {
  readonly name: string;
  start(events: EventEmitter<AgentEvents>): Promise<void>;
  stop(): Promise<void>;
  /**
   * True while the reporter's backlog of undelivered events is near its bound: commands (which may raise
   * events) are then answered "busy", so a flood of them never pushes out an event nobody has received yet.
   */
  busy?(): boolean;
}

type Listener<K extends keyof AgentEvents> = (...args: AgentEvents[K]) => void;

/**
 * Subscribes with a guard so one failing consumer cannot break the agent or the other consumers,
 * and returns the unsubscribe for `stop()`.
 */
export function subscribe<K extends keyof AgentEvents>(
  events: EventEmitter<AgentEvents>,
  name: K,
  listener: Listener<K>,
  onError: (error: unknown) => void,
): () => void {
  const guarded = (...args: AgentEvents[K]) => {
    try {
      listener(...args);
    } catch (error) {
      onError(error);
    }
  };
  return listen(events, { [name]: guarded });
}
