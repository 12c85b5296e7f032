import { Transform, type Duplex, type TransformCallback } from "node:stream";

/** What was dropped: its topic (cut to 256 characters) and its size in bytes. */
export type DroppedPacket = { readonly topic: string; readonly bytes: number };

/**
 * Drops an incoming PUBLISH larger than `maxBytes` as its bytes arrive, before mqtt.js would collect it whole:
 * an MQTT 3.1.1 broker has no way to hear the client's Maximum Packet Size, and an MQTT 5 broker may ignore it
 * (mqtt.js then ends the connection, and a retained one comes back at every reconnect). Only the fixed header,
 * the topic and the packet id are kept; the payload is skipped. A QoS 1 or 2 message is acknowledged here
 * (PUBACK, PUBREC), so the broker does not send it again. Every other packet passes unchanged.
 *
 * Works on the read side only, between the socket and mqtt.js's parser (the socket's `pipe`); writes, `close`,
 * `error` and `destroy` stay the socket's own.
 */
export function guardIncoming(
  socket: Duplex,
  maxBytes: number,
  onDrop: (dropped: DroppedPacket) => void,
): void {
  const pipe = socket.pipe.bind(socket);
  socket.pipe = <T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T => {
    const filter = new PacketFilter(maxBytes, (ack) => socket.write(ack), onDrop);
    pipe(filter).pipe(destination, options);
    return destination;
  };
}

type Mode = "header" | "pass" | "drop-head" | "skip";

class PacketFilter extends Transform {
  private mode: Mode = "header";
  private header: number[] = [];
  /** Bytes left of the packet being passed or skipped. */
  private left = 0;
  /** Of a packet being dropped: its first byte, its size, and its variable header read so far. */
  private first = 0;
  private size = 0;
  private head: number[] = [];
  private headNeeded = 2;

  constructor(
    private readonly maxBytes: number,
    private readonly ack: (packet: Buffer) => void,
    private readonly onDrop: (dropped: DroppedPacket) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.mode === "pass" || this.mode === "skip") {
        const take = Math.min(this.left, chunk.length - at);
        if (this.mode === "pass") this.push(chunk.subarray(at, at + take));
        at += take;
        this.left -= take;
        if (this.left === 0) this.mode = "header";
        continue;
      }
      if (this.mode === "header") {
        this.header.push(chunk[at++] as number);
        this.readHeader();
        continue;
      }
      // drop-head: the topic's length, the topic, then the packet id (QoS 1 and 2).
      this.head.push(chunk[at++] as number);
      this.left -= 1;
      if (this.head.length === 2)
        this.headNeeded = 2 + ((this.head[0] ?? 0) << 8) + (this.head[1] ?? 0) + (this.qos > 0 ? 2 : 0);
      if (this.head.length >= this.headNeeded || this.left === 0) this.dropped();
    }
    done();
  }

  private get qos(): number {
    return (this.first >> 1) & 3;
  }

  /** Once the fixed header (a type byte, 1-4 length bytes) is whole: pass the packet, or start dropping it. */
  private readHeader(): void {
    if (this.header.length < 2) return;
    const last = this.header[this.header.length - 1] ?? 0;
    if (last & 0x80 && this.header.length < 5) return;
    let remaining = 0;
    for (let i = this.header.length - 1; i >= 1; i--)
      remaining = remaining * 128 + ((this.header[i] ?? 0) & 0x7f);
    const first = this.header[0] ?? 0;
    const size = this.header.length + remaining;
    if (first >> 4 === 3 && size > this.maxBytes) {
      this.first = first;
      this.size = size;
      this.head = [];
      this.headNeeded = 2;
      this.left = remaining;
      this.mode = "drop-head";
    } else {
      this.push(Buffer.from(this.header));
      this.left = remaining;
      this.mode = remaining > 0 ? "pass" : "header";
    }
    this.header = [];
  }

  private dropped(): void {
    const topicLength = Math.max(0, this.headNeeded - 2 - (this.qos > 0 ? 2 : 0));
    const topic = Buffer.from(this.head.slice(2, 2 + topicLength))
      .toString("utf8")
      .slice(0, 256);
    if (this.qos > 0 && this.head.length >= this.headNeeded) {
      const id = this.head.slice(this.headNeeded - 2, this.headNeeded);
      // PUBACK (QoS 1) or PUBREC (QoS 2), remaining length 2: "success" in MQTT 5 as in 3.1.1.
      this.ack(Buffer.from([this.qos === 1 ? 0x40 : 0x50, 0x02, ...id]));
    }
    this.onDrop({ topic, bytes: this.size });
    this.mode = this.left > 0 ? "skip" : "header";
  }
}
