import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import { listen } from "../../src/util/emitter.js";

interface Events {
  ping: [n: number];
  pair: [a: string, b: string];
  other: [];
}

describe("listen", () => {
  it("adds one listener per handler, with the event's arguments, and removes exactly those", () => {
    const emitter = new EventEmitter<Events>();
    const seen: unknown[] = [];
    const bystander = () => seen.push("bystander");
    emitter.on("ping", bystander);

    const unsubscribe = listen(emitter, {
      ping: (n) => seen.push(n * 2),
      pair: (a, b) => seen.push(`${a}+${b}`),
    });
    expect(emitter.listenerCount("ping")).toBe(2);
    expect(emitter.listenerCount("pair")).toBe(1);
    expect(emitter.listenerCount("other")).toBe(0);
    emitter.emit("ping", 21);
    emitter.emit("pair", "a", "b");
    expect(seen).toStrictEqual(["bystander", 42, "a+b"]);

    unsubscribe();
    unsubscribe(); // a second call removes nothing more
    expect(emitter.listenerCount("ping")).toBe(1);
    expect(emitter.listenerCount("pair")).toBe(0);
    emitter.emit("ping", 1);
    emitter.emit("pair", "c", "d");
    expect(seen).toStrictEqual(["bystander", 42, "a+b", "bystander"]);
  });

  it("works on a subclass when given its event map", () => {
    class Watcher extends EventEmitter<Events> {}
    const watcher = new Watcher();
    const seen: number[] = [];
    const unsubscribe = listen<Events>(watcher, { ping: (n) => seen.push(n) });
    watcher.emit("ping", 7);
    unsubscribe();
    watcher.emit("ping", 8);
    expect(seen).toStrictEqual([7]);
    expect(watcher.eventNames()).toStrictEqual([]);
  });
});
