/**
 * Streaming frame reader (AMQP 0-9-1 §4.2.3: type octet, channel short,
 * payload size long, payload, frame-end 0xCE). It never copies a frame that
 * arrived in one chunk: the handler gets the chunk and the frame's bounds.
 * A frame split over chunks is reassembled (one copy) when it is a method or
 * content header frame; a split body frame is handed over as its pieces, so
 * content is forwarded without being copied.
 *
 * The size limit is checked on the header, before the payload is buffered;
 * the frame-end octet is checked before the frame is handed over.
 */
import {
  FRAME_BODY,
  FRAME_END,
  FRAME_HEADER,
  FRAME_HEADER_SIZE,
  FRAME_HEARTBEAT,
  FRAME_METHOD,
  FRAME_OVERHEAD,
  ReplyCode,
} from "./constants.ts";

/** Receives what a FrameReader parses. */
export interface FrameHandler {
  /** A complete frame: `buf[start, end)` is the whole frame (header to frame-end). */
  frame(type: number, channel: number, buf: Buffer, start: number, end: number): void;
  /** A body frame that arrived split: `pieces` concatenated are the whole frame. */
  splitBody(channel: number, pieces: Buffer[], payloadSize: number): void;
  /** A framing error: the connection must be closed with `code` (501 FRAME_ERROR). */
  error(code: number, text: string): void;
}

/** Parses a byte stream into frames; `maxFrameSize` is the negotiated frame-max (whole frame). */
export class FrameReader {
  maxFrameSize: number;
  readonly #h: FrameHandler;
  /** Pieces of an incomplete frame. */
  #pending: Buffer[] = [];
  #pendingLen = 0;
  /** Total length of the pending frame once its header is known (0 = header incomplete). */
  #pendingTotal = 0;
  #stopped = false;
  #paused = false;
  /** Chunks received while paused, replayed by `resume`. */
  #backlog: Buffer[] = [];

  constructor(handler: FrameHandler, maxFrameSize: number) {
    this.#h = handler;
    this.maxFrameSize = maxFrameSize;
  }

  /** Stop for good: everything after is ignored (after an error or a close). */
  stop(): void {
    this.#stopped = true;
    this.#backlog = [];
    this.#pending = [];
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Hold frames after the current one until `resume` (while the edge awaits the upstream). */
  pause(): void {
    this.#paused = true;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Hand over the frames held since `pause`. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const backlog = this.#backlog;
    this.#backlog = [];
    for (let i = 0; i < backlog.length; i++) {
      this.push(backlog[i]!);
      if (this.#paused) {
        // paused again: `push` kept the rest of this chunk; the older chunks follow it
        this.#backlog.push(...backlog.slice(i + 1));
        return;
      }
    }
  }

  /** Feed the next chunk of the stream. */
  push(chunk: Buffer): void {
    if (this.#stopped || chunk.length === 0) return;
    if (this.#paused) {
      this.#backlog.push(chunk);
      return;
    }
    let off = 0;
    if (this.#pendingLen > 0) {
      off = this.#continuePending(chunk);
      if (off < 0) return;
    }
    const len = chunk.length;
    while (off < len) {
      if (this.#stopped) return;
      if (this.#paused) {
        this.#backlog.push(chunk.subarray(off));
        return;
      }
      if (len - off < FRAME_HEADER_SIZE) {
        this.#startPending(chunk.subarray(off));
        return;
      }
      const type = chunk[off]!;
      const size = chunk.readUInt32BE(off + 3);
      if (!this.#checkHeader(type, size)) return;
      const total = size + FRAME_OVERHEAD;
      if (len - off < total) {
        this.#startPending(chunk.subarray(off));
        this.#pendingTotal = total;
        return;
      }
      const end = off + total;
      if (chunk[end - 1] !== FRAME_END) {
        this.#badEnd(chunk[end - 1]!);
        return;
      }
      this.#h.frame(type, chunk.readUInt16BE(off + 1), chunk, off, end);
      off = end;
    }
  }

  #checkHeader(type: number, size: number): boolean {
    if (type !== FRAME_METHOD && type !== FRAME_HEADER && type !== FRAME_BODY && type !== FRAME_HEARTBEAT) {
      this.#fail(ReplyCode.FRAME_ERROR, `unknown frame type ${type}`);
      return false;
    }
    if (size + FRAME_OVERHEAD > this.maxFrameSize) {
      this.#fail(
        ReplyCode.FRAME_ERROR,
        `frame of ${size + FRAME_OVERHEAD} octets exceeds the negotiated frame-max of ${this.maxFrameSize}`,
      );
      return false;
    }
    return true;
  }

  #badEnd(octet: number): void {
    this.#fail(ReplyCode.FRAME_ERROR, `frame-end octet is 0x${octet.toString(16)}, not 0xce`);
  }

  #fail(code: number, text: string): void {
    this.stop();
    this.#h.error(code, text);
  }

  #startPending(piece: Buffer): void {
    this.#pending = [piece];
    this.#pendingLen = piece.length;
    this.#pendingTotal = 0;
  }

  /** Complete the pending frame from `chunk`; returns octets of `chunk` used, or -1 when all were. */
  #continuePending(chunk: Buffer): number {
    let used = 0;
    if (this.#pendingTotal === 0) {
      const want = FRAME_HEADER_SIZE - this.#pendingLen;
      if (chunk.length < want) {
        this.#pending.push(chunk);
        this.#pendingLen += chunk.length;
        return -1;
      }
      const head = Buffer.concat([...this.#pending, chunk.subarray(0, want)]);
      const type = head[0]!;
      const size = head.readUInt32BE(3);
      if (!this.#checkHeader(type, size)) return -1;
      this.#pending = [head];
      this.#pendingLen = FRAME_HEADER_SIZE;
      this.#pendingTotal = size + FRAME_OVERHEAD;
      used = want;
    }
    const missing = this.#pendingTotal - this.#pendingLen;
    const avail = chunk.length - used;
    if (avail < missing) {
      if (avail > 0) this.#pending.push(used === 0 ? chunk : chunk.subarray(used));
      this.#pendingLen += avail;
      return -1;
    }
    const last = chunk.subarray(used, used + missing);
    const pieces = this.#pending;
    if (last.length > 0) pieces.push(last);
    const total = this.#pendingTotal;
    this.#pending = [];
    this.#pendingLen = 0;
    this.#pendingTotal = 0;
    const lastPiece = pieces[pieces.length - 1]!;
    const endOctet = lastPiece[lastPiece.length - 1]!;
    if (endOctet !== FRAME_END) {
      this.#badEnd(endOctet);
      return -1;
    }
    const first = pieces[0]!;
    const type = first[0]!;
    const channel = first.readUInt16BE(1);
    if (type === FRAME_BODY) {
      this.#h.splitBody(channel, pieces, total - FRAME_OVERHEAD);
    } else {
      const whole = Buffer.concat(pieces, total);
      this.#h.frame(type, channel, whole, 0, total);
    }
    return used + missing;
  }
}
