import type { EventEmitter } from "eventemitter3";

/** At most one handler per event of an EventEmitter3 event map, each typed with that event's arguments. */
export type Handlers<Events extends object> = {
  readonly [K in EventEmitter.EventNames<Events>]?: EventEmitter.EventListener<Events, K>;
};

/**
 * Adds each handler as a listener of its event, and returns the function that removes exactly those
 * listeners again (calling it twice does nothing more). One place for the on/off pairs a consumer of an
 * emitter otherwise writes by hand, where an `off` that does not match its `on` leaks a listener.
 *
 * TypeScript infers the event map from an `EventEmitter<Map>`, not through a subclass of it: for a
 * `class Watcher extends EventEmitter<WatcherEvents>`, name the map, `listen<WatcherEvents>(watcher, { ... })`.
 */
export function listen<Events extends object>(
  emitter: EventEmitter<Events>,
  handlers: Handlers<Events>,
): () => void {
  type Name = EventEmitter.EventNames<Events>;
  const added: Array<[Name, EventEmitter.EventListener<Events, Name>]> = [];
  for (const name of Reflect.ownKeys(handlers) as Name[]) {
    const handler = handlers[name];
    if (!handler) continue;
    emitter.on(name, handler);
    added.push([name, handler]);
  }
  return () => {
    for (const [name, handler] of added.splice(0)) emitter.off(name, handler);
  };
}
