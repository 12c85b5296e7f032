import { describe, expect, it } from "vitest";
import { clientKey, FairShare } from "../../src/http/fair-share.js";

describe("who a connection counts against", () => {
  it("is the IPv4 address, mapped or not, and the /64 of an IPv6 one", () => {
    expect(clientKey("192.168.1.20")).toBe("192.168.1.20");
    expect(clientKey("::ffff:192.168.1.20")).toBe("192.168.1.20");
    // One machine's privacy addresses, however many, are one client.
    expect(clientKey("2001:db8:0:1:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:0:1::/64");
    expect(clientKey("2001:db8::1:2:3:4")).toBe("2001:db8:0:0::/64");
    expect(clientKey("2001:0db8:0000:0000:9::1")).toBe("2001:db8:0:0::/64");
    expect(clientKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(clientKey(undefined)).toBe("?");
  });
});

describe("fair shares", () => {
  it("lets a client at its share trade its own oldest, and makes the heaviest give way to a newcomer", () => {
    const share = new FairShare<string>(3, 4);
    expect(["a1", "a2", "a3"].map((h) => share.admit("A", h).outcome)).toStrictEqual([
      "admit",
      "admit",
      "admit",
    ]);
    // At its share: its own oldest goes.
    expect(share.admit("A", "a4")).toStrictEqual({ outcome: "evict", evict: "a1" });
    expect(share.admit("B", "b1").outcome).toBe("admit");
    // All four places taken: A (3) gives way to C (0).
    expect(share.admit("C", "c1")).toStrictEqual({ outcome: "evict", evict: "a2" });
    // Now A 2, B 1, C 1: B would hold as many as A, so it waits; D (none yet) takes A's oldest.
    expect(share.admit("B", "b2").outcome).toBe("refuse");
    expect(share.admit("D", "d1")).toStrictEqual({ outcome: "evict", evict: "a3" });
    // One each: nobody holds more than a newcomer would, so E waits until a place is free.
    expect(share.admit("E", "e1").outcome).toBe("refuse");
    share.release("C", "c1");
    expect(share.admit("E", "e1").outcome).toBe("admit");
    expect(share.size).toBe(4);
  });
});
